/**
 * Shared pieces of the benchmark harness: payloads, the message header every transport
 * carries, stream framing, the control channel between the harness and its role processes,
 * and statistics.
 *
 * Every role process (a producer or a consumer of one transport) talks to the harness over a
 * control socket on file descriptor `BENCH_CTRL_FD` (3 unless set): it writes one JSON line
 * per event (`ready`, results) and reads `go` lines (start a phase).
 */
import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { Packr, Unpackr } from 'msgpackr';

/** The 5-field quote every "object" cell publishes (~40 bytes of msgpack). */
export function quote(seq, ts) {
  return { seq, sym: 'ACME', px: 100 + (seq % 100) / 4, qty: 100 + (seq % 7), ts };
}

/** `ts` of a quote sent during a throughput phase: a constant (no clock read per message). */
export const NO_TS = 1_700_000_000;

/** Payload cells, in the order they are run. `bytes` of the object is measured at startup. */
export const PAYLOADS = [
  { id: 'obj', label: 'object ~40 B (msgpack)', kind: 'object', bytes: 0 },
  { id: '32B', label: 'raw 32 B', kind: 'raw', bytes: 32 },
  { id: '64B', label: 'raw 64 B', kind: 'raw', bytes: 64 },
  { id: '256B', label: 'raw 256 B', kind: 'raw', bytes: 256 },
  { id: '4KiB', label: 'raw 4 KiB', kind: 'raw', bytes: 4096 },
  { id: '64KiB', label: 'raw 64 KiB', kind: 'raw', bytes: 65536 },
  { id: '1MiB', label: 'raw 1 MiB', kind: 'raw', bytes: 1048576 },
];

/**
 * Raw payloads start with a 16-byte header: the sequence number (f64 LE, -1 ends a phase) and
 * the send time in ns of `process.hrtime.bigint()` (f64 LE; 0 during throughput phases).
 * CLOCK_MONOTONIC is one clock for every process on a Linux host, so a receiver can subtract.
 */
export function rawMessage(bytes, seq, ts) {
  const b = Buffer.allocUnsafe(bytes);
  b.fill(0x5a, 16);
  b.writeDoubleLE(seq, 0);
  b.writeDoubleLE(ts, 8);
  return b;
}

/**
 * The producer side's message maker for `cfg.kind`: a msgpack-packed quote, or the raw
 * template with the sequence and time written in. The returned bytes are reused by the next
 * call unless `copy` (for transports that may hold on to them after the send returns).
 */
export function encoder(cfg, { copy = false } = {}) {
  if (cfg.kind !== 'raw') {
    const packr = new Packr({ useRecords: false });
    return (seq, ts) => packr.pack(quote(seq, ts));
  }
  const template = rawMessage(cfg.bytes || 16, 0, 0);
  return (seq, ts) => {
    template.writeDoubleLE(seq, 0);
    template.writeDoubleLE(ts, 8);
    return copy ? Buffer.from(template) : template;
  };
}

/** The consumer side's decoder for `cfg.kind`: msgpack, or the raw bytes as they are. */
export function decoder(cfg) {
  if (cfg.kind === 'raw') return (b) => b;
  const unpackr = new Unpackr({ useRecords: false });
  return (b) => unpackr.unpack(b);
}

/** Sequence number of a received message (either kind). */
export function seqOf(v) {
  if (Buffer.isBuffer(v)) return v.readDoubleLE(0);
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, 8).readDoubleLE(0) : v.seq;
}

/** Send time (ns) of a received message (either kind). */
export function tsOf(v) {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, 16).readDoubleLE(8) : v.ts;
}

/** Now, in ns of CLOCK_MONOTONIC, as a double (exact to the ns below ~104 days of uptime). */
export const nowNs = () => Number(process.hrtime.bigint());

/** CPU seconds (user + system) since `from` (a `process.cpuUsage()` value). */
export function cpuSince(from) {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

/**
 * The role side of the control channel: `send(obj)` writes a JSON line, `go()` resolves at
 * the next `go` line from the harness.
 */
export function control() {
  const fd = Number(process.env.BENCH_CTRL_FD ?? 3);
  const sock = new Socket({ fd, readable: true, writable: false });
  let buffered = '';
  let goes = 0;
  const waiting = [];
  sock.setEncoding('utf8');
  sock.on('data', (s) => {
    buffered += s;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === 'go') {
        const w = waiting.shift();
        if (w) w();
        else goes++;
      }
      nl = buffered.indexOf('\n');
    }
  });
  // The harness going away ends this process: nothing is left to report to.
  sock.on('end', () => process.exit(3));
  sock.on('error', () => process.exit(3));
  return {
    send(obj) {
      writeSync(fd, `${JSON.stringify(obj)}\n`);
    },
    go() {
      if (goes > 0) {
        goes--;
        return Promise.resolve();
      }
      return new Promise((r) => waiting.push(r));
    },
    close() {
      sock.destroy();
    },
  };
}

/** The benchmark configuration of a role process, from `BENCH_CFG` (JSON). */
export function config() {
  return JSON.parse(process.env.BENCH_CFG ?? '{}');
}

/**
 * Length-prefixed framing over a byte stream (`[len u32 LE][payload]`), for pipe and Unix
 * socket peers. `push(chunk)` calls `onFrame(view)` for each whole frame; frames split over
 * chunks are gathered once, not re-concatenated per chunk.
 */
export class FrameReader {
  #onFrame;
  #parts = [];
  #have = 0;
  #need = -1;
  constructor(onFrame) {
    this.#onFrame = onFrame;
  }
  push(chunk) {
    if (this.#have > 0) {
      this.#parts.push(chunk);
      this.#have += chunk.length;
      if (this.#need < 0 && this.#have >= 4) {
        this.#need = 4 + concatHead(this.#parts).readUInt32LE(0);
      }
      if (this.#need < 0 || this.#have < this.#need) return;
      chunk = Buffer.concat(this.#parts, this.#have);
      this.#parts = [];
      this.#have = 0;
      this.#need = -1;
    }
    let at = 0;
    const end = chunk.length;
    while (end - at >= 4) {
      const len = chunk.readUInt32LE(at);
      if (end - at - 4 < len) break;
      this.#onFrame(chunk.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at < end) {
      const rest = chunk.subarray(at);
      this.#parts.push(rest);
      this.#have = rest.length;
      this.#need = rest.length >= 4 ? 4 + rest.readUInt32LE(0) : -1;
    }
  }
}

function concatHead(parts) {
  return parts[0].length >= 4 ? parts[0] : Buffer.concat(parts).subarray(0, 4);
}

/** A frame (`[len u32 LE][payload]`) in one fresh buffer, ready for one write. */
export function frame(payload) {
  const f = Buffer.allocUnsafe(4 + payload.length);
  f.writeUInt32LE(payload.length, 0);
  payload.copy(f, 4);
  return f;
}

/** p-th percentile (0..100) of an ascending array, nearest rank. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** p50/p99/p99.9 in µs of latency samples in ns (Float64Array, sorted in place). */
export function latencySummary(samples) {
  samples.sort();
  return {
    n: samples.length,
    p50us: percentile(samples, 50) / 1e3,
    p99us: percentile(samples, 99) / 1e3,
    p999us: percentile(samples, 99.9) / 1e3,
    maxus: samples.length ? samples[samples.length - 1] / 1e3 : Number.NaN,
  };
}

/**
 * Consumer bookkeeping shared by every transport, phase by phase (each ends with a -1
 * marker): a warm-up (counted, not reported), the throughput phase (counts and checks
 * order), the latency phase (one-way latency of each message with `seq >= skip`; the first
 * `skip` warm the path up). Reports each phase on the control channel. `take(v)` returns
 * true once the last phase ended.
 */
export function receiver(ctl, latencyCount, skip) {
  let phase = 0;
  let received = 0;
  let expected = 0;
  let lost = 0;
  let outOfOrder = 0;
  let cpu = process.cpuUsage();
  const lat = new Float64Array(latencyCount);
  let nLat = 0;
  return {
    /** Marks the start of CPU accounting (call when ready). */
    start() {
      cpu = process.cpuUsage();
    },
    take(v) {
      const seq = seqOf(v);
      if (phase === 0) {
        if (seq >= 0) return false;
        phase = 1;
        cpu = process.cpuUsage();
        ctl.send({ event: 'warm' });
        return false;
      }
      if (phase === 1) {
        if (seq >= 0) {
          received++;
          if (seq > expected) lost += seq - expected;
          if (seq < expected) outOfOrder++;
          else expected = seq + 1;
          return false;
        }
        ctl.send({
          event: 'throughput',
          end: nowNs(),
          received,
          lost,
          outOfOrder,
          cpuSec: cpuSince(cpu),
        });
        phase = 2;
        return false;
      }
      if (seq >= 0) {
        if (seq >= skip && nLat < lat.length) lat[nLat++] = nowNs() - tsOf(v);
        return false;
      }
      ctl.send({ event: 'latency', ...latencySummary(lat.subarray(0, nLat)) });
      phase = 3;
      return true;
    },
  };
}

/**
 * The producer's phases over a transport given as `send(seq, ts)` (returns undefined, or a
 * promise meaning "wait before the next one"), each started by a `go` from the harness and
 * ended by a -1 marker. Warm-up and throughput: as fast as the transport takes messages,
 * for `warmup` and `seconds`. Latency: `skip + latencyCount` messages, each stamped just
 * before it is handed over, `gapUs` apart (the event loop keeps running between them).
 */
export async function produce(ctl, cfg, send, flush = async () => {}) {
  ctl.send({ event: 'ready' });
  // Look at the clock every `every` messages: often enough for large payloads, rarely
  // enough that small ones do not pay for it.
  const every = cfg.bytes >= 65536 ? 1 : cfg.bytes >= 4096 ? 16 : 256;
  const flood = async (seconds) => {
    const deadline = nowNs() + seconds * 1e9;
    let seq = 0;
    for (;;) {
      const p = send(seq, NO_TS);
      if (p !== undefined) await p;
      seq++;
      if (seq % every === 0 && nowNs() >= deadline) break;
    }
    const p = send(-1, NO_TS);
    if (p !== undefined) await p;
    await flush();
    return seq;
  };
  await ctl.go();
  await flood(cfg.warmup);
  await ctl.go();
  const cpu = process.cpuUsage();
  const start = nowNs();
  const sent = await flood(cfg.seconds);
  ctl.send({ event: 'produced', start, sent, cpuSec: cpuSince(cpu) });
  await ctl.go();
  const gap = cfg.gapUs * 1e3;
  let next = nowNs();
  for (let i = 0; i < cfg.latencySkip + cfg.latencyCount; i++) {
    next += gap;
    const q = send(i, nowNs());
    if (q !== undefined) await q;
    // Wait with the event loop running: a blocked loop would hold back async transports.
    while (nowNs() < next) await new Promise(setImmediate);
  }
  const q = send(-1, nowNs());
  if (q !== undefined) await q;
  await flush();
  ctl.send({ event: 'done' });
  // Stay until the consumer has everything: exiting now could drop what a transport still
  // queues in this process (ZeroMQ's I/O thread, a socket's write queue).
  await ctl.go();
}
