/**
 * tinybench micro-benchmarks, one process: the native calls (publish, publishMany, drain)
 * and the codecs, each beside a JS baseline doing the same job without shmring. Every task
 * does a batch of `N` operations per iteration (timer overhead would swamp single calls);
 * "per message" divides by the batch.
 *
 * `node bench/micro.mjs [--quick]` prints one JSON line per task on stdout:
 * { group, task, nsPerOp, perOp, nsPerMessage, messagesPerSec, rme }.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { Packr, RESET_BUFFER_MODE, REUSE_BUFFER_MODE, Unpackr } from 'msgpackr';
import { Bench } from 'tinybench';
import { decodeAt, encodeRange } from '../dist/codec.js';
import { msgpack, open, unlink } from '../dist/index.js';
import { NO_TS, quote } from './lib.mjs';

// `--quick` only; anything else is an error (exit 2).
let quick;
try {
  ({ quick } = parseArgs({
    strict: true,
    options: { quick: { type: 'boolean', default: false } },
  }).values);
} catch (e) {
  console.error(`micro: ${e.message}`);
  process.exit(2);
}
const native = createRequire(import.meta.url)('../native/shmring.linux-x64-gnu.node');
const N = 1024;
const name = `bench-${process.pid}-micro`;
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
const quotes = Array.from({ length: N }, (_, i) => quote(i, NO_TS));
const encoded = quotes.map((q) => Buffer.from(packr.pack(q)));
const msgBytes = encoded[0].length;
// The decoder messages() uses for a frame in a drained batch.
const codecDecodeAt = msgpack()[decodeAt];
// The encoder publish uses (its reused buffer, no view of each message).
const codecEncodeRange = msgpack()[encodeRange];

// A channel with nobody subscribed never fills: publish measures claim + copy + commit. The
// native per-message calls name the channel (or subscription) by its handle.
const nat = native.NativeChannel.open(name, { create: true, capacity: 1 << 24 });
const h = nat.handle();
const ch = open(name);
// One packed batch for publishMany: the N messages back to back, with their end offsets.
const packed = Buffer.concat(encoded);
const ends = new Uint32Array(N);
for (let i = 0, at = 0; i < N; i++) {
  at += encoded[i].length;
  ends[i] = at;
}
// A JS ring to compare with: the same bytes copied into a 16 MiB Buffer, with a 4-byte header.
const jsRing = Buffer.alloc(1 << 24);
let jsAt = 0;
const frame = Buffer.alloc(N * (msgBytes + 4));
// Drain target, and a pre-filled frame buffer for the decode tasks.
const out = Buffer.allocUnsafe(1 << 20);

const rows = [];
const add = (bench, group, task, fn, opts) => bench.add(`${group}\t${task}`, fn, opts);
const bench = new Bench({ time: quick ? 150 : 600, warmupTime: quick ? 50 : 200 });

add(bench, 'publish 40 B', 'native publish(h, buf)', () => {
  for (let i = 0; i < N; i++) native.publish(h, encoded[i]);
});
add(bench, 'publish 40 B', 'JS baseline: Buffer.copy into a ring', () => {
  for (let i = 0; i < N; i++) {
    const b = encoded[i];
    if (jsAt + 4 + b.length > jsRing.length) jsAt = 0;
    jsRing.writeUInt32LE(b.length, jsAt);
    b.copy(jsRing, jsAt + 4);
    jsAt += (4 + b.length + 7) & ~7;
  }
});
add(bench, 'publish 40 B', 'native publishMany(h, buf, ends), 1024 per call', () => {
  native.publishMany(h, packed, ends);
});
add(bench, 'publish object', 'Channel.publish(obj) (msgpack + native)', () => {
  for (let i = 0; i < N; i++) ch.publish(quotes[i]);
});
if (typeof ch.publishMany === 'function') {
  add(bench, 'publish object', 'Channel.publishMany(objs), 1024 per call', () => {
    ch.publishMany(quotes);
  });
}
add(bench, 'publish object', 'JS baseline: msgpackr pack(obj) only', () => {
  for (let i = 0; i < N; i++) packr.pack(quotes[i]);
});

// Drain: a subscriber, refilled before each iteration (not timed) with N messages.
let sub;
let subH;
let filled = 0;
add(
  bench,
  'drain 1024 × 40 B',
  'native drain(h, buf, 1024)',
  () => {
    filled = native.drain(subH, out, N);
  },
  {
    beforeAll() {
      sub = nat.subscribe(() => {});
      subH = sub.handle();
    },
    beforeEach() {
      native.publishMany(h, packed, ends);
    },
    afterAll() {
      sub.close();
    },
  },
);
add(bench, 'drain 1024 × 40 B', 'JS baseline: one Buffer.copy of the same frames', () => {
  jsRing.copy(frame, 0, 0, frame.length);
});
add(bench, 'decode 1024 drained', 'walk frames + the msgpack codec (what messages() does)', () => {
  let at = 0;
  for (let i = 0; i < N; i++) {
    const len = out.readUInt32LE(at);
    codecDecodeAt(out, at + 4, at + 4 + len);
    at += 4 + len;
  }
});
add(bench, 'decode 1024 drained', 'walk frames + Buffer.from(view) copy (raw codec before)', () => {
  let at = 0;
  for (let i = 0; i < N; i++) {
    const len = out.readUInt32LE(at);
    Buffer.from(out.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
});
const json = quotes.map((q) => JSON.stringify(q));
add(bench, 'codec', 'msgpackr pack', () => {
  for (let i = 0; i < N; i++) packr.pack(quotes[i]);
});
// What the msgpack codec's publish path packs with: its one buffer, reused, and no view of
// each message made (src/codec.ts, `encodeRange`).
const reusing = new Packr({ useRecords: false });
add(bench, 'codec', 'msgpackr pack, reused buffer, no view (what publish did)', () => {
  for (let i = 0; i < N; i++) reusing.pack(quotes[i], REUSE_BUFFER_MODE | RESET_BUFFER_MODE);
});
// What the msgpack codec's publish path packs a flat object with: msgpackr's bytes, written
// without it (src/flat.ts).
add(bench, 'codec', 'the msgpack codec, flat object (what publish does)', () => {
  for (let i = 0; i < N; i++) codecEncodeRange(quotes[i]);
});
add(bench, 'codec', 'msgpackr unpack', () => {
  for (let i = 0; i < N; i++) unpackr.unpack(encoded[i]);
});
// msgpack records (not used: the msgpack codec sets `useRecords: false`): what shared
// structures would save. One Packr and one Unpackr share a structures array up front, as a
// segment-held copy would let them.
const shared = [];
const recPackr = new Packr({ useRecords: true, structures: shared });
const recUnpackr = new Unpackr({ useRecords: true, structures: shared });
const recEncoded = quotes.map((q) => Buffer.from(recPackr.pack(q)));
add(
  bench,
  'codec',
  `msgpackr pack, records (${recEncoded[0].length} B; not used: shared record structures are a later feature)`,
  () => {
    for (let i = 0; i < N; i++) recPackr.pack(quotes[i]);
  },
);
add(
  bench,
  'codec',
  'msgpackr unpack, records (not used: shared record structures are a later feature)',
  () => {
    for (let i = 0; i < N; i++) recUnpackr.unpack(recEncoded[i]);
  },
);
add(bench, 'codec', 'JS baseline: JSON.stringify', () => {
  for (let i = 0; i < N; i++) JSON.stringify(quotes[i]);
});
add(bench, 'codec', 'JS baseline: JSON.parse', () => {
  for (let i = 0; i < N; i++) JSON.parse(json[i]);
});

// Decoding choices (src/codec.ts), in a bench of their own run after the one above, so the
// other shapes and string paths they take through msgpackr cannot slow its tasks (V8's
// inline caches turn polymorphic). A range in the batch buffer sends msgpackr to its native
// string extractor, which pays off for larger messages only; the raw codec copies by
// offsets. "(now)" marks what messages() does.
async function decodeChoices() {
  const choices = new Bench({ time: quick ? 150 : 600, warmupTime: quick ? 50 : 200 });
  const range = { start: 0, end: 0 };
  const walk = (buf, each) => {
    let at = 0;
    for (let i = 0; i < N; i++) {
      const len = buf.readUInt32LE(at);
      each(buf, at + 4, at + 4 + len);
      at += 4 + len;
    }
  };
  const viaView = (buf, start, end) => unpackr.unpack(buf.subarray(start, end));
  const viaRange = (buf, start, end) => {
    range.start = start;
    range.end = end;
    return unpackr.unpack(buf, range);
  };
  const scratch = Buffer.allocUnsafe(140);
  const viaScratch = (buf, start, end) => {
    const n = end - start;
    for (let i = 0; i < n; i++) scratch[i] = buf[start + i];
    return unpackr.unpack(scratch, n);
  };
  add(choices, 'decode choice, 40 B', 'msgpackr unpack(view)', () => walk(out, viaView));
  add(choices, 'decode choice, 40 B', 'msgpackr unpack(scratch copy) (now)', () =>
    walk(out, viaScratch),
  );
  add(choices, 'decode choice, 40 B', 'msgpackr unpack(buf, { start, end })', () =>
    walk(out, viaRange),
  );
  add(choices, 'decode choice, 40 B', 'raw: Buffer.from(view)', () =>
    walk(out, (buf, start, end) => Buffer.from(buf.subarray(start, end))),
  );
  add(choices, 'decode choice, 40 B', 'raw: allocUnsafe + copy by offsets (now)', () =>
    walk(out, (buf, start, end) => buf.copy(Buffer.allocUnsafe(end - start), 0, start, end)),
  );
  const bigOut = Buffer.allocUnsafe(1 << 20);
  for (let i = 0, at = 0; i < N; i++) {
    const b = packr.pack({ ...quotes[i], note: 'x'.repeat(200), tags: ['alpha', 'beta', 'gamma'] });
    bigOut.writeUInt32LE(b.length, at);
    b.copy(bigOut, at + 4);
    at += 4 + b.length;
  }
  add(choices, 'decode choice, ~300 B', 'msgpackr unpack(view)', () => walk(bigOut, viaView));
  add(choices, 'decode choice, ~300 B', 'msgpackr unpack(buf, { start, end }) (now)', () =>
    walk(bigOut, viaRange),
  );
  choices.addEventListener('cycle', (e) => {
    process.stderr.write(`${e.task?.name.replace('\t', ': ')}\n`);
  });
  await choices.run();
  return choices.tasks;
}

bench.addEventListener('cycle', (e) => {
  process.stderr.write(`${e.task?.name.replace('\t', ': ')}\n`);
});
let choiceTasks = [];
try {
  // Fill `out` once so the decode tasks have frames even if they run before drain.
  const s = nat.subscribe(() => {});
  native.publishMany(h, packed, ends);
  native.drain(s.handle(), out, N);
  s.close();
  await bench.run();
  choiceTasks = await decodeChoices();
} finally {
  ch.close();
  nat.close();
  try {
    unlink(name);
  } catch {
    // gone
  }
}
for (const t of [...bench.tasks, ...choiceTasks]) {
  const [group, task] = t.name.split('\t');
  const r = t.result;
  if (r?.state !== 'completed') {
    rows.push({ group, task, error: String(r?.error ?? r?.state) });
    continue;
  }
  const nsPerOp = r.latency.mean * 1e6;
  rows.push({
    group,
    task,
    nsPerOp,
    perOp: N,
    nsPerMessage: nsPerOp / N,
    messagesPerSec: (1e9 * N) / nsPerOp,
    rme: r.latency.rme,
  });
}
for (const r of rows) console.log(JSON.stringify(r));
if (filled === 0) console.error('micro: drain found nothing (check the drain task)');
