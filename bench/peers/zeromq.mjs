/**
 * ZeroMQ (zeromq.js v6) PUSH → PULL over `ipc://`: `await push.send(bytes)` per message,
 * `for await (const [msg] of pull)` in the consumer. ZeroMQ frames and batches on its own
 * I/O thread; high-water marks are left at their defaults.
 */

import { Pull, Push } from 'zeromq';
import { config, control, decoder, encoder, produce, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const endpoint = `ipc://${cfg.path}`;

if (role === 'consumer') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = decoder(cfg);
  const pull = new Pull();
  await pull.bind(endpoint);
  r.start();
  ctl.send({ event: 'ready' });
  for await (const [msg] of pull) {
    if (r.take(decode(msg))) break;
  }
  process.exit(0);
} else {
  // A fresh copy each time: ZeroMQ may hold on to the bytes after send() resolves.
  const encode = encoder(cfg, { copy: true });
  const push = new Push();
  push.connect(endpoint);
  const send = (seq, ts) => push.send(encode(seq, ts));
  await produce(ctl, cfg, send);
  push.linger = 10_000;
  push.close();
  process.exit(0);
}
