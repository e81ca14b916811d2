/**
 * NATS core (`@nats-io/transport-node`) through a nats-server the harness started on
 * 127.0.0.1 (`BENCH_SERVER_PORT`): the producer `publish`es each message (the client gathers
 * them into its outbound buffer and writes them in batches) and waits for a `flush()` (a
 * PING/PONG round trip) every `WINDOW` messages, so that at most that many are queued and the
 * server never cuts the subscriber off as a slow consumer; the consumer's subscription
 * callback gets each message's bytes.
 */
import { connect } from '@nats-io/transport-node';
import { config, control, decoder, encoder, NO_TS, produce, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const servers = `127.0.0.1:${process.env.BENCH_SERVER_PORT}`;
const subject = `bench.${cfg.channel}`;
const WINDOW = 1024;

const nc = await connect({ servers, noEcho: true });
if (role === 'consumer') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const decode = decoder(cfg);
  nc.subscribe(subject, {
    callback: (err, m) => {
      if (err) {
        ctl.send({ event: 'error', message: err.message });
        process.exit(1);
      }
      if (r.take(decode(m.data))) process.exit(0);
    },
  });
  await nc.flush(); // the server has the subscription
  r.start();
  ctl.send({ event: 'ready' });
} else {
  // The client may hold the bytes until it writes them: a fresh buffer per message.
  const encode = encoder(cfg, { copy: true });
  let n = 0;
  const send = (seq, ts) => {
    nc.publish(subject, encode(seq, ts));
    // Latency sends are flushed at once; a flood every WINDOW messages.
    if (ts !== NO_TS || seq < 0 || ++n % WINDOW === 0) return nc.flush();
    return undefined;
  };
  await produce(ctl, cfg, send, () => nc.flush());
  await nc.close();
  process.exit(0);
}
