/**
 * Redis pub/sub (`ioredis`) through a redis-server the harness started on 127.0.0.1
 * (`BENCH_SERVER_PORT`): the producer sends one PUBLISH per message without waiting for its
 * reply, and waits for the reply of every `WINDOW`-th (Redis answers in order, so then every
 * earlier one is done too): at most that many in flight. The consumer SUBSCRIBEs on a
 * connection of its own and gets each message's bytes ('messageBuffer').
 */
import Redis from 'ioredis';
import { config, control, decoder, encoder, NO_TS, produce, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const port = Number(process.env.BENCH_SERVER_PORT);
const channel = `bench.${cfg.channel}`;
const WINDOW = 1024;

// Auto-pipelining: the PUBLISHes of one tick go out in one write (what a careful user sets).
const client = new Redis({
  host: '127.0.0.1',
  port,
  maxRetriesPerRequest: 0,
  enableAutoPipelining: true,
});
client.on('error', (e) => {
  ctl.send({ event: 'error', message: `redis: ${e.message}` });
  process.exit(1);
});
if (role === 'consumer') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = decoder(cfg);
  client.on('messageBuffer', (_ch, b) => {
    if (r.take(decode(b))) process.exit(0);
  });
  await client.subscribe(channel); // resolves on the server's confirmation
  r.start();
  ctl.send({ event: 'ready' });
} else {
  // The client holds the bytes until it writes them: a fresh buffer per message.
  const encode = encoder(cfg, { copy: true });
  let n = 0;
  let last = Promise.resolve();
  const send = (seq, ts) => {
    last = client.publish(channel, encode(seq, ts));
    if (ts !== NO_TS || seq < 0 || ++n % WINDOW === 0) return last;
    return undefined;
  };
  await produce(ctl, cfg, send, () => last);
  client.disconnect();
  process.exit(0);
}
