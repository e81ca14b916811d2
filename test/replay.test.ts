/**
 * Replay, positions and named subscribers from TypeScript, with real processes: `records`
 * and `from`, `durable` across SIGKILLs, `removeSubscriber`, and the typed errors of bad
 * options. Every process is killed and reaped and every channel unlinked, pass or fail.
 */
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  BusyError,
  type ChannelRecord,
  InvalidArgumentError,
  InvalidNameError,
  open,
} from 'shmring';
import { channelName, type Proc, runToEnd, sleep, spawnFixture, until } from './helpers.js';

const ci = process.env.CI !== undefined;

test('records replays from earliest what an exited process published, and positions resume', async (t) => {
  const name = channelName(t, 'replay');
  const ch = open<{ p: number; i: number }>(name, { create: true, capacity: 1 << 22 });
  t.teardown(() => ch.close());
  const pub = spawnFixture(t, 'pub', [name, '3', '10000']);
  t.is((await pub.exit).code, 0);
  const all = await firstValueFrom(ch.records({ from: 'earliest' }).pipe(take(10_000), toArray()));
  t.deepEqual(
    all.map((r) => r.value.i),
    Array.from({ length: 10_000 }, (_, i) => i),
  );
  t.true(
    all.every((r, k) => k === 0 || r.position > (all[k - 1] as ChannelRecord<unknown>).position),
  );
  // From a record's position: that record; from position + 1: the one after it.
  const at = all[4321] as ChannelRecord<{ i: number }>;
  const [same] = await firstValueFrom(ch.records({ from: at.position }).pipe(take(1), toArray()));
  t.deepEqual(same, at);
  const next = await firstValueFrom(ch.messages({ from: at.position + 1 }).pipe(take(1)));
  t.is(next.i, 4322);
  // iterate and receiveSync replay too.
  const it = ch.iterate({ from: 'earliest' });
  t.is((await it.next()).value?.i, 0);
  await it.return?.();
  const rx = open<{ i: number }>(name);
  t.teardown(() => rx.close());
  const first = rx.receiveSync(1000, { from: 'earliest' });
  t.is(first?.value.i, 0);
  t.is(first?.position, (all[0] as ChannelRecord<unknown>).position);
  // 'latest' (the default) sees none of the old ones.
  const late = ch.records();
  const got: number[] = [];
  const s = late.subscribe((r) => got.push(r.value.i));
  ch.publish({ p: 9, i: -1 });
  await until(() => got.length === 1);
  s.unsubscribe();
  t.deepEqual(got, [-1]);
});

test('a named subscriber resumes after what it consumed; Busy while attached; removeSubscriber', async (t) => {
  const name = channelName(t, 'named');
  const ch = open<number>(name, { create: true, capacity: 4096, policy: 'fail' });
  t.teardown(() => ch.close());
  const got: number[] = [];
  const a = ch.messages({ durable: 'billing' }).subscribe((v) => got.push(v));
  const busy = await new Promise<unknown>((resolve) =>
    ch.messages({ durable: 'billing' }).subscribe({ error: resolve }),
  );
  t.true(busy instanceof BusyError, String(busy));
  t.throws(() => ch.removeSubscriber('billing'), { instanceOf: BusyError });
  for (let i = 0; i < 5; i++) ch.publish(i);
  await until(() => got.length === 5);
  a.unsubscribe();
  const away = ch.stats().participants.find((p) => p.name === 'billing');
  t.like(away, { role: 'subscriber', away: true, alive: false, lag: 0 });
  for (let i = 5; i < 10; i++) ch.publish(i);
  t.true((ch.stats().participants.find((p) => p.name === 'billing')?.lag ?? 0) > 0);
  // Resumes right after the last message whose handler returned.
  const again = await firstValueFrom(ch.messages({ durable: 'billing' }).pipe(take(5), toArray()));
  t.deepEqual([...got, ...again], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // take(5) ended the stream inside the drain turn that delivered 5..9: those come again
  // (a handler of that turn may have thrown an error not seen yet); the iterator consumes
  // each by asking for the next.
  const iter = ch.iterate({ durable: 'billing' });
  ch.publish(10);
  for (const want of [5, 6, 7, 8, 9, 10]) t.is((await iter.next()).value, want);
  await iter.return?.();
  // While away the name holds producers back: the ring fills (policy fail).
  let published = 0;
  t.throws(
    () => {
      for (;;) {
        ch.publish(100 + published);
        published++;
      }
    },
    { code: 'RingFull' },
  );
  t.true(published > 10);
  t.true(ch.removeSubscriber('billing'));
  t.false(ch.removeSubscriber('billing'));
  t.true(ch.publish(1), 'nobody holds the ring any more');
});

test('bad replay and durable options are typed errors', async (t) => {
  const name = channelName(t, 'badreplay');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  const errorOf = (o: { subscribe: (x: { error: (e: unknown) => void }) => unknown }) =>
    new Promise<unknown>((resolve) => o.subscribe({ error: resolve }));
  for (const from of [-1, 1.5, 'first', Number.NaN, 2 ** 60]) {
    const e = await errorOf(ch.messages({ from: from as number }));
    t.true(e instanceof InvalidArgumentError, `from ${from}: ${e}`);
  }
  t.true(
    (await errorOf(ch.records({ durable: 5 as unknown as string }))) instanceof
      InvalidArgumentError,
  );
  t.true((await errorOf(ch.messages({ durable: 'no spaces' }))) instanceof InvalidNameError);
  t.true((await errorOf(ch.messages({ durable: 'x'.repeat(33) }))) instanceof InvalidNameError);
  t.throws(() => ch.removeSubscriber(7 as unknown as string), { instanceOf: InvalidArgumentError });
  const q = channelName(t, 'badreplayq');
  const queue = open<number>(q, { create: true, kind: 'queue' });
  t.teardown(() => queue.close());
  t.true((await errorOf(queue.messages({ durable: 'w' }))) instanceof InvalidArgumentError);
  t.true((await errorOf(queue.messages({ from: 'earliest' }))) instanceof InvalidArgumentError);
  t.throws(() => queue.receiveSync(0, { durable: 'w' }), { instanceOf: InvalidArgumentError });
  ch.receiveSync(0, { durable: 'rx' });
  t.throws(() => ch.receiveSync(0, { durable: 'other' }), { instanceOf: InvalidArgumentError });
});

test('a named subscriber SIGKILLed and restarted while a producer publishes sees every message', async (t) => {
  const kills = ci ? 10 : 30;
  const name = channelName(t, 'namedkill');
  const ch = open<{ i: number }>(name, { create: true, capacity: 16 * 1024 });
  t.teardown(() => ch.close());
  ch.messages({ durable: 'audit' }).subscribe().unsubscribe(); // the name exists from message 0
  await until(() => ch.stats().participants.some((p) => p.name === 'audit' && p.away));
  let i = 0;
  let stop = false;
  const producing = (async () => {
    while (!stop) {
      const m = { i };
      if (!ch.publish(m)) await ch.send(m);
      i++;
      if (i % 64 === 0) await sleep(0);
    }
  })();
  const lives: Proc[] = [];
  for (let k = 0; k < kills; k++) {
    const p = spawnFixture(t, 'durable', [name, 'audit']);
    lives.push(p);
    await p.waitFor('ready');
    await sleep(20 + Math.floor(Math.random() * 150));
    p.child.kill('SIGKILL');
    await p.exit;
  }
  // A last life drains the rest (a send may be waiting for it to make room).
  stop = true;
  const last = spawnFixture(t, 'durable', [name, 'audit']);
  lives.push(last);
  await producing;
  await until(() => last.lines.at(-1) === String(i - 1));
  last.child.kill('SIGKILL');
  await last.exit;
  // Each life sees a run of consecutive messages; the next life starts no later than right
  // after it (nothing lost), and at most where its last commit was (what it handled in the
  // millisecond before a kill comes again: duplicates only at a life's end).
  let next = 0;
  let twice = 0;
  for (const [k, p] of lives.entries()) {
    const seen = p.lines.filter((l) => l !== 'ready').map(Number);
    if (seen.length === 0) continue;
    const first = seen[0] as number;
    t.true(first <= next, `life ${k} starts at ${first}, after ${next} was due`);
    t.true(
      seen.every((s, j) => s === first + j),
      `life ${k} is a run of consecutive messages`,
    );
    twice += next - first;
    next = first + seen.length;
  }
  t.is(next, i, 'every message seen, in order');
  t.log(`${i} messages, ${kills} kills, ${twice} seen twice`);
});

test('CLI: tail --from and --positions, tail --durable resumes, stat shows the name, rm --subscriber', async (t) => {
  const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));
  const shmring = (args: string[]) => runToEnd(t, process.execPath, [cli, ...args]);
  const name = channelName(t, 'clireplay');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  ch.messages({ durable: 'ops' }).subscribe().unsubscribe(); // the name holds from here
  for (let i = 0; i < 5; i++) ch.publish(i);
  const all = await shmring(['tail', name, '--from', 'earliest', '--count', '5', '--positions']);
  t.is(all.code, 0, all.stderr);
  const rows = all.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ChannelRecord<number>);
  t.deepEqual(
    rows.map((r) => r.value),
    [0, 1, 2, 3, 4],
  );
  const third = rows[2] as ChannelRecord<number>;
  const from = await shmring(['tail', name, '--from', String(third.position), '--count', '1']);
  t.is(from.stdout.trim(), '2');
  // The named subscriber: two lives of two messages each.
  const a = await shmring(['tail', name, '--durable', 'ops', '--count', '2']);
  const b = await shmring(['tail', name, '--durable', 'ops', '--count', '2']);
  // Exactly what a life printed was consumed: the next life goes on after it.
  t.deepEqual(`${a.stdout}${b.stdout}`.trim().split('\n'), ['0', '1', '2', '3']);
  const stat = await shmring(['stat', name]);
  t.regex(stat.stdout, /subscriber\s+\d+\s+away\s.*\sops$/m);
  const rm = await shmring(['rm', name, '--subscriber', 'ops']);
  t.is(rm.code, 0, rm.stderr);
  t.false(ch.stats().participants.some((p) => p.name === 'ops'));
  const again = await shmring(['rm', name, '--subscriber', 'ops']);
  t.is(again.code, 1);
  t.regex(again.stderr, /no subscriber named ops/);
  const bad = await shmring(['tail', name, '--from', 'yesterday']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /from must be earliest, latest or a position/);
});
