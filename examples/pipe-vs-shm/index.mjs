/**
 * `npm run example:pipe-vs-shm [-- --count N] [--json]`
 *
 * The classic comparison, in one command and one run: the same `count` messages (quotes
 * encoded once with msgpack, ~45 bytes each) go from this process to a child process
 *
 *  1. through an anonymous pipe (the child's stdin), one framed write per message
 *     (`[u32 LE length][bytes]`), honouring the pipe's back-pressure; and
 *  2. through a shmring channel, one `publish` per message (the bytes as they are, codec
 *     'raw'), waiting for room when the ring is full.
 *
 * The child decodes every message with msgpack and checks the sequence numbers in both
 * cases; the rate is taken on the receiving side from the first message to the last.
 * Per-message sends on both sides: batching helps both (see `publishMany` and the
 * benchmarks, `npm run bench`), so it is left out of this like-for-like comparison.
 */
import { once } from 'node:events';
import { msgpack, open } from 'shmring';
import { beside, fmt, options, Run } from '../lib/processes.mjs';

const opts = options({ count: 500_000 });
const sink = beside(import.meta.url, 'sink.mjs');
const run = new Run();

const codec = msgpack();
const SYMBOLS = ['ACME', 'INIT', 'GLOBX', 'UMBR'];
const messages = Array.from({ length: opts.count }, (_, seq) =>
  Buffer.from(
    codec.encode({ seq, sym: SYMBOLS[seq % 4], px: 100 + (seq % 400) / 4, qty: 100, ts: 0 }),
  ),
);
const frames = messages.map((m) => {
  const f = Buffer.allocUnsafe(4 + m.length);
  f.writeUInt32LE(m.length, 0);
  m.copy(f, 4);
  return f;
});
const avgBytes = messages.reduce((n, m) => n + m.length, 0) / opts.count;

console.log(
  `pipe-vs-shm: ${fmt(opts.count)} messages of ~${Math.round(avgBytes)} bytes (msgpack), ` +
    'one process to another',
);
try {
  // 1. The pipe.
  const pipeSink = run.start(process.execPath, [sink, 'pipe', String(opts.count)], {
    readyLine: 'ready',
    label: 'sink pipe',
    stdin: 'pipe',
  });
  await pipeSink.ready;
  const stdin = pipeSink.child.stdin;
  for (const f of frames) {
    if (!stdin.write(f)) await once(stdin, 'drain');
  }
  stdin.end();
  const p = await pipeSink.result;

  // 2. The channel.
  const name = run.channel('pipevsshm', 'quotes');
  const ch = open(name, { create: true, codec: 'raw' });
  const shmSink = run.node(sink, ['shm', name, opts.count], { readyLine: 'ready' });
  await shmSink.ready;
  for (const m of messages) {
    if (!ch.publish(m)) await ch.send(m);
  }
  const s = await shmSink.result;
  ch.close();

  const pipeRate = p.received / p.seconds;
  const shmRate = s.received / s.seconds;
  const ok = p.received === opts.count && s.received === opts.count;
  const clean = p.outOfOrder === 0 && s.outOfOrder === 0;
  console.log(`pipe     ${fmt(pipeRate).padStart(12)} msg/s  (${p.seconds.toFixed(3)} s)`);
  console.log(`shmring  ${fmt(shmRate).padStart(12)} msg/s  (${s.seconds.toFixed(3)} s)`);
  console.log(
    `ratio    ${(shmRate / pipeRate).toFixed(2)}x (shmring / pipe), measured in this run`,
  );
  if (!ok || !clean) {
    console.log('FAILED: messages missing or out of order');
    process.exitCode = 1;
  }
  if (opts.json) {
    console.log(
      JSON.stringify({
        example: 'pipe-vs-shm',
        ok: ok && clean,
        count: opts.count,
        pipe: { received: p.received, outOfOrder: p.outOfOrder, msgPerSecond: pipeRate },
        shm: { received: s.received, outOfOrder: s.outOfOrder, msgPerSecond: shmRate },
        ratio: shmRate / pipeRate,
      }),
    );
  }
} catch (e) {
  console.error(`pipe-vs-shm: ${e.message}`);
  process.exitCode = 1;
} finally {
  run.cleanup();
}
