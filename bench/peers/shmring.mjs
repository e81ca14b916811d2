/**
 * shmring through its public TypeScript API (`dist/`): `open`, `publish` (falling back to
 * `await send` when the ring is full, as the README shows), `publishMany` when the API has
 * it, and `messages()` for the consumer. Raw cells use a pass-through codec.
 *
 * `node bench/peers/shmring.mjs producer|consumer` with `BENCH_CFG` = { channel, sync,
 * capacity, maxMessageSize, kind, bytes, seconds, latencyCount, gapUs, batch }.
 */
import { open } from '../../dist/index.js';
import { config, control, produce, quote, rawMessage, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const raw = { encode: (b) => b, decode: (b) => Buffer.from(b) };
const ch = open(cfg.channel, {
  create: true,
  sync: cfg.sync,
  capacity: cfg.capacity,
  maxMessageSize: cfg.maxMessageSize,
  ...(cfg.kind === 'raw' ? { codec: raw } : {}),
});

if (role === 'consumer') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const sub = ch.messages().subscribe({
    next(v) {
      if (r.take(v)) {
        sub.unsubscribe();
        ch.close();
        process.exit(0);
      }
    },
    error(e) {
      ctl.send({ event: 'error', message: e.message });
      process.exit(1);
    },
  });
  r.start();
  ctl.send({ event: 'ready' });
} else {
  // Raw cells reuse one buffer: publish copies it into the ring before it returns.
  const buf = cfg.kind === 'raw' ? rawMessage(cfg.bytes, 0, 0) : undefined;
  const make =
    cfg.kind === 'raw'
      ? (seq, ts) => {
          buf.writeDoubleLE(seq, 0);
          buf.writeDoubleLE(ts, 8);
          return buf;
        }
      : quote;
  const many = cfg.batch > 1 && typeof ch.publishMany === 'function';
  let send;
  if (many) {
    // Batched: values gather until `batch` are there (or a phase ends), then one call.
    const pending = [];
    const flushBatch = async () => {
      let from = 0;
      while (from < pending.length) {
        const n = ch.publishMany(from === 0 ? pending : pending.slice(from));
        from += typeof n === 'number' ? n : pending.length - from;
        if (from < pending.length) await ch.send(pending[from++]);
      }
      pending.length = 0;
    };
    send = (seq, ts) => {
      // Raw values must be copies while they wait in the batch.
      pending.push(buf === undefined ? make(seq, ts) : Buffer.from(make(seq, ts)));
      if (pending.length >= cfg.batch || seq < 0 || ts !== 1_700_000_000) return flushBatch();
      return undefined;
    };
  } else {
    send = (seq, ts) => {
      const v = make(seq, ts);
      return ch.publish(v) ? undefined : ch.send(v);
    };
  }
  await produce(ctl, cfg, send);
  ch.close();
  process.exit(0);
}
