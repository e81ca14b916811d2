/**
 * The event loop (docs/ARCHITECTURE.md, the binding): publishing never blocks it, an idle
 * subscription costs no CPU, and a process whose subscriptions ended or whose channels closed
 * exits on its own.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import test from 'ava';
import { open } from 'shmring';
import { channelName, sleep, spawnFixture } from './helpers.js';

/** utime + stime of a process (all its threads), in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the file; `fields` starts at field 3.
  return Number(fields[11]) + Number(fields[12]);
}

const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** Resolves with the exit of `p`, or a marker if it is still running after `ms`. */
function exitWithin(p: ReturnType<typeof spawnFixture>, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((resolve) => {
    timer = setTimeout(() => resolve('still running'), ms);
  });
  return Promise.race([p.exit, late]).finally(() => clearTimeout(timer));
}

for (const mode of [
  'unsubscribe',
  'close',
  'break',
  'abort',
  'send-close',
  'receive-sync',
  'share',
]) {
  test(`a process exits on its own after ${mode}`, async (t) => {
    const p = spawnFixture(t, 'lifecycle', [mode, channelName(t, `life-${mode}`)]);
    const r = await exitWithin(p, 30_000);
    t.not(r, 'still running', 'nothing keeps the event loop alive');
    if (r !== 'still running') {
      t.is(r.code, 0);
      t.deepEqual(r.json, { mode, done: true });
    }
  });
}

test('an idle subscribed process uses ~0% CPU, and exits once it stops', async (t) => {
  const p = spawnFixture(t, 'lifecycle', ['idle', channelName(t, 'idle')]);
  await p.waitFor('ready');
  const pid = p.child.pid as number;
  await sleep(500); // let start-up work settle
  const before = cpuTicks(pid);
  const windowSeconds = 5;
  await sleep(windowSeconds * 1000);
  const used = cpuTicks(pid) - before;
  const limit = 0.005 * windowSeconds * clockTicksPerSecond; // 0.5% of one CPU
  t.true(used < limit, `${used} ticks over ${windowSeconds} s (limit ${limit})`);
  p.child.stdin?.write('stop\n');
  const r = await exitWithin(p, 30_000);
  t.not(r, 'still running');
  if (r !== 'still running') t.is(r.code, 0);
});

test('publishing never blocks the event loop, even on a full ring', async (t) => {
  const ch = open<number>(channelName(t, 'noblock'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 64,
  });
  t.teardown(() => ch.close());
  ch.receiveSync(0); // a subscriber that reads only when told to
  let n = 0;
  while (ch.publish(n)) n++;
  t.false(ch.publish(-1), 'a full ring: publish returns at once with false');
  t.is(ch.publishMany([1, 2, 3]), 0, 'publishMany too');
  // Sends wait for room off the event loop: the loop keeps turning meanwhile.
  const sends = Array.from({ length: 50 }, (_, i) => ch.send(n + i));
  let settled = 0;
  for (const s of sends) s.then(() => settled++);
  let turns = 0;
  while (turns < 200) {
    await new Promise((r) => setImmediate(r));
    turns++;
  }
  let fired = false;
  await new Promise<void>((r) =>
    setTimeout(() => {
      fired = true;
      r();
    }, 10),
  );
  t.is(turns, 200);
  t.true(fired, 'timers run');
  t.is(settled, 0, 'the sends are still waiting for room');
  // Read everything (in this thread, with receiveSync(0) which never waits): room frees,
  // and the sends complete in order.
  const got: number[] = [];
  while (got.length < n + 50) {
    const m = ch.receiveSync(0);
    if (m === undefined) await new Promise((r) => setImmediate(r));
    else got.push(m.value);
  }
  await Promise.all(sends);
  t.deepEqual(got, [...Array(n + 50).keys()]);
});
