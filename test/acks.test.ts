/**
 * At-least-once queues from TypeScript: the options, the deliveries of `records()` and
 * `receiveSync` with `ack`/`nack`, how `messages()` and `iterate()` settle, the ack timeout,
 * a handler's error, and consumer processes killed with SIGKILL at random instants in both
 * sync modes (0 lost; a message comes more than once only after its consumer died or gave it
 * back). Under CI (env `CI`) the kill test makes 12 kills per mode; `npm run test:acks` makes
 * 100 per mode.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  type Channel,
  IncompatibleSegmentError,
  InvalidArgumentError,
  open,
  type SyncMode,
} from 'shmring';
import { channelName, type Proc, runToEnd, sleep, spawnFixture, until } from './helpers.js';

const FULL = process.env.ACKS_FULL !== undefined;
const KILLS = FULL ? 100 : 12;

type Job = { i: number };

function queue(t: ExecutionContext, tag: string, extra: object = {}): [string, Channel<Job>] {
  const name = channelName(t, tag);
  const ch = open<Job>(name, {
    create: true,
    kind: 'queue',
    delivery: 'at-least-once',
    ...extra,
  });
  t.teardown(() => ch.close());
  return [name, ch];
}

/**
 * Takes `n` messages from `ch` with `receiveSync(0)`, letting the event loop run between
 * tries (a stream ended by `take(n)` releases its slot on a timer), then checks for more.
 */
async function takeSync(ch: Channel<Job>, n: number) {
  const got: ReturnType<Channel<Job>['receiveSync']>[] = [];
  await until(() => {
    const d = ch.receiveSync(0);
    if (d !== undefined) got.push(d);
    return got.length >= n;
  });
  await sleep(100);
  return { got, more: ch.receiveSync(0) };
}

const consumerOf = (stats: ReturnType<Channel['stats']>) =>
  stats.participants.filter((p) => p.role === 'consumer');

test('at-least-once is stored in the header, checked on attach, and refused where it does not apply', (t) => {
  const [name, ch] = queue(t, 'ackopts', { ackTimeoutMs: 250 });
  t.is(ch.info().delivery, 'at-least-once');
  t.is(ch.info().ackTimeoutMs, 250);
  const other = open(name);
  t.is(other.info().delivery, 'at-least-once', 'an attach adopts it');
  other.close();
  t.throws(() => open(name, { delivery: 'at-most-once' }), {
    instanceOf: IncompatibleSegmentError,
  });
  t.throws(() => open(name, { ackTimeoutMs: 100 }), { instanceOf: IncompatibleSegmentError });
  const topic = channelName(t, 'acktopic');
  t.throws(() => open(topic, { create: true, delivery: 'at-least-once' }), {
    instanceOf: InvalidArgumentError,
    message: /queue/,
  });
  t.throws(() => open(topic, { create: true, kind: 'queue', ackTimeoutMs: 100 }), {
    instanceOf: InvalidArgumentError,
    message: /at-least-once/,
  });
  for (const bad of [-1, 1.5, Number.NaN, 2 ** 32]) {
    t.throws(
      () =>
        open(topic, { create: true, kind: 'queue', delivery: 'at-least-once', ackTimeoutMs: bad }),
      { instanceOf: InvalidArgumentError },
      `ackTimeoutMs ${bad}`,
    );
  }
  t.throws(
    () => open(topic, { create: true, kind: 'queue', delivery: 'twice' as 'at-most-once' }),
    {
      instanceOf: InvalidArgumentError,
    },
  );
  const plain = open(channelName(t, 'ackplain'), { create: true, kind: 'queue' });
  t.is(plain.info().delivery, 'at-most-once', 'the default');
  plain.close();
});

test('receiveSync: the next call acknowledges, nack gives back at once, close gives back what is held', (t) => {
  const [name, ch] = queue(t, 'acksync');
  ch.publish({ i: 1 });
  ch.publish({ i: 2 });
  const a = ch.receiveSync(1000);
  t.like(a, { value: { i: 1 }, redelivered: false, deliveries: 1 });
  t.is(consumerOf(ch.stats())[0]?.inFlight, 1, 'stats show the delivery in flight');
  t.true(a?.nack());
  t.false(a?.nack(), 'settled once');
  const again = ch.receiveSync(1000);
  t.like(again, { value: { i: 1 }, redelivered: true, deliveries: 2 });
  const b = ch.receiveSync(1000);
  t.like(b, { value: { i: 2 }, redelivered: false });
  t.false(again?.ack(), 'the call after it acknowledged it already');
  t.is(consumerOf(ch.stats())[0]?.redelivered, 1);
  // Held, not acknowledged, when the handle closes: it goes to the next consumer.
  ch.close();
  const next = open<Job>(name);
  t.teardown(() => next.close());
  const c = next.receiveSync(5000);
  t.like(c, { value: { i: 2 }, redelivered: true, deliveries: 2 });
  t.true(c?.ack());
  t.is(next.receiveSync(0), undefined, 'nothing else: 1 was acknowledged');
});

test("shmring stat shows each consumer's deliveries in flight and redelivered", async (t) => {
  const [name, ch] = queue(t, 'ackstat', { ackTimeoutMs: 60_000 });
  for (let i = 0; i < 3; i++) ch.publish({ i });
  const a = ch.receiveSync(1000);
  a?.nack();
  ch.receiveSync(1000); // 0 again, held
  const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));
  const json = await runToEnd(t, process.execPath, [cli, 'stat', name, '--json']);
  t.is(json.code, 0, json.stderr);
  const s = JSON.parse(json.stdout) as ReturnType<Channel['stats']>;
  t.is(s.delivery, 'at-least-once');
  t.is(s.ackTimeoutMs, 60_000);
  t.like(consumerOf(s)[0], { inFlight: 1, redelivered: 1 });
  const text = await runToEnd(t, process.execPath, [cli, 'stat', name]);
  t.regex(text.stdout, /delivery\s+at-least-once \(ack timeout 60000 ms\)/);
  t.regex(text.stdout, /IN FLIGHT\s+REDELIVERED/);
});

test('records(): each record is acked or nacked by the user; a nacked one comes again, marked', async (t) => {
  const [, ch] = queue(t, 'ackrec');
  for (let i = 0; i < 3; i++) ch.publish({ i });
  const seen: [number, boolean, number, boolean][] = [];
  const sub = ch.records().subscribe((r) => {
    // The first delivery of 1 is given back, with 2 (unsettled, after it in the batch).
    const settled = r.value.i === 1 && !r.redelivered ? r.nack() : r.ack();
    seen.push([r.value.i, r.redelivered, r.deliveries, settled]);
  });
  await until(() => seen.length >= 4);
  ch.publish({ i: 3 });
  await until(() => seen.length >= 5);
  sub.unsubscribe();
  t.deepEqual(seen, [
    [0, false, 1, true],
    [1, false, 1, true],
    // 2 went back with 1 and is not emitted from that batch: it comes with the next one.
    [1, true, 2, true],
    [2, true, 2, true],
    [3, false, 1, true],
  ]);
  t.is(ch.receiveSync(0), undefined, 'every record was acknowledged');
});

test("records(): a record handed out stays the user's to settle after the stream ended", async (t) => {
  const [name, ch] = queue(t, 'ackasync');
  for (let i = 0; i < 4; i++) ch.publish({ i });
  const [first] = await firstValueFrom(ch.records().pipe(take(1), toArray()));
  // Ended by take(1): the record handed out is the user's until settled; the ones drained
  // with it but not handed out go back to the queue once it is.
  t.like(first, { value: { i: 0 }, deliveries: 1 });
  t.true(first?.ack(), 'acknowledged after take(1) ended the stream');
  t.false(first?.ack());
  const other = open<Job>(name);
  t.teardown(() => other.close());
  const { got, more } = await takeSync(other, 3);
  t.deepEqual(
    got.map((d) => d?.value.i),
    [1, 2, 3],
  );
  t.is(more, undefined, '0 was acknowledged');
  t.is(consumerOf(ch.stats()).filter((p) => p.alive).length, 1, "the stream's slot is gone");
});

test('records(): a stream unsubscribed after its records were acked releases its slot', async (t) => {
  const [, ch] = queue(t, 'ackunsub');
  for (let i = 0; i < 3; i++) ch.publish({ i });
  let n = 0;
  let s: { unsubscribe(): void } | undefined;
  await new Promise<void>((resolve) => {
    s = ch.records().subscribe((r) => {
      r.ack();
      if (++n === 3) resolve();
    });
  });
  s?.unsubscribe(); // outside the turn, before its timers
  await until(() => consumerOf(ch.stats()).length === 0);
  t.is(ch.receiveSync(0), undefined, 'all three were acknowledged');
});

test('messages(): close() right after a turn whose handler threw gives the batch back', async (t) => {
  const [name, ch] = queue(t, 'ackclose');
  for (let i = 0; i < 3; i++) ch.publish({ i });
  const w = spawnFixture(t, 'ackclose', [name]);
  const end = await w.exit;
  t.is(end.code, 0);
  t.deepEqual(w.lines, ['closed', 'threw'], 'closed before the error was reported');
  const { got } = await takeSync(ch, 3);
  t.deepEqual(
    got.map((d) => [d?.value.i, d?.redelivered]),
    [
      [0, true],
      [1, true],
      [2, true],
    ],
    'the batch with the failed handler came again',
  );
});

test('messages(): a value counts as handled when its handler returns, take(n) included', async (t) => {
  const [name, ch] = queue(t, 'ackmsg');
  for (let i = 0; i < 6; i++) ch.publish({ i });
  t.deepEqual(await firstValueFrom(ch.messages()), { i: 0 });
  const two = await firstValueFrom(ch.messages().pipe(take(2), toArray()));
  t.deepEqual(two, [{ i: 1 }, { i: 2 }]);
  const other = open<Job>(name);
  t.teardown(() => other.close());
  const { got, more } = await takeSync(other, 3);
  // Drained with 0..2 by the streams but not handed out: given back, so marked.
  t.deepEqual(
    got.map((d) => [d?.value.i, d?.redelivered]),
    [
      [3, true],
      [4, true],
      [5, true],
    ],
  );
  t.is(more, undefined, '0, 1 and 2 were acknowledged');
});

test('for await: what the loop asked past is acknowledged; the value it broke out at comes again', async (t) => {
  const [name, ch] = queue(t, 'ackiter');
  for (let i = 0; i < 4; i++) ch.publish({ i });
  const got: number[] = [];
  for await (const v of ch) {
    got.push(v.i);
    if (v.i === 1) break;
  }
  t.deepEqual(got, [0, 1]);
  const other = open<Job>(name);
  t.teardown(() => other.close());
  const { got: left, more } = await takeSync(other, 3);
  t.deepEqual(
    left.map((d) => [d?.value.i, d?.redelivered]),
    [
      [1, true],
      [2, true],
      [3, true],
    ],
  );
  t.is(more, undefined, '0 was acknowledged');
});

test('ackTimeoutMs: deliveries a live consumer sits on go to another consumer', async (t) => {
  const [name, ch] = queue(t, 'acktimeout', { ackTimeoutMs: 200 });
  ch.publish({ i: 7 });
  const held = ch.receiveSync(1000);
  t.like(held, { value: { i: 7 }, deliveries: 1 });
  const other = open<Job>(name);
  t.teardown(() => other.close());
  const again = other.receiveSync(10_000);
  t.like(again, { value: { i: 7 }, redelivered: true, deliveries: 2 });
  t.false(held?.ack(), 'taken over: no longer the first consumer to acknowledge');
  t.true(again?.ack());
});

/** A temporary directory for logs, removed when the test ends. */
function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'shmring-acks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The `<i> <deliveries>` lines of the logs in `files`. */
function logged(files: string[]): [number, number][] {
  const out: [number, number][] = [];
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [i, d] = line.split(' ');
      if (i !== undefined && d !== undefined) out.push([Number(i), Number(d)]);
    }
  }
  return out;
}

test('messages(): a handler that throws gives its message back, also when the process survives', async (t) => {
  const [name, ch] = queue(t, 'ackthrow');
  const log = join(tempDir(t), 'w.log');
  const w = spawnFixture(t, 'ackworker', [name, log, 'messages', '3']);
  await w.waitFor('ready');
  for (let i = 0; i < 6; i++) ch.publish({ i });
  await w.waitFor('threw');
  await until(() => new Set(logged([log]).map(([i]) => i)).size === 6, 60_000);
  t.deepEqual(
    [...new Set(logged([log]).map(([i]) => i))].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5],
    'the message whose handler threw came again',
  );
});

for (const sync of ['lockfree', 'semaphore'] as SyncMode[]) {
  test(`three consumer processes, SIGKILLed at random instants and restarted (${sync}): 0 lost`, async (t) => {
    t.timeout(10 * 60_000);
    const count = FULL ? 100_000 : 20_000;
    const [, ch] = queue(t, `ackkill-${sync}`, { sync, capacity: 1 << 16 });
    const dir = tempDir(t);
    // Each restart takes the next way of consuming.
    const modes = ['records', 'sync', 'messages', 'iterate'];
    let restarts = 0;
    const logs: string[] = [];
    /** The logs of consumers that were killed. */
    const killed = new Set<string>();
    const workers: (Proc | undefined)[] = [];
    const logOf: string[] = [];
    const start = async (k: number): Promise<void> => {
      const log = join(dir, `w${k}-${logs.length}.log`);
      logs.push(log);
      logOf[k] = log;
      const p = spawnFixture(t, 'ackworker', [ch.name, log, modes[(k + restarts++) % 4] as string]);
      workers[k] = p;
      await p.waitFor('ready');
    };
    for (let k = 0; k < 3; k++) await start(k);
    let published = 0;
    let kills = 0;
    const distinct = (): number => new Set(logged(logs).map(([i]) => i)).size;
    const deadline = Date.now() + 8 * 60_000;
    while (published < count || distinct() < count || kills < KILLS) {
      if (Date.now() > deadline) break;
      // Publish a slice, then kill one consumer at a random instant of its work.
      // Slices that leave room for every kill: count / (kills + 5), give or take half.
      const mean = count / (KILLS + 5);
      const slice = Math.min(count - published, Math.floor(mean * (0.5 + Math.random())));
      for (let n = 0; n < slice; n++) {
        if (!ch.publish({ i: published })) await ch.send({ i: published });
        published++;
      }
      if (kills < KILLS) {
        await sleep(Math.random() * 20);
        const k = Math.floor(Math.random() * 3);
        workers[k]?.child.kill('SIGKILL');
        await workers[k]?.exit;
        killed.add(logOf[k] as string);
        kills++;
        await start(k);
      } else {
        await sleep(20);
      }
    }
    const lines = logged(logs);
    const times = new Map<number, number>();
    for (const [i] of lines) times.set(i, (times.get(i) ?? 0) + 1);
    const lost = count - [...times.keys()].filter((i) => i >= 0 && i < count).length;
    const twice = [...times.values()].filter((n) => n > 1).length;
    // A message handled twice came again marked (deliveries > 1) where the mode shows it.
    const unmarked = lines.filter(([, d]) => d === 1).map(([i]) => i);
    const unmarkedTwice = unmarked.length - new Set(unmarked).size;
    t.log(
      `${sync}: ${count} messages, ${kills} kills, ${lost} lost, ${twice} handled more than once`,
    );
    t.is(kills, KILLS);
    t.is(lost, 0, 'every message was handled');
    t.is(unmarkedTwice, 0, 'no message was a first delivery twice');
    // Handled more than once only if a consumer that handled it died before acknowledging:
    // the consumers that were not killed handled each message at most once between them.
    const survivors = logged(logs.filter((l) => !killed.has(l))).map(([i]) => i);
    t.is(survivors.length, new Set(survivors).size, 'no duplicate without a death');
    t.true(twice <= kills * 1024, 'duplicates only from what dead consumers held');
  });
}
