/**
 * `npm run example:frames [-- --count N] [--frame-kib N] [--json]`
 *
 * Large messages: a camera process pushes 1 MiB frames through a `raw` channel to a viewer
 * process, and this prints the throughput in MB/s. The channel has an 8 MiB ring (room for
 * about 8 frames in flight) and a 1 MiB + 64 B largest message. Frames are copied into the
 * ring and out of it (`raw` hands the viewer a fresh Buffer per frame); zero-copy loans of
 * ring space are not built yet.
 */
import { open } from 'shmring';
import { beside, fmt, options, Run } from '../lib/processes.mjs';

const opts = options({ count: 2000 }, { 'frame-kib': { type: 'string' } });
const frameBytes = Number(opts['frame-kib'] ?? 1024) * 1024;
const here = (f) => beside(import.meta.url, f);

const run = new Run();
const name = run.channel('frames', 'video');
// Sized here, once; the camera and viewer attach and adopt these settings.
open(name, {
  create: true,
  codec: 'raw',
  capacity: 8 * 1024 * 1024,
  maxMessageSize: frameBytes + 64,
}).close();

console.log(`frames: ${fmt(opts.count)} frames of ${fmt(frameBytes / 1024)} KiB, camera -> viewer`);
try {
  const viewer = run.node(here('viewer.mjs'), [name, opts.count], { readyLine: 'ready' });
  await viewer.ready;
  const camera = run.node(here('camera.mjs'), [name, opts.count, frameBytes]);
  const [c, v] = await Promise.all([camera.result, viewer.result]);
  const mbps = v.bytes / v.seconds / 1e6;
  const ok = v.received === opts.count && v.damaged === 0 && v.outOfOrder === 0;
  console.log(`camera published ${fmt(c.published)} frames in ${c.seconds.toFixed(3)} s`);
  console.log(
    `viewer received  ${fmt(v.received)} frames, ${fmt(v.bytes / 1e6, 1)} MB in ` +
      `${v.seconds.toFixed(3)} s: ${fmt(mbps)} MB/s, ${fmt(v.received / v.seconds)} frames/s`,
  );
  console.log(`${v.damaged} damaged, ${v.outOfOrder} out of order`);
  if (!ok) process.exitCode = 1;
  if (opts.json) {
    console.log(
      JSON.stringify({
        example: 'frames',
        ok,
        frames: v.received,
        frameBytes,
        bytes: v.bytes,
        damaged: v.damaged,
        outOfOrder: v.outOfOrder,
        mbPerSecond: mbps,
      }),
    );
  }
} catch (e) {
  console.error(`frames: ${e.message}`);
  process.exitCode = 1;
} finally {
  run.cleanup();
}
