/**
 * An anonymous pipe(2) between two processes (`producer | consumer`, made by `/bin/sh`),
 * carrying length-prefixed frames: one `process.stdout.write` per message (synchronous for
 * pipes on Linux: one write(2) each), `process.stdin` 'data' chunks parsed by the consumer.
 * With `batch` > 1 (the 'pipe-many' cell, like for like with shmring's publishMany): frames
 * are encoded straight into one buffer, written once per `batch` messages (or at once for a
 * phase's end and each latency message): one write(2) carries many frames.
 */
import { once } from 'node:events';
import {
  config,
  control,
  decoder,
  encoder,
  FrameReader,
  frame,
  NO_TS,
  produce,
  receiver,
} from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();

if (role === 'consumer') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = decoder(cfg);
  const reader = new FrameReader((b) => {
    if (r.take(decode(b))) process.exit(0);
  });
  process.stdin.on('data', (chunk) => reader.push(chunk));
  r.start();
  ctl.send({ event: 'ready' });
} else {
  const encode = encoder(cfg);
  const out = process.stdout;
  let send;
  if (cfg.batch > 1) {
    // A fresh buffer per write (the stream may still hold the last one), grown as needed.
    let size = cfg.batch * (4 + Math.max(64, cfg.bytes));
    let buf = Buffer.allocUnsafe(size);
    let at = 0;
    let n = 0;
    const write = () => {
      const ok = out.write(buf.subarray(0, at));
      buf = Buffer.allocUnsafe(size);
      at = 0;
      n = 0;
      return ok ? undefined : once(out, 'drain');
    };
    send = (seq, ts) => {
      const v = encode(seq, ts);
      if (at + 4 + v.length > size) {
        if (at > 0) out.write(buf.subarray(0, at));
        size = Math.max(size, 2 * (4 + v.length));
        buf = Buffer.allocUnsafe(size);
        at = 0;
      }
      buf.writeUInt32LE(v.length, at);
      v.copy(buf, at + 4);
      at += 4 + v.length;
      if (++n >= cfg.batch || seq < 0 || ts !== NO_TS) return write();
      return undefined;
    };
  } else {
    send = (seq, ts) => (out.write(frame(encode(seq, ts))) ? undefined : once(out, 'drain'));
  }
  await produce(ctl, cfg, send);
  process.exit(0);
}
