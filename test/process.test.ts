/** Cross-process behaviour with real `node` processes and real shared memory. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { open, TimeoutError } from 'shmring';
import { channelName, spawnFixture } from './helpers.js';

interface SubResult {
  received: number;
  outOfOrder: number;
  checksum: number;
  perProducer: Record<string, number>;
}

const checksumOf = (producers: number[], count: number): number => {
  let sum = 0;
  for (const p of producers)
    for (let i = 0; i < count; i++) sum = (sum + p * 1_000_003 + i) % 2 ** 48;
  return sum;
};

test('cross_process_publish_subscribe', async (t) => {
  const name = channelName(t, 'xproc');
  const count = 50_000;
  const sub = spawnFixture(t, 'sub', [name, String(count)]);
  await sub.waitFor('ready');
  const pub = spawnFixture(t, 'pub', [name, '7', String(count)]);
  const [p, s] = await Promise.all([pub.exit, sub.exit]);
  t.is(p.code, 0);
  t.is(s.code, 0, 'the subscriber exits on its own once it unsubscribed and closed');
  const r = s.json as SubResult;
  t.is(r.received, count);
  t.is(r.outOfOrder, 0);
  t.deepEqual(r.perProducer, { 7: count });
  t.is(r.checksum, checksumOf([7], count));
});

test('two_producer_processes_interleave_keeping_per_producer_order', async (t) => {
  const name = channelName(t, 'mpsc');
  const count = 50_000;
  // A small ring so that both producers wait for room and their claims interleave.
  open(name, { create: true, capacity: 16384, maxMessageSize: 256 }).close();
  const sub = spawnFixture(t, 'sub', [name, String(2 * count)]);
  await sub.waitFor('ready');
  const pubs = [1, 2].map((id) => spawnFixture(t, 'pub', [name, String(id), String(count)]));
  const [s, ...ps] = await Promise.all([sub.exit, ...pubs.map((p) => p.exit)]);
  for (const p of ps) t.is(p.code, 0);
  t.is(s.code, 0);
  const r = s.json as SubResult;
  t.is(r.received, 2 * count);
  t.is(r.outOfOrder, 0);
  t.deepEqual(r.perProducer, { 1: count, 2: count });
  t.is(r.checksum, checksumOf([1, 2], count));
});

test('concurrent_create_of_one_name_ends_on_one_segment', async (t) => {
  const rounds = process.env.CI ? 50 : 50;
  let oneCreator = 0;
  for (let round = 0; round < rounds; round++) {
    const name = channelName(t, 'race');
    const procs = [0, 1].map(() => spawnFixture(t, 'race', [name]));
    for (const p of procs) p.child.stdin?.write('open\n');
    await Promise.all(procs.map((p) => p.waitFor('ready')));
    for (const p of procs) p.child.stdin?.write('go\n');
    const results = await Promise.all(procs.map((p) => p.exit));
    const json = results.map((r) => r.json as { created: boolean; got: number[] });
    const pids = procs.map((p) => p.child.pid).sort();
    t.true(
      results.every((r) => r.code === 0),
      `round ${round}: both processes finished`,
    );
    for (const j of json)
      t.deepEqual([...j.got].sort(), pids, `round ${round}: both messages seen`);
    if (json.filter((j) => j.created).length === 1) oneCreator++;
  }
  t.is(oneCreator, rounds, 'exactly one creator in every round');
});

test('demo_moves_every_message_between_two_processes', async (t) => {
  const demo = fileURLToPath(new URL('../../dist/demo/index.js', import.meta.url));
  const child = spawn(process.execPath, [demo, '20000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const [code] = await once(child, 'exit');
  t.is(code, 0, out);
  t.regex(out, /received {2}20,000 in/);
  t.regex(out, /\b0 lost, 0 out of order/);
});

test('send times out while the only subscriber is stopped, and goes on once it is killed', async (t) => {
  const name = channelName(t, 'stopped');
  const ch = open<number>(name, { create: true, capacity: 4096, maxMessageSize: 64 });
  t.teardown(() => ch.close());
  const sub = spawnFixture(t, 'sub', [name, '1000000']);
  await sub.waitFor('ready');
  sub.child.kill('SIGSTOP');
  let n = 0;
  while (ch.publish(n)) n++;
  t.true(n > 10, `filled the ring with ${n} messages`);
  const err = await t.throwsAsync(ch.send(-1, { timeoutMs: 300 }), { instanceOf: TimeoutError });
  t.is(err?.code, 'Timeout');
  t.false(ch.publish(-2), 'still full');
  sub.child.kill('SIGKILL');
  await sub.exit;
  // The dead subscriber's slot is reclaimed (pid + start time checked), so publishers go on.
  await ch.send(-3, { timeoutMs: 30_000 });
  t.true(ch.publish(-4));
  t.false(
    ch.stats().participants.some((p) => p.pid === sub.child.pid),
    'the dead subscriber left the table',
  );
});
