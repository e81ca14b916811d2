/**
 * A Unix domain stream socket (`net.createServer` / `net.connect` on a path) carrying
 * length-prefixed frames: one `socket.write` per message, waiting for 'drain' when it asks
 * to (Node gathers what queues meanwhile into one writev).
 */
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
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
  const encode = encoder(cfg);
  const sock = connect(cfg.path);
  await once(sock, 'connect');
  const send = (seq, ts) => (sock.write(frame(encode(seq, ts))) ? undefined : once(sock, 'drain'));
  await produce(ctl, cfg, send);
  sock.end();
  await once(sock, 'close');
  process.exit(0);
}
