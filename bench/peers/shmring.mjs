/**
 * shmring through its public TypeScript API (`dist/`): `open`, then either `publish` per
 * message (falling back to `await send` when the ring is full, as the README shows) or
 * `publishMany` of `batch` values at a time; the consumer takes `messages()` (an RxJS
 * subscription, woken by the native waiter thread) or, with `receive: 'sync'`, loops on
 * `receiveSync` (blocking its thread in a futex wait), or with `receive: 'iterate'`
 * pulls `for await`-style from `iterate()`. Raw cells use the `raw` codec, or with
 * `view` the `rawView` codec (a view of the frame buffer per message instead of a copy).
 *
 * `node bench/peers/shmring.mjs producer|consumer` with `BENCH_CFG` = { channel, sync,
 * capacity, maxMessageSize, kind, bytes, seconds, latencyCount, gapUs, batch, receive, view }.
 */
import { open, rawView } from '../../dist/index.js';
import { config, control, NO_TS, produce, quote, rawMessage, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();
const ctl = control();
const ch = open(cfg.channel, {
  create: true,
  sync: cfg.sync,
  capacity: cfg.capacity,
  maxMessageSize: cfg.maxMessageSize,
  ...(cfg.kind === 'raw' ? { codec: cfg.view ? rawView() : 'raw' } : {}),
});

if (role === 'consumer' && cfg.receive === 'sync') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  ch.receiveSync(0); // join before the producer starts
  r.start();
  ctl.send({ event: 'ready' });
  for (;;) {
    const m = ch.receiveSync(1000);
    if (m !== undefined && r.take(m.value)) break;
  }
  ch.close();
  process.exit(0);
} else if (role === 'consumer' && cfg.receive === 'iterate') {
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  const it = ch.iterate();
  const first = it.next(); // joins now, before the producer starts
  r.start();
  ctl.send({ event: 'ready' });
  let m = await first;
  while (!m.done && !r.take(m.value)) m = await it.next();
  await it.return?.();
  ch.close();
  process.exit(0);
} else if (role === 'consumer') {
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
  /** A raw message's header (its seq and send time) written into `v`. */
  const rawInto = (v, seq, ts) => {
    v.writeDoubleLE(seq, 0);
    v.writeDoubleLE(ts, 8);
    return v;
  };
  const make = cfg.kind === 'raw' ? (seq, ts) => rawInto(buf, seq, ts) : quote;
  const many = cfg.batch > 1;
  let send;
  if (many) {
    // Batched: values gather until `batch` are there (or a phase ends), then one call. Raw
    // values are written straight into views of one slab, a view per place in the batch
    // (publishMany copies them into the ring before it returns, and a value left over for
    // `send` is sent before the next batch is written), as a careful user would.
    const pending = [];
    const slab = buf === undefined ? undefined : Buffer.alloc(cfg.bytes * cfg.batch, 0x5a);
    const views =
      slab === undefined
        ? undefined
        : Array.from({ length: cfg.batch }, (_, k) =>
            slab.subarray(k * cfg.bytes, (k + 1) * cfg.bytes),
          );
    const flushBatch = async () => {
      let from = 0;
      while (from < pending.length) {
        from += ch.publishMany(from === 0 ? pending : pending.slice(from));
        if (from < pending.length) await ch.send(pending[from++]);
      }
      pending.length = 0;
    };
    send = (seq, ts) => {
      pending.push(views === undefined ? make(seq, ts) : rawInto(views[pending.length], seq, ts));
      if (pending.length >= cfg.batch || seq < 0 || ts !== NO_TS) return flushBatch();
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
