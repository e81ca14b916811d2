/**
 * The sink of the pipeline: `node viewer.mjs <channel> <count>`. Subscribes, prints
 * `ready`, checks each frame's header and pattern, and prints one JSON line: frames and
 * bytes received, how many were damaged or out of order, and the rate from the first frame
 * to the last.
 */
import { open } from 'shmring';

const [name, countArg] = process.argv.slice(2);
if (name === undefined) throw new Error('usage: viewer.mjs <channel> <count>');
const count = Number(countArg ?? 1000);

/** Whether `frame` is frame `n` as camera.mjs paints it. */
function intact(frame, n) {
  if (frame.length < 16 || frame.readUInt32LE(4) !== frame.length) return false;
  if (frame.readUInt32LE(12) !== 0x5348_4d52) return false;
  const base = Math.imul(n, 0x9e3779b1) >>> 0;
  if (frame.readUInt32LE(8) !== base) return false;
  const words = (frame.length - 16) >>> 2;
  for (let i = 0; i < words; i += 1024) {
    if (frame.readUInt32LE(16 + 4 * i) !== (base + i) >>> 0) return false;
  }
  return true;
}

const frames = open(name, { codec: 'raw' });
let received = 0;
let bytes = 0;
let damaged = 0;
let outOfOrder = 0;
let first = 0n;
const sub = frames.messages().subscribe({
  next(frame) {
    if (received === 0) first = process.hrtime.bigint();
    const n = frame.readUInt32LE(0);
    if (n !== received) outOfOrder++;
    if (!intact(frame, n)) damaged++;
    received++;
    bytes += frame.length;
    if (received === count) {
      const seconds = Number(process.hrtime.bigint() - first) / 1e9;
      console.log(
        JSON.stringify({ role: 'viewer', received, bytes, damaged, outOfOrder, seconds }),
      );
      sub.unsubscribe();
      frames.close();
    }
  },
  error(e) {
    console.error(`viewer: ${e.message}`);
    process.exitCode = 1;
  },
});
console.log('ready');
