/**
 * ZeroMQ (zeromq.js v6) PUSH → PULL over `ipc://`: `await push.send(bytes)` per message,
 * `for await (const [msg] of pull)` in the consumer. ZeroMQ frames and batches on its own
 * I/O thread; high-water marks are left at their defaults.
 */

import { Packr, Unpackr } from 'msgpackr';
import { Pull, Push } from 'zeromq';
import { config, control, produce, quote, rawMessage, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const endpoint = `ipc://${cfg.path}`;

if (role === 'consumer') {
  const unpackr = new Unpackr({ useRecords: false });
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = cfg.kind === 'raw' ? (b) => b : (b) => unpackr.unpack(b);
  const pull = new Pull();
  await pull.bind(endpoint);
  r.start();
  ctl.send({ event: 'ready' });
  for await (const [msg] of pull) {
    if (r.take(decode(msg))) break;
  }
  process.exit(0);
} else {
  const packr = new Packr({ useRecords: false });
  const template = rawMessage(cfg.bytes || 16, 0, 0);
  const encode =
    cfg.kind === 'raw'
      ? (seq, ts) => {
          template.writeDoubleLE(seq, 0);
          template.writeDoubleLE(ts, 8);
          // A fresh copy: ZeroMQ may hold on to the bytes after send() resolves.
          return Buffer.from(template);
        }
      : (seq, ts) => packr.pack(quote(seq, ts));
  const push = new Push();
  push.connect(endpoint);
  const send = (seq, ts) => push.send(encode(seq, ts));
  await produce(ctl, cfg, send);
  push.linger = 10_000;
  push.close();
  process.exit(0);
}
