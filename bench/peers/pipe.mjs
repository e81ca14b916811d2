/**
 * An anonymous pipe(2) between two processes (`producer | consumer`, made by `/bin/sh`),
 * carrying length-prefixed frames: one `process.stdout.write` per message (synchronous for
 * pipes on Linux: one write(2) each), `process.stdin` 'data' chunks parsed by the consumer.
 */
import { once } from 'node:events';
import {
  config,
  control,
  decoder,
  encoder,
  FrameReader,
  frame,
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
  const send = (seq, ts) => (out.write(frame(encode(seq, ts))) ? undefined : once(out, 'drain'));
  await produce(ctl, cfg, send);
  process.exit(0);
}
