/**
 * The msgpack codec's flat-object path (src/flat.ts) against msgpackr itself: the same bytes
 * for every value (flat or not, each number range, strings at the fixstr edge, keys that
 * change between messages, inherited and shadowed properties), and the same value or the
 * same failure for every message decoded (msgpackr's own encodings, other encoders' fixmaps,
 * truncated, padded and random bytes, a batch buffer rewritten between two decodes).
 */
import { inspect, isDeepStrictEqual } from 'node:util';
import test from 'ava';
import { Packr, Unpackr } from 'msgpackr';
import { firstValueFrom, take, toArray } from 'rxjs';
import { msgpack, open } from 'shmring';
import { channelName, runToEnd } from './helpers.js';

type Range = Buffer & { start: number; end: number };
interface Internal {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
  at: (buffer: Buffer, start: number, end: number) => unknown;
  range: (v: unknown) => Range;
}
const { decodeAt, encodeRange } = (await import(
  new URL('../../dist/codec.js', import.meta.url).href
)) as { decodeAt: symbol; encodeRange: symbol };
// Internal (not exported by the package): loaded from the build, to see the fast path taken.
const { FlatEncoder, FlatDecoder, MissBackoff, NOT_FLAT } = (await import(
  new URL('../../dist/flat.js', import.meta.url).href
)) as {
  FlatEncoder: new (
    packKey: (k: string) => Uint8Array,
  ) => { encode(v: unknown): number; buffer: Buffer };
  FlatDecoder: new () => { decode(b: Uint8Array, start: number, end: number): unknown };
  MissBackoff: new () => { try(): boolean; hit(): void; miss(): void };
  NOT_FLAT: symbol;
};

/** A fresh msgpack codec, with its internal entry points. */
function codec(): Internal {
  const c = msgpack() as unknown as Record<symbol, unknown> & Internal;
  return {
    encode: c.encode,
    decode: c.decode,
    at: c[decodeAt] as Internal['at'],
    range: c[encodeRange] as Internal['range'],
  };
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
const reference = (v: unknown): Buffer => Buffer.from(packr.pack(v));

/** The same value, with its keys in the same order and the same prototype. */
function alike(a: unknown, b: unknown): boolean {
  if (!isDeepStrictEqual(a, b)) return false;
  return sameOrder(a, b);
}

/** Whether `a` and `b` have the same prototype and own keys in the same order, at every level. */
function sameOrder(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null) return true;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b as object);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) =>
    sameOrder((a as Record<PropertyKey, unknown>)[k], (b as Record<PropertyKey, unknown>)[k]),
  );
}

/** msgpackr's outcome for `bytes`: its value, or the fact that it threw. */
function outcome(decode: () => unknown): { value: unknown } | { threw: true } {
  try {
    return { value: decode() };
  } catch {
    return { threw: true };
  }
}

const NUMBERS = [
  0,
  1,
  31,
  32,
  63,
  64,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  -1,
  -31,
  -32,
  -33,
  -127,
  -128,
  -129,
  -32767,
  -32768,
  -32769,
  -(2 ** 31),
  -(2 ** 31) - 1,
  -(2 ** 53),
  0.5,
  -0.5,
  -0,
  1e300,
  -1e-300,
  100.25,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MIN_VALUE,
];
const STRINGS = [
  '',
  'a',
  'ACME',
  'x'.repeat(31),
  'x'.repeat(32),
  'é',
  'naïve',
  '\u{1f600}',
  '\ud800',
];

/** Objects `levels` deep, `{ v: { v: … 1 } }`, with a scalar beside each level. */
function deep(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { v, at: i };
  return v;
}

/** Seeded values: mostly flat objects of every kind of scalar, some that are not flat. */
function values(n: number, seed = 7): unknown[] {
  let s = seed;
  // xorshift32: every low bit varies (a linear congruential step's low bits cycle).
  const rnd = (k: number): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % k;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)] as T;
  const scalar = (): unknown => {
    switch (rnd(6)) {
      case 0:
      case 1:
        return pick(NUMBERS);
      case 2:
        return pick(STRINGS);
      case 3:
        return rnd(2) === 0;
      case 4:
        return null;
      default:
        return rnd(1000) - 500 + rnd(4) / 4;
    }
  };
  const KEYS = ['seq', 'sym', 'px', 'qty', 'ts', 'é', '0', '10', 'k'.repeat(40), ''];
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const o: Record<string, unknown> = {};
    const keys = rnd(4) === 0 ? rnd(KEYS.length + 1) : 5;
    for (let k = 0; k < keys; k++) o[rnd(3) === 0 ? pick(KEYS) : (KEYS[k] as string)] = scalar();
    switch (rnd(16)) {
      case 0:
        o.nested = { a: scalar() };
        break;
      case 1:
        o.list = [scalar(), scalar()];
        break;
      case 2:
        o.missing = undefined;
        break;
      case 3:
        out.push(scalar());
        continue;
      case 4:
        // Lines of an order: an array (fixarray or array 16) of small objects.
        o.lines = Array.from({ length: rnd(20) }, () => ({ id: rnd(1000), q: scalar() }));
        break;
      case 5:
        o.deep = deep(rnd(12));
        break;
      case 6:
        o.odd = pick<unknown>([new Date(0), Buffer.from([1, 2]), [1, undefined], new Map()]);
        break;
      case 7:
        o.grid = [[scalar(), [scalar()]], [], { in: [scalar()] }];
        break;
      default:
    }
    out.push(o);
  }
  return out;
}

test('the flat path writes the bytes msgpackr writes, for every value and shape change', (t) => {
  // Two codecs: each meets every change of shape itself.
  const c = codec();
  const d = codec();
  // And the fast path itself, tried on every value (the codec skips it after misses).
  const bare = new FlatEncoder((k) => packr.pack(k));
  let compared = 0;
  let fast = 0;
  for (const v of values(20_000)) {
    const want = reference(v);
    t.deepEqual(Buffer.from(c.encode(v)), want);
    const end = bare.encode(v);
    if (end >= 0) {
      fast++;
      if (!bare.buffer.subarray(0, end).equals(want)) {
        t.fail(`fast path, ${inspect(v)}: ${bare.buffer.subarray(0, end).toString('hex')}`);
        return;
      }
    }
    const r = d.range(v);
    const got = Buffer.from(r.subarray(r.start, r.end));
    if (!got.equals(want)) {
      t.fail(`range of ${JSON.stringify(v)}: ${got.toString('hex')} != ${want.toString('hex')}`);
      return;
    }
    compared++;
  }
  t.is(compared, 20_000);
  t.true(fast > 5_000, `${fast} of 20,000 took the fast path`);
});

test('keys of every length, at every offset, are whole however dirty the buffer', (t) => {
  // Keys of up to 8 bytes are written as two words, longer ones byte by byte: every length
  // on both sides, ASCII and not (a 2- or 3-byte character moves the edge), at offsets moved
  // by a string before them, into a buffer dirtied first so no byte of an earlier message
  // can stand in for one left unwritten.
  const bare = new FlatEncoder((k) => packr.pack(k));
  let compared = 0;
  for (let len = 0; len <= 40; len++) {
    for (const ch of ['k', 'é', '€']) {
      const key = ch.repeat(len);
      for (let pad = 0; pad < 9; pad++) {
        const v = { p: 'x'.repeat(pad), [key]: pad, [`${key}2`]: true, z: null };
        bare.buffer.fill(0xee);
        const end = bare.encode(v);
        t.true(end >= 0, `${inspect(v)} takes the fast path`);
        const got = bare.buffer.subarray(0, end);
        if (!got.equals(reference(v))) {
          t.fail(`key of ${len} ${inspect(ch)}, pad ${pad}: ${got.toString('hex')}`);
          return;
        }
        compared++;
      }
    }
  }
  t.is(compared, 41 * 3 * 9);
});

test('objects written by compiled writers are msgpackr bytes, through every change of keys', (t) => {
  // After 8 objects in a row with the same keys a place compiles a writer for them (16 for
  // the next, and so on: stillEnough in src/flat.ts): runs of
  // shapes (long and non-ASCII keys, an own __proto__, 64 keys, nested objects and arrays
  // with writers of their own, a getter), each value cycling through every number and
  // string edge and the other kinds, then every change of keys after a writer was made
  // (reordered, one fewer, one more, an inherited enumerable key, a shadowed hasOwnProperty),
  // and the encoder buffer's end.
  const scalars = [...NUMBERS, ...STRINGS, true, false, null, undefined, [1, 'a'], { z: 1 }];
  let n = 0;
  const pick = () => scalars[n++ % scalars.length];
  const proto = { inherited: 1 };
  const shapes: (() => Record<string, unknown>)[] = [
    () => ({ seq: pick(), sym: pick(), px: pick(), qty: pick(), ts: pick() }),
    () => ({ averyveryverylongkey: pick(), é: pick(), '€€€': pick(), k: pick() }),
    () => Object.assign(JSON.parse('{"__proto__": 1}'), { a: pick() }),
    () => Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, pick()])),
    () => ({
      head: pick(),
      lines: [
        { a: pick(), b: pick() },
        { a: pick(), b: pick() },
      ],
      o: { x: pick() },
    }),
    () => ({
      get a() {
        return 7;
      },
      b: pick(),
    }),
    () => ({ sym: pick(), seq: pick(), px: pick(), qty: pick(), ts: pick() }),
    () => ({ seq: pick(), sym: pick(), px: pick(), qty: pick() }),
    () => ({ seq: pick(), sym: pick(), px: pick(), qty: pick(), ts: pick(), more: pick() }),
    () => Object.assign(Object.create(proto), { seq: pick(), sym: pick() }),
    // The first shape's last key inherited (enumerable): not written.
    () =>
      Object.assign(Object.create({ ts: 5 }), {
        seq: pick(),
        sym: pick(),
        px: pick(),
        qty: pick(),
      }),
    () =>
      Object.defineProperty(
        Object.assign(Object.create(proto), { seq: pick(), sym: pick() }),
        'hasOwnProperty',
        {
          value: () => true,
          enumerable: false,
        },
      ),
    () =>
      Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`${i}`.padEnd(190, 'k'), pick()])),
  ];
  let compared = 0;
  let fast = 0;
  // Each shape at fresh places, then the first shape and back: the place compiles a writer
  // for each (8 in a row for the first, 16 for the second), and meets keys it has no writer
  // for; then all shapes in turn at one place.
  const first = shapes[0] as () => Record<string, unknown>;
  const streams = [...shapes.map((make) => [make, first, make, first]), [...shapes, ...shapes]];
  for (const stream of streams) {
    const c = codec();
    const bare = new FlatEncoder((k) => packr.pack(k));
    for (const make of stream) {
      for (let k = 0; k < 24; k++) {
        const v = make();
        let want: Buffer;
        try {
          want = reference(v);
        } catch {
          continue; // msgpackr refuses it (a function): the codec's error, tested elsewhere
        }
        const end = bare.encode(v);
        if (end >= 0) {
          fast++;
          if (!bare.buffer.subarray(0, end).equals(want)) {
            t.fail(`writer, ${inspect(v)}: ${bare.buffer.subarray(0, end).toString('hex')}`);
            return;
          }
        }
        if (!Buffer.from(c.encode(v)).equals(want)) {
          t.fail(`codec, ${inspect(v)}`);
          return;
        }
        compared++;
      }
    }
  }
  t.true(compared > 1_500, `${compared} compared`);
  t.true(fast > compared / 4, `${fast} of ${compared} took the fast path`);
});

test('getters and Proxies see the reads msgpackr makes, in its order, through compiled writers', (t) => {
  // Each message twice (one for the codec, one for msgpackr), so that what a getter does to
  // its object shows on one side only. From message 9 on (a writer compiled by then) a getter
  // hides the next key by shadowing hasOwnProperty; a Proxy's get trap counts its reads and
  // answers with the count.
  const c = codec();
  const d = codec();
  for (let i = 0; i < 30; i++) {
    const make = () => {
      const o: Record<string, unknown> = {
        get a() {
          if (i >= 9) {
            Object.defineProperty(o, 'hasOwnProperty', {
              value: (k: string) => k !== 'b',
              configurable: true,
            });
          }
          return 1;
        },
        b: 2,
        c: i,
      };
      return o;
    };
    t.deepEqual(Buffer.from(c.encode(make())), reference(make()), `getter, message ${i}`);
    const counting = () => {
      let reads = 0;
      return new Proxy({ x: 0, y: 0 } as Record<string, unknown>, {
        get: (target, key, receiver) =>
          key === 'x' || key === 'y' ? ++reads : Reflect.get(target, key, receiver),
      });
    };
    t.deepEqual(Buffer.from(d.encode(counting())), reference(counting()), `Proxy, message ${i}`);
  }
});

test('a setter inherited from Object.prototype runs for decoded keys as under msgpackr', async (t) => {
  // In a process of its own (Object.prototype is changed): the decoder's compiled maker
  // stores, as msgpackr does, so the setter runs and its result is the value.
  const script = `
    const { FlatDecoder } = await import(${JSON.stringify(new URL('../../dist/flat.js', import.meta.url).href)});
    const { Packr, Unpackr } = await import('msgpackr');
    const packr = new Packr({ useRecords: false });
    const unpackr = new Unpackr({ useRecords: false });
    let calls = 0;
    Object.defineProperty(Object.prototype, 'px', {
      set(v) { calls++; Object.defineProperty(this, 'px', { value: v * 100, enumerable: true, writable: true, configurable: true }); },
      configurable: true,
    });
    const d = new FlatDecoder();
    const out = [];
    for (let i = 0; i < 30; i++) {
      const b = Buffer.from(packr.pack(JSON.parse('{"sym":"ACME","px":' + i + '}')));
      const before = calls;
      const fast = d.decode(b, 0, b.length);
      const mid = calls;
      const want = unpackr.unpack(b);
      out.push([fast.px === want.px, mid - before === calls - mid, JSON.stringify(Object.keys(fast)) === JSON.stringify(Object.keys(want))].join());
    }
    console.log(out.join(' '));`;
  const run = await runToEnd(t, process.execPath, ['--input-type=module', '-e', script]);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout.trim(), Array.from({ length: 30 }, () => 'true,true,true').join(' '));
});

test('a view of a resizable buffer decodes after the buffer shrank and grew', (t) => {
  const c = codec();
  // (Resizable ArrayBuffers are ES2024; the compiler's lib here is older.)
  type Resizable = ArrayBuffer & { resize(n: number): void };
  const Resizable = ArrayBuffer as unknown as new (
    n: number,
    o: { maxByteLength: number },
  ) => Resizable;
  const rab = new Resizable(64, { maxByteLength: 256 });
  const view = new Uint8Array(rab); // tracks the buffer's length
  for (const [size, v] of [
    [64, { sym: 'ACME', px: 1 }],
    [32, { sym: 'ACMF', px: 2 }],
    [200, { sym: 'ACMG', px: 3, more: 'x'.repeat(30) }],
    [40, { sym: 'ACMH', px: 4 }],
  ] as const) {
    rab.resize(size);
    const bytes = reference(v);
    view.set(bytes, 0);
    t.deepEqual(c.at(Buffer.from(rab, 0, rab.byteLength), 0, bytes.length), v);
    t.deepEqual(new FlatDecoder().decode(view, 0, bytes.length), v);
  }
  // The same view after the buffer shrank under it, decoded by the same decoder.
  const bare = new FlatDecoder();
  rab.resize(64);
  const first = reference({ a: 1 });
  view.set(first, 0);
  t.deepEqual(bare.decode(view, 0, first.length), { a: 1 });
  rab.resize(16);
  const second = reference({ b: 2 });
  view.set(second, 0);
  t.deepEqual(bare.decode(view, 0, second.length), { b: 2 });
});

test('the flat path follows msgpackr on own, inherited and shadowed properties', (t) => {
  const c = codec();
  const proto = { inherited: 1 };
  const child = Object.create(proto) as Record<string, unknown>;
  child.own = 2;
  const shadow = { hasOwnProperty: 3, a: 4 };
  // A prototype whose hasOwnProperty says yes to everything: msgpackr writes `inh` too.
  const lenient = { inh: 5 };
  Object.defineProperty(lenient, 'hasOwnProperty', { value: () => true, enumerable: false });
  const trusting = Object.create(lenient) as Record<string, unknown>;
  trusting.own = 6;
  const wide = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, i]));
  const big = Object.fromEntries(
    Array.from({ length: 60 }, (_, i) => [`${'w'.repeat(200)}${i}`, i]),
  );
  const posing = { a: { constructor: Array, length: Number.NaN, 0: 1 } };
  for (const v of [
    posing,
    child,
    shadow,
    trusting,
    wide,
    big,
    {},
    { a: 1 },
    { b: 1, a: 2 },
    { a: 1 },
  ]) {
    t.deepEqual(Buffer.from(c.encode(v)), reference(v));
    t.deepEqual(c.decode(c.encode(v)), unpackr.unpack(reference(v)));
  }
  // Errors stay msgpackr's (typed by the codec): a function is refused, flat path or not.
  t.throws(() => c.encode({ a: 1, f() {} }), { code: 'InvalidArgument' } as never);
});

test('the flat path decodes what msgpackr decodes, in place in a batch, and refuses what it refuses', (t) => {
  const c = codec();
  const msgs = values(5_000, 11).map(reference);
  // Other encoders' fixmaps, a renamed __proto__ key, a duplicated key.
  msgs.push(Buffer.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0xc3]));
  msgs.push(Buffer.from([0x81, 0xa9, ...Buffer.from('__proto__'), 0x05]));
  msgs.push(Buffer.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02]));
  // Laid out back to back, as a drained batch is.
  const batch = Buffer.concat([Buffer.alloc(3), ...msgs]);
  let at = 3;
  const bare = new FlatDecoder();
  for (const m of msgs) {
    const want = unpackr.unpack(m);
    const fast = bare.decode(batch, at, at + m.length);
    const tried = fast === NOT_FLAT ? [] : [fast];
    for (const got of [c.at(batch, at, at + m.length), c.decode(m), ...tried]) {
      // Key order and prototype too (deepEqual looks at neither).
      if (!alike(got, want)) {
        t.fail(`${m.toString('hex')}: ${inspect(got)} != ${inspect(want)}`);
        return;
      }
    }
    at += m.length;
  }
  // Every truncation of a flat message, and one byte too many: msgpackr's outcome each time.
  const whole = reference({ seq: 70000, sym: 'ACME', px: 100.25, qty: -200, ok: true, n: null });
  for (let n = 0; n <= whole.length + 1; n++) {
    const bytes = n <= whole.length ? whole.subarray(0, n) : Buffer.concat([whole, Buffer.of(0)]);
    t.deepEqual(
      outcome(() => c.decode(bytes)),
      outcome(() => unpackr.unpack(bytes)),
      `${n} bytes`,
    );
  }
  // Random maps: the same value, or a failure on both sides.
  let s = 3;
  for (let i = 0; i < 20_000; i++) {
    const bytes = Buffer.alloc(1 + (i % 40));
    for (let j = 0; j < bytes.length; j++) {
      s = (s * 1103515245 + 12345) >>> 0;
      bytes[j] = s >>> 24;
    }
    bytes[0] = i % 3 === 0 ? 0xde : 0x80 | (i % 16);
    if (i % 3 === 0 && bytes.length > 2) {
      bytes[1] = 0;
      bytes[2] = i % 5;
    }
    const want = outcome(() => unpackr.unpack(bytes));
    const got = outcome(() => c.decode(bytes));
    // The fast path itself, tried on every message: msgpackr's value whenever it takes one.
    const fast = bare.decode(bytes, 0, bytes.length);
    const tried = fast === NOT_FLAT ? got : { value: fast };
    if (!isDeepStrictEqual(got, want) || !isDeepStrictEqual(tried, want)) {
      t.fail(`${bytes.toString('hex')}: ${inspect(got)} / ${inspect(tried)} != ${inspect(want)}`);
      return;
    }
  }
  t.pass();
});

/** Runs of maps: each shape `runs` times in a row with changing values, shapes in turn. */
function runsOf(shapes: string[][], runs: number, rounds: number): Buffer[] {
  const out: Buffer[] = [];
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    for (const keys of shapes) {
      for (let k = 0; k < runs; k++, n++) {
        const v = Object.fromEntries(
          keys.map((key, i) => [key, [n, `s${n % 7}`, n / 4, n % 2 === 0, null][i % 5]]),
        );
        out.push(reference(n % 3 === 0 ? { lines: [v, v], v } : v));
      }
    }
  }
  return out;
}

test('objects made once the keys of a place hold still are msgpackr values, through every change', (t) => {
  // After 8 maps in a row with the same keys a place compiles a maker (an object literal) for
  // them (16 for the next): keys that need escaping, integer-like keys (ordered first), names
  // of Object's own methods, 1 and 64 keys, the same keys in another order or one fewer;
  // each shape at fresh places with the first shape between, then shapes in turn at one
  // place, and duplicated keys from another encoder.
  const shapes = [
    ['seq', 'sym', 'px', 'qty', 'ts'],
    ['a"b', 'c\\d', "e'f", '`$\u007bx}`', 'g\nh'],
    ['10', '2', 'x', '0', 'constructor'],
    ['toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__'],
    ['only'],
    Array.from({ length: 64 }, (_, i) => `k${i}`),
    ['sym', 'seq', 'px', 'qty', 'ts'],
    ['seq', 'sym', 'px', 'qty'],
  ];
  const quote = shapes[0] as string[];
  const dup = Buffer.from([0x83, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0xc3, 0xa1, 0x61, 0x02]);
  const streams = [
    ...shapes.map((keys) => runsOf([keys, quote], 24, 2)),
    [...runsOf(shapes, 12, 3), ...runsOf([quote], 3, 20), ...Array.from({ length: 20 }, () => dup)],
  ];
  let total = 0;
  let fast = 0;
  for (const msgs of streams) {
    const c = codec();
    const bare = new FlatDecoder();
    const batch = Buffer.concat(msgs);
    let at = 0;
    for (const m of msgs) {
      const want = unpackr.unpack(m);
      const got = bare.decode(batch, at, at + m.length);
      if (got !== NOT_FLAT) fast++;
      for (const v of [got === NOT_FLAT ? want : got, c.at(batch, at, at + m.length)]) {
        if (!alike(v, want)) {
          t.fail(`${m.toString('hex')}: ${inspect(v)} != ${inspect(want)}`);
          return;
        }
      }
      at += m.length;
      total++;
    }
  }
  t.is(fast, total, 'every one through the fast path');
});

test('without code generation from strings, the decoder makes its objects by stores', async (t) => {
  const script = `
    const { FlatDecoder } = await import(${JSON.stringify(new URL('../../dist/flat.js', import.meta.url).href)});
    const { Packr } = await import('msgpackr');
    const packr = new Packr({ useRecords: false });
    const d = new FlatDecoder();
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      const b = Buffer.from(packr.pack({ seq: i, sym: 'ACME', px: i / 4 }));
      const v = d.decode(b, 0, b.length);
      if (v.seq === i && v.sym === 'ACME' && v.px === i / 4 && Object.keys(v).join() === 'seq,sym,px') ok++;
    }
    console.log(ok);`;
  const run = await runToEnd(t, process.execPath, [
    '--disallow-code-generation-from-strings',
    '--input-type=module',
    '-e',
    script,
  ]);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout.trim(), '100');
});

test('strings reused from the last message are checked against the bytes, not trusted', (t) => {
  const c = codec();
  const buf = Buffer.from(reference({ sym: 'ACME', px: 1 }));
  t.deepEqual(c.at(buf, 0, buf.length), { sym: 'ACME', px: 1 });
  // The batch buffer is reused: the same place now holds other bytes.
  buf[buf.indexOf('E')] = 'F'.charCodeAt(0);
  buf[buf.indexOf('sym') + 2] = 'n'.charCodeAt(0);
  t.deepEqual(c.at(buf, 0, buf.length), { syn: 'ACMF', px: 1 });
  // Every byte of keys and strings of 1 to 12 characters (up to 8 are compared as words),
  // changed in turn in place, and near the buffer's end (where words are not read).
  for (let n = 1; n <= 12; n++) {
    for (const tail of [0, 20]) {
      const key = 'k'.repeat(n);
      const text = 's'.repeat(n);
      const b = Buffer.concat([reference({ [key]: text }), Buffer.alloc(tail)]);
      const end = b.length - tail;
      t.deepEqual(c.at(b, 0, end), { [key]: text });
      for (const [first, letter] of [
        [4, 'K'],
        [5 + n, 'S'],
      ] as const) {
        for (let j = 0; j < n; j++) {
          b[first + j] = letter.charCodeAt(0);
          const v = c.at(b, 0, end) as Record<string, string>;
          const want = unpackr.unpack(b.subarray(0, end));
          if (!alike(v, want)) {
            t.fail(`${n} characters, byte ${j} of ${letter}: ${inspect(v)} != ${inspect(want)}`);
            return;
          }
          b[first + j] = letter.toLowerCase().charCodeAt(0);
        }
      }
    }
  }
});

test('flat and other objects keep their order and values through a channel', async (t) => {
  const ch = open<unknown>(channelName(t, 'flat'), { create: true });
  t.teardown(() => ch.close());
  const sent = values(3_000, 5);
  const got = firstValueFrom(ch.messages().pipe(take(sent.length), toArray()));
  for (const v of sent) if (!ch.publish(v)) await ch.send(v);
  t.deepEqual(
    await got,
    sent.map((v) => unpackr.unpack(reference(v))),
  );
});

test('flat values take the fast path, in a batch too; others do not', (t) => {
  const enc = new FlatEncoder((k) => packr.pack(k));
  const dec = new FlatDecoder();
  const flat = [
    { seq: 1, sym: 'ACME', px: 100.25, qty: -7, ok: true, none: null },
    // Every scalar token the fast path reads, one after another.
    { p: 5, n: -5, u8: 200, u16: 60000, u32: 70000, i8: -100, i16: -1000, i32: -100000 },
    { f: 0.5, s: 'x', e: '', t: true, no: false, z: null, after: 1 },
    // Objects and arrays in one another, arrays of 16 and more (array 16).
    { a: { b: 1, c: { d: 'x' } }, l: [1, 'two', null, [3, [4]], { e: false }], after: 2 },
    { lines: Array.from({ length: 40 }, (_, i) => ({ id: i, px: i / 4, sym: 'ACME' })) },
    { v: deep(7), empty: [], none: {} },
    {},
    Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, i])),
  ];
  const batch = Buffer.concat([Buffer.alloc(5), ...flat.map(reference), Buffer.alloc(9)]);
  let at = 5;
  for (const v of flat) {
    t.true(enc.encode(v) >= 0, inspect(v));
    const n = reference(v).length;
    const got = dec.decode(batch, at, at + n);
    t.not(got, NOT_FLAT, inspect(v));
    t.true(alike(got, v), inspect(got));
    at += n;
  }
  const others = [
    { a: new Date(0) },
    { a: Buffer.from([1]) },
    { a: [1, undefined] },
    { a: deep(12) },
    // Nine levels, the message's own included: one more than the fast path takes.
    { a: deep(8) },
    // An object posing as an array, with a length that is no count.
    { a: { constructor: Array } },
    { a: [[{ b: 'é' }]] },
    { a: 'é' },
    { a: 'x'.repeat(32) },
    { a: undefined },
    { a: 1n },
    Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])),
    [1, 2],
    'text',
    7,
  ];
  for (const v of others) t.is(enc.encode(v), -1, inspect(v));
  const date = reference({ a: new Date(0) });
  t.is(dec.decode(date, 0, date.length), NOT_FLAT);
  const nine = reference({ a: deep(8) });
  t.is(dec.decode(nine, 0, nine.length), NOT_FLAT);
});

test('objects at the encoder buffer edge: the same bytes on either side of it', (t) => {
  const c = codec();
  // 40 keys of ~190 bytes with 31-byte strings: ~8.9 KiB; then trimmed a byte at a time.
  for (let keyLen = 150; keyLen <= 200; keyLen += 1) {
    const v = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`${i}`.padEnd(keyLen, 'k'), 's'.repeat(31)]),
    );
    // At a fresh place, the shape with 1-byte strings 10 times (a writer compiled for it),
    // then with strings that grow to 31 bytes: the writer meets the edge as the loop would.
    const fresh = codec();
    for (let len = -9; len <= 31; len++) {
      const w = Object.fromEntries(Object.keys(v).map((k) => [k, 's'.repeat(Math.max(1, len))]));
      t.deepEqual(
        Buffer.from(fresh.encode(w)),
        reference(w),
        `keys of ${keyLen}, strings of ${len}`,
      );
    }
    t.deepEqual(Buffer.from(c.encode(v)), reference(v), `keys of ${keyLen}`);
  }
});

test('a getter that publishes on the same channel: both messages arrive whole', async (t) => {
  const ch = open<unknown>(channelName(t, 'flat-reenter'), { create: true });
  t.teardown(() => ch.close());
  const got = firstValueFrom(ch.messages().pipe(take(5), toArray()));
  const outer = {
    a: 1,
    get b() {
      ch.publish({ zz: 'inner', yy: 7 });
      return 2;
    },
    c: 'xyz',
  };
  t.true(ch.publish(outer));
  t.is(ch.publishMany([{ a: 3 }, outer]), 2);
  // publishMany encodes its values before it publishes them: the inner one goes in first.
  t.deepEqual(await got, [
    { zz: 'inner', yy: 7 },
    { a: 1, b: 2, c: 'xyz' },
    { zz: 'inner', yy: 7 },
    { a: 3 },
    { a: 1, b: 2, c: 'xyz' },
  ]);
  // The codec alone: the outer bytes are msgpackr's.
  const c = codec();
  const nested = {
    a: 1,
    get b() {
      c.encode({ other: 'shape', n: 9 });
      return 2;
    },
    c: 'xyz',
  };
  t.deepEqual(Buffer.from(c.encode(nested)), reference({ a: 1, b: 2, c: 'xyz' }));
});

test('what reading a value throws is an InvalidArgument, and publishMany says what went in', (t) => {
  const ch = open<unknown>(channelName(t, 'flat-throw'), { create: true });
  t.teardown(() => ch.close());
  const bad = {
    get a(): number {
      throw new Error('boom');
    },
  };
  const trap = new Proxy(
    {},
    {
      ownKeys() {
        throw new Error('trap');
      },
    },
  );
  const c = codec();
  for (const v of [bad, trap]) {
    t.throws(() => c.encode(v), { code: 'InvalidArgument' } as never);
    t.throws(() => c.range(v), { code: 'InvalidArgument' } as never);
    t.throws(() => ch.publish(v), { code: 'InvalidArgument' } as never);
  }
  const e = t.throws(() => ch.publishMany([{ ok: 1 }, bad]), {
    code: 'InvalidArgument',
  } as never) as unknown as { published: number };
  t.is(e.published, 1);
});

test('after misses the codec skips the fast path for a while, never for long', (t) => {
  const b = new MissBackoff();
  const skipped = (): number => {
    let n = 0;
    while (!b.try()) n++;
    return n;
  };
  t.true(b.try());
  b.hit();
  t.true(b.try(), 'no miss: always tried');
  const runs: number[] = [];
  for (let k = 0; k < 8; k++) {
    b.miss();
    runs.push(skipped());
  }
  t.deepEqual(runs, [1, 3, 7, 15, 31, 63, 63, 63]);
  b.hit();
  b.miss();
  t.is(skipped(), 1, 'a hit starts over');
  // Through a codec: values it cannot take, then plain ones; msgpackr's bytes throughout.
  const c = codec();
  for (let i = 0; i < 300; i++) {
    const v = i < 150 ? { at: new Date(i), i } : { i, sym: 'ACME' };
    t.deepEqual(Buffer.from(c.encode(v)), reference(v));
    const m = reference(v);
    t.deepEqual(c.decode(m), unpackr.unpack(m));
  }
});
