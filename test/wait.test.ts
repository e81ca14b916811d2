/**
 * Wait strategies (`wait: 'adaptive' | 'spin' | 'block'`) through the TypeScript API, and
 * what a lapped subscriber of an `overwrite` topic is told (issue 3): `onLost` counts, and
 * every delivered message is whole and in order.
 */
import test from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  type Channel,
  InvalidArgumentError,
  type LostCallback,
  open,
  type WaitStrategy,
} from 'shmring';
import { bodyOf, type Flood } from './fixtures/flood-body.js';
import { channelName, spawnFixture } from './helpers.js';

const STRATEGIES: WaitStrategy[] = ['adaptive', 'spin', 'block'];

const subscribers = (ch: Channel<unknown>): number =>
  ch.stats().participants.filter((p) => p.role === 'subscriber').length;

for (const wait of STRATEGIES) {
  test(`wait '${wait}': messages(), iterate() and receiveSync deliver in order`, async (t) => {
    const ch = open<number>(channelName(t, `wait-${wait}`), { create: true });
    t.teardown(() => ch.close());
    const n = 200;
    const viaMessages = firstValueFrom(ch.messages({ wait }).pipe(take(n), toArray()));
    const iterator = ch.iterate({ wait });
    const first = iterator.next(); // joins now
    ch.receiveSync(0, { wait });
    for (let i = 0; i < n; i++) t.true(ch.publish(i));
    const expected = Array.from({ length: n }, (_, i) => i);
    t.deepEqual(await viaMessages, expected);
    const viaIterate = [(await first).value];
    while (viaIterate.length < n) viaIterate.push((await iterator.next()).value);
    await iterator.return?.();
    t.deepEqual(viaIterate, expected);
    const viaSync: number[] = [];
    for (let i = 0; i < n; i++) viaSync.push(ch.receiveSync(10_000, { wait })?.value as number);
    t.deepEqual(viaSync, expected);
    t.is(ch.receiveSync(0, { wait }), undefined, 'nothing more');
  });
}

test('wait: the channel default applies, a per-call option overrides it', async (t) => {
  const ch = open<number>(channelName(t, 'wait-default'), { create: true, wait: 'spin' });
  t.teardown(() => ch.close());
  const got = firstValueFrom(ch.messages().pipe(take(2), toArray()));
  ch.receiveSync(0); // joins with the channel's 'spin'
  ch.publish(1);
  ch.publish(2);
  t.deepEqual(await got, [1, 2]);
  t.is(ch.receiveSync(1000, { wait: 'block' })?.value, 1);
  t.is(ch.receiveSync(1000)?.value, 2, 'back to the default');
});

test('wait: an unknown strategy is InvalidArgument, wherever it is given', async (t) => {
  const name = channelName(t, 'wait-bad');
  const bad = 'sleepy' as WaitStrategy;
  const e = t.throws(() => open(name, { create: true, wait: bad }), {
    instanceOf: InvalidArgumentError,
  });
  t.regex(e?.message ?? '', /sleepy/);
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  await t.throwsAsync(firstValueFrom(ch.messages({ wait: bad })), {
    instanceOf: InvalidArgumentError,
  });
  await t.throwsAsync(ch.iterate({ wait: bad }).next(), { instanceOf: InvalidArgumentError });
  t.throws(() => ch.receiveSync(0, { wait: bad }), { instanceOf: InvalidArgumentError });
  t.is(subscribers(ch), 0, 'no slot kept by a refused subscription');
});

test("wait 'spin': unsubscribing stops the spinning thread and releases the slot", async (t) => {
  const ch = open<number>(channelName(t, 'spin-stop'), { create: true });
  t.teardown(() => ch.close());
  for (let round = 0; round < 5; round++) {
    const sub = ch.messages({ wait: 'spin' }).subscribe();
    t.is(subscribers(ch), 1);
    sub.unsubscribe();
    t.is(subscribers(ch), 0);
  }
});

test("wait 'spin': a process exits on its own once its spinning subscription ends", async (t) => {
  const name = channelName(t, 'spin-exit');
  const p = spawnFixture(t, 'spin', [name]);
  await p.waitFor('ready');
  const ch = open<number>(name);
  t.teardown(() => ch.close());
  ch.publish(7);
  const r = await p.exit;
  t.is(r.code, 0);
  t.deepEqual(r.json, { value: 7 });
});

/** Sleeps the calling thread (event loop included) in 2 ms steps until `cond()` holds. */
function blockUntil(cond: () => boolean, ms = 60_000): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    Atomics.wait(cell, 0, 0, 2);
  }
}

/** Messages published so far by the producer in process `pid`. */
const publishedBy = (ch: Channel<unknown>, pid: number | undefined): number =>
  ch.stats().participants.find((p) => p.role === 'producer' && p.pid === pid)?.messages ?? 0;

/** What a lapped subscriber received: in order, whole, and with the losses accounted for. */
function checkLapped(
  t: import('ava').ExecutionContext,
  got: Flood[],
  losses: [number, number][],
  count: number,
): void {
  const totalLost = losses.at(-1)?.[1] ?? 0;
  t.true(totalLost > 0, 'the slow subscriber was lapped');
  t.is(
    losses.reduce((s, [n]) => s + n, 0),
    totalLost,
    'each onLost count is what was lost since the last one',
  );
  t.is(got.length + totalLost, count, 'every message is either received or counted as lost');
  t.is(got.at(-1)?.seq, count - 1, 'the newest message arrives');
  let ordered = 0;
  let whole = 0;
  for (const [i, m] of got.entries()) {
    if (i === 0 || m.seq > (got[i - 1] as Flood).seq) ordered++;
    if (m.body === bodyOf(m.seq)) whole++;
  }
  t.is(ordered, got.length, 'in publish order');
  t.is(whole, got.length, 'whole messages only');
}

/** An overwrite topic small enough that a flood laps a subscriber many times over. */
const overwriteTopic = (t: import('ava').ExecutionContext, tag: string) => {
  const name = channelName(t, tag);
  const ch = open<Flood>(name, {
    create: true,
    policy: 'overwrite',
    capacity: 4096,
    maxMessageSize: 512,
  });
  t.teardown(() => ch.close());
  return { name, ch };
};

test('policy overwrite: a blocked messages() subscriber is lapped and told what it lost', async (t) => {
  const { name, ch } = overwriteTopic(t, 'lapped-rx');
  const count = 20_000;
  const got: Flood[] = [];
  const losses: [number, number][] = [];
  const onLost: LostCallback = (n, total) => losses.push([n, total]);
  let pid: number | undefined;
  const done = new Promise<void>((resolve, reject) => {
    const sub = ch.messages({ onLost }).subscribe({
      next(m) {
        got.push(m);
        // A deliberately slow subscriber: its first message holds it (and the whole
        // thread) until the producer has published everything.
        if (got.length === 1) blockUntil(() => publishedBy(ch, pid) >= count);
        if (m.seq === count - 1) {
          sub.unsubscribe();
          resolve();
        }
      },
      error: reject,
    });
    t.teardown(() => sub.unsubscribe());
  });
  const p = spawnFixture(t, 'flood', [name, String(count)]);
  pid = p.child.pid;
  await done;
  checkLapped(t, got, losses, count);
  p.child.stdin?.write('exit\n');
  const r = await p.exit;
  t.is(r.code, 0);
  t.deepEqual(r.json, { published: count, refused: 0 }, 'overwrite never refuses a publish');
});

test('policy overwrite: a late receiveSync drain is lapped and told what it lost', async (t) => {
  const { name, ch } = overwriteTopic(t, 'lapped-sync');
  const count = 20_000;
  ch.receiveSync(0, { wait: 'block' }); // join, then read nothing until the flood is over
  const p = spawnFixture(t, 'flood', [name, String(count)]);
  await p.waitFor('published');
  const got: Flood[] = [];
  const losses: [number, number][] = [];
  const onLost: LostCallback = (n, total) => losses.push([n, total]);
  for (;;) {
    const m = ch.receiveSync(0, { onLost });
    if (m === undefined) break;
    got.push(m.value);
  }
  checkLapped(t, got, losses, count);
  p.child.stdin?.write('exit\n');
  t.is((await p.exit).code, 0);
});

test('policy overwrite: iterate() pulled slowly is lapped and told what it lost', async (t) => {
  const { name, ch } = overwriteTopic(t, 'lapped-iter');
  const count = 20_000;
  const got: Flood[] = [];
  const losses: [number, number][] = [];
  const iterator = ch.iterate({ onLost: (n, total) => losses.push([n, total]) });
  const first = iterator.next(); // joins now
  const p = spawnFixture(t, 'flood', [name, String(count)]);
  got.push((await first).value);
  await p.waitFor('published'); // pull nothing meanwhile
  while (got.at(-1)?.seq !== count - 1) got.push((await iterator.next()).value);
  await iterator.return?.();
  checkLapped(t, got, losses, count);
  p.child.stdin?.write('exit\n');
  t.is((await p.exit).code, 0);
});

test('policy block: onLost is never called', async (t) => {
  const ch = open<number>(channelName(t, 'no-loss'), { create: true }); // room for all
  t.teardown(() => ch.close());
  let calls = 0;
  const onLost = (): void => {
    calls++;
  };
  const got = firstValueFrom(ch.messages({ onLost }).pipe(take(1000), toArray()));
  ch.receiveSync(0);
  t.is(ch.publishMany(Array.from({ length: 1000 }, (_, i) => i)), 1000);
  t.is((await got).length, 1000);
  let synced = 0;
  while (ch.receiveSync(0, { onLost }) !== undefined) synced++;
  t.true(synced > 0);
  t.is(calls, 0);
});
