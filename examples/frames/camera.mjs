/**
 * The source of a video-like pipeline: `node camera.mjs <channel> <count> <frame bytes>`.
 * Publishes `count` frames of `frame bytes` each through a `raw` channel (Buffers in,
 * Buffers out: no codec at all). Each frame starts with a 16-byte header (frame number,
 * size, and a checksum of the pixels), and its pixels are a pattern that depends on the
 * frame number, so the viewer can check every frame it gets.
 */
import { open } from 'shmring';

const [name, countArg, sizeArg] = process.argv.slice(2);
if (name === undefined) throw new Error('usage: camera.mjs <channel> <count> <frame bytes>');
const count = Number(countArg ?? 1000);
const size = Number(sizeArg ?? 1 << 20);

/** Fills `frame` with frame `n`: header, then a pattern of 32-bit words; returns it. */
function paint(frame, n) {
  const words = new Uint32Array(frame.buffer, frame.byteOffset + 16, (frame.length - 16) >>> 2);
  const base = Math.imul(n, 0x9e3779b1) >>> 0;
  for (let i = 0; i < words.length; i += 1024) words[i] = (base + i) >>> 0; // a sparse pattern
  frame.writeUInt32LE(n, 0);
  frame.writeUInt32LE(frame.length, 4);
  frame.writeUInt32LE(base, 8);
  frame.writeUInt32LE(0x5348_4d52, 12); // 'SHMR'
  return frame;
}

const frames = open(name, { codec: 'raw' });
// Two frames we paint in turn: a frame is copied into the ring by publish, so the buffer can
// be reused at once.
const buffers = [Buffer.alloc(size), Buffer.alloc(size)];
const started = process.hrtime.bigint();
let waits = 0;
for (let n = 0; n < count; n++) {
  const frame = paint(buffers[n & 1], n);
  if (!frames.publish(frame)) {
    waits++;
    await frames.send(frame); // the viewer is behind: wait for room (policy 'block')
  }
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
frames.close();
console.log(
  JSON.stringify({ role: 'camera', published: count, bytes: count * size, seconds, waits }),
);
