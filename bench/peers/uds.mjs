/**
 * A Unix domain stream socket (`net.createServer` / `net.connect` on a path) carrying
 * length-prefixed frames: one `socket.write` per message, waiting for 'drain' when it asks
 * to (Node gathers what queues meanwhile into one writev).
 */
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
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
  const server = createServer((sock) => {
    const reader = new FrameReader((b) => {
      if (r.take(decode(b))) process.exit(0);
    });
    sock.on('data', (chunk) => reader.push(chunk));
  });
  server.listen(cfg.path, () => {
    r.start();
    ctl.send({ event: 'ready' });
  });
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
  const sock = connect(cfg.path);
  await once(sock, 'connect');
  const send = (seq, ts) => (sock.write(frame(encode(seq, ts))) ? undefined : once(sock, 'drain'));
  await produce(ctl, cfg, send);
  sock.end();
  await once(sock, 'close');
  process.exit(0);
}
