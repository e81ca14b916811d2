/**
 * An anonymous pipe(2) between two processes (`producer | consumer`, made by `/bin/sh`),
 * carrying length-prefixed frames: one `process.stdout.write` per message (synchronous for
 * pipes on Linux: one write(2) each), `process.stdin` 'data' chunks parsed by the consumer.
 */
import { once } from 'node:events';
import { Packr, Unpackr } from 'msgpackr';
import {
  config,
  control,
  FrameReader,
  frame,
  produce,
  quote,
  rawMessage,
  receiver,
} from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();

if (role === 'consumer') {
  const unpackr = new Unpackr({ useRecords: false });
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = cfg.kind === 'raw' ? (b) => b : (b) => unpackr.unpack(b);
  const reader = new FrameReader((b) => {
    if (r.take(decode(b))) process.exit(0);
  });
  process.stdin.on('data', (chunk) => reader.push(chunk));
  r.start();
  ctl.send({ event: 'ready' });
} else {
  const packr = new Packr({ useRecords: false });
  const template = rawMessage(cfg.bytes || 16, 0, 0);
  const encode =
    cfg.kind === 'raw'
      ? (seq, ts) => {
          template.writeDoubleLE(seq, 0);
          template.writeDoubleLE(ts, 8);
          return template;
        }
      : (seq, ts) => packr.pack(quote(seq, ts));
  const out = process.stdout;
  const send = (seq, ts) => (out.write(frame(encode(seq, ts))) ? undefined : once(out, 'drain'));
  await produce(ctl, cfg, send);
  process.exit(0);
}
