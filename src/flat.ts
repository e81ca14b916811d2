/**
 * The msgpack codec's fast path for plain data: a plain object whose values are numbers,
 * short ASCII strings, booleans, `null`, or plain objects and arrays of those in turn (a
 * quote, a reading, an order with its lines), the shapes most channels carry.
 * {@link FlatEncoder} writes exactly the bytes msgpackr writes for it with the codec's options
 * (`useRecords: false`: a map 16 header per object, an array's length as msgpackr writes it,
 * then each key and value as msgpackr packs them), with each key's bytes made once per shape
 * instead of on every message; {@link FlatDecoder} reads such a map (or a fixmap, as other
 * msgpack encoders write) into the object msgpackr would make, reusing the key strings of the
 * last message and each string value equal to the last one at its place. Anything else (a
 * Date, a Buffer, a long or non-ASCII string, a 64-bit integer, `undefined`, more than
 * eight levels, malformed bytes) is left to msgpackr, whole: the bytes on the wire and the
 * values delivered are msgpackr's either way (`test/flat.test.ts` compares them). One
 * difference can be seen: an object whose values are read through getters (or a Proxy) has
 * them read again when the fast path gives up part-way (msgpackr, or the encoder's loop
 * after a compiled writer met other keys, then reads them all again), so a getter with side
 * effects may see more reads than msgpackr alone would make, and what it changes shows in
 * the reads after. A getter that encodes with the same codec meanwhile is msgpackr's
 * business (the inner call is left to it).
 * @internal
 */

/**
 * When to try the fast path: always while it succeeds; after `k` misses in a row, not for
 * the next `2^k - 1` calls (at most 63), so a channel of values it cannot take (a Date in
 * every message) pays for a try once in 64 messages instead of on each. Either way the bytes
 * and values are msgpackr's.
 */
export class MissBackoff {
  /** Misses in a row (at most 6), and calls left to skip. */
  #misses = 0;
  #skip = 0;

  /** Whether this call should try the fast path. */
  try(): boolean {
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }

  /** The fast path took the value. */
  hit(): void {
    this.#misses = 0;
  }

  /** The fast path left the value to msgpackr. */
  miss(): void {
    if (this.#misses < 6) this.#misses++;
    this.#skip = (1 << this.#misses) - 1;
  }
}

/** What {@link FlatDecoder.decode} returns for a message it leaves to msgpackr. */
export const NOT_FLAT: unique symbol = Symbol('shmring.notFlat');

/** Most keys an object may have here (more: msgpackr's business). */
const MAX_KEYS = 64;
/** Most levels of objects and arrays here, the message's own included (more: msgpackr's). */
const MAX_DEPTH = 8;
/** Longest array here (msgpack array 16; longer: msgpackr's business). */
const MAX_ARRAY = 0xffff;
/** Strings shorter than this are fixstr (msgpack: one header byte). */
const FIXSTR = 0x20;
/** Room a value may take: a fixstr of 31 ASCII bytes and its header. */
const VALUE_ROOM = FIXSTR;
/** Bytes after the type byte of msgpack's fixed-width scalars 0xcb (float 64) to 0xd2. */
const FIXED_WIDTH = [8, 1, 2, 4, 8, 1, 2, 4];
/** The encoder's buffer: a larger flat object is msgpackr's. */
const ENCODE_BYTES = 8192;

/**
 * What the encoder knows of the object at one place of a message: the keys it had last time,
 * in order, msgpackr's bytes for each (also as two big-endian 32-bit words, zero-padded, for
 * keys of at most 8 bytes), and what it knows of the object or array under each.
 */
interface Shape {
  keys: string[];
  keyBytes: Uint8Array[];
  keyHi: number[];
  keyLo: number[];
  kids: (Shape | undefined)[];
  /** The writer compiled for these keys (see {@link writerSource}); cleared when they change. */
  write: Writer | undefined;
  /** Objects in a row written with these keys by the loop (see {@link stillEnough}). */
  still: number;
  /** Writers compiled for this place (see {@link stillEnough}). */
  writers: number;
}

/**
 * A compiled writer of one shape's objects: writes `o` at `pos` as the loop would and
 * returns where it ends, -1 where the loop would give up, or -2 if `o`'s keys are not the
 * shape's (the loop then takes it).
 */
type Writer = (o: Record<string, unknown>, pos: number, depth: number) => number;

const newShape = (): Shape => ({
  keys: [],
  keyBytes: [],
  keyHi: [],
  keyLo: [],
  kids: [],
  write: undefined,
  still: 0,
  writers: 0,
});

/** Objects or maps in a row with the same keys at a place before its first compile. */
const COMPILE_AFTER = 8;

/**
 * Whether `still` objects (or maps) in a row with the same keys earn a place that compiled
 * `compiled` writers (or makers) before another one: 8, then twice as many after each
 * compile (at most 2^20 times), so a place whose keys keep changing compiles ever more
 * rarely, and never stops for good.
 */
const stillEnough = (still: number, compiled: number): boolean =>
  codegen && still >= COMPILE_AFTER * 2 ** Math.min(compiled, 20);

/** False once code could not be made from strings (`--disallow-code-generation-from-strings`). */
let codegen = true;

/**
 * What a compile threw: an EvalError (code may not be made from strings here) turns
 * compiling off for the process; anything else (a stack nearly full) costs this compile only.
 */
function noCodegen(e: unknown): void {
  if (e instanceof EvalError) codegen = false;
}

/**
 * The source of a {@link Writer} for objects with exactly `keys` (msgpackr's bytes for each in
 * `keyBytes`), in a function of `buf`, `view`, `num`, `str`, `value`, `K`, `KB`: the
 * encoder's buffer and its DataView, `writeNumber` and `writeString`, its writer of any other
 * value (`value(v, pos, i, depth)`), the keys and their bytes. It runs msgpackr's key loop
 * (own-property test included), checking that the keys are these in this order and reading
 * each value by name as its key comes (msgpackr's reads, in its order), then writes map 16,
 * each key (two word stores for up to 8 bytes) and each value, with the loop's room checks:
 * the loop's bytes, without a keyed load and a dispatch on the key's bytes per property (a
 * quote: ~60 ns instead of ~95).
 */
function writerSource(keys: readonly string[], keyBytes: readonly Uint8Array[]): string {
  const n = keys.length;
  const lit = keys.map((key) => JSON.stringify(key));
  // msgpackr's loop, each value read by name right after its key passed the own-property
  // test, in msgpackr's order (a getter or a Proxy trap sees the reads it would).
  const cases = lit.map(
    (k, i) => `
      case ${i}: if (key !== ${k}) return -2; v${i} = o[${k}]; break;`,
  );
  const writes = keyBytes.map((kb, i) => {
    const kn = kb.length;
    const copy =
      kn <= WORD_KEY
        ? `view.setInt32(pos, ${wordAt(kb, 0)});${kn > 4 ? ` view.setInt32(pos + 4, ${wordAt(kb, 4)});` : ''}`
        : `{ const kb = KB[${i}]; for (let j = 0; j < ${kn}; j++) buf[pos + j] = kb[j]; }`;
    return `
  if (pos + ${kn + VALUE_ROOM} > ${ENCODE_BYTES}) return -1;
  ${copy}
  pos += ${kn};
  if (typeof v${i} === 'number') pos = num(buf, view, v${i}, pos);
  else if (typeof v${i} === 'string') { pos = str(buf, v${i}, pos); if (pos < 0) return -1; }
  else { pos = value(v${i}, pos, ${i}, depth); if (pos < 0) return -1; }`;
  });
  const locals = n > 0 ? `\n  let ${keys.map((_, i) => `v${i}`).join(', ')};` : '';
  return `return function write(o, pos, depth) {
  let i = 0;${locals}
  for (const key in o) {
    if (typeof o.hasOwnProperty === 'function' && !o.hasOwnProperty(key)) continue;
    switch (i) {${cases.join('')}
      default: return -2;
    }
    i++;
  }
  if (i !== ${n}) return -2;
  buf[pos] = 0xde;
  buf[pos + 1] = ${n >> 8};
  buf[pos + 2] = ${n & 0xff};
  pos += 3;${writes.join('')}
  return pos;
};`;
}

/** Bytes `at..at+4` of `b` as a big-endian signed 32-bit word, zero past its end. */
const wordAt = (b: Uint8Array, at: number): number =>
  ((b[at] ?? 0) << 24) | ((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0);

/** Longest key written as words (two 32-bit stores) rather than byte by byte. */
const WORD_KEY = 8;

/**
 * Writes the number `v` at `pos` of `buf` (`view` a DataView of all of it; room checked by
 * the caller); where it ends. A function of the module, not a method, so that the encoder's
 * loop and its compiled writers call (and inline) the same one.
 */
function writeNumber(buf: Uint8Array, view: DataView, v: number, pos: number): number {
  // msgpackr's number writer with `useRecords: false` and no `useFloat32`.
  if (v >>> 0 === v) {
    if (v < 0x80) buf[pos++] = v;
    else if (v < 0x100) {
      buf[pos++] = 0xcc;
      buf[pos++] = v;
    } else if (v < 0x10000) {
      buf[pos++] = 0xcd;
      buf[pos++] = v >> 8;
      buf[pos++] = v & 0xff;
    } else {
      buf[pos++] = 0xce;
      view.setUint32(pos, v);
      pos += 4;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) buf[pos++] = 0x100 + v;
    else if (v >= -0x80) {
      buf[pos++] = 0xd0;
      buf[pos++] = v + 0x100;
    } else if (v >= -0x8000) {
      buf[pos++] = 0xd1;
      view.setInt16(pos, v);
      pos += 2;
    } else {
      buf[pos++] = 0xd2;
      view.setInt32(pos, v);
      pos += 4;
    }
  } else {
    buf[pos++] = 0xcb;
    view.setFloat64(pos, v);
    pos += 8;
  }
  return pos;
}

/** Writes the string `v` at `pos` of `buf` (room checked by the caller); where it ends, or -1. */
function writeString(buf: Uint8Array, v: string, pos: number): number {
  const n = v.length;
  if (n >= FIXSTR) return -1;
  buf[pos++] = 0xa0 | n;
  for (let j = 0; j < n; j++) {
    const c = v.charCodeAt(j);
    if (c >= 0x80) return -1;
    buf[pos++] = c;
  }
  return pos;
}

/**
 * Encodes plain objects into one reused buffer, byte for byte as msgpackr's `pack` with
 * `useRecords: false` would.
 *
 * @example
 * ```ts
 * const flat = new FlatEncoder((key) => packr.pack(key));
 * const end = flat.encode({ sym: 'ACME', px: 101.25 });
 * if (end >= 0) send(flat.buffer.subarray(0, end)); // else: packr.pack(value)
 * ```
 */
export class FlatEncoder {
  /**
   * Where {@link FlatEncoder.encode} writes, from 0; valid until its next call. It views the
   * whole of an ArrayBuffer of its own from byte 0, so a publisher hands over that ArrayBuffer
   * (cheaper for the native call than a Buffer).
   */
  readonly buffer: Buffer;
  /** The ArrayBuffer {@link FlatEncoder.buffer} views, all of it from byte 0. */
  readonly whole: ArrayBuffer;
  readonly #view: DataView;
  /** The top-level object's shape. */
  readonly #root: Shape = newShape();
  /** An encode runs (see {@link FlatEncoder.encode}). */
  #busy = false;

  /** `packKey(key)`: msgpackr's bytes for the string `key` (read at once, not kept). */
  constructor(readonly packKey: (key: string) => Uint8Array) {
    this.whole = new ArrayBuffer(ENCODE_BYTES);
    this.buffer = Buffer.from(this.whole);
    this.#view = new DataView(this.whole);
  }

  /**
   * Writes `value` at the start of {@link FlatEncoder.buffer} and returns where it ends, or
   * returns -1 (having written nothing that counts) if it is not a plain object this
   * handles, or if it is called again from inside itself. What reading `value` throws (a
   * getter, a Proxy trap) is thrown.
   */
  encode(value: unknown): number {
    // Re-entered (a getter of the object encodes with this codec): the inner call is
    // msgpackr's, which saves its own state, so this call's buffer is not written over.
    if (this.#busy) return -1;
    if (typeof value !== 'object' || value === null || value.constructor !== Object) return -1;
    this.#busy = true;
    try {
      return this.#object(value as Record<string, unknown>, 0, this.#root, 0);
    } finally {
      this.#busy = false;
    }
  }

  /** Compiles a writer for `shape`'s keys (none if code cannot be made from strings). */
  #compile(shape: Shape): void {
    shape.writers++;
    if (shape.keys.includes('__proto__')) return;
    try {
      const make = new Function(
        'buf',
        'view',
        'num',
        'str',
        'value',
        'K',
        'KB',
        writerSource(shape.keys, shape.keyBytes),
      );
      shape.write = make(
        this.buffer,
        this.#view,
        writeNumber,
        writeString,
        (v: unknown, pos: number, i: number, depth: number) => this.#value(v, pos, shape, i, depth),
        shape.keys.slice(),
        shape.keyBytes.slice(),
      ) as Writer;
    } catch (e) {
      noCodegen(e);
    }
  }

  /** Writes the plain object `o` at `pos` (its shape `shape`); where it ends, or -1. */
  #object(o: Record<string, unknown>, pos: number, shape: Shape, depth: number): number {
    const write = shape.write;
    if (write !== undefined) {
      const end = write(o, pos, depth);
      if (end !== -2) return end;
    }
    const buf = this.buffer;
    const { keys, keyBytes, keyHi, keyLo, kids } = shape;
    // msgpackr's plain-object writer: map 16, its size filled in at the end.
    const start = pos;
    buf[pos] = 0xde;
    pos += 3;
    let i = 0;
    // msgpackr's loop and own-property test, so that the same keys are written.
    for (const key in o) {
      // biome-ignore lint/suspicious/noPrototypeBuiltins: msgpackr calls the object's own.
      if (typeof o.hasOwnProperty === 'function' && !o.hasOwnProperty(key)) continue;
      if (i === MAX_KEYS) return -1;
      let kb = keyBytes[i];
      if (keys[i] !== key || kb === undefined) {
        kb = Uint8Array.from(this.packKey(key));
        shape.write = undefined; // a change of keys: the writer is for the old ones
        shape.still = 0;
        keys[i] = key;
        keyBytes[i] = kb;
        keyHi[i] = wordAt(kb, 0);
        keyLo[i] = wordAt(kb, 4);
        kids[i] = undefined;
      }
      const kn = kb.length;
      if (kn <= WORD_KEY && pos + WORD_KEY <= ENCODE_BYTES) {
        // Two word stores instead of a byte loop (half the cost of a quote's keys). Bytes
        // written past the key's end are written over by what follows it, or lie past the
        // message's end.
        const view = this.#view;
        view.setInt32(pos, keyHi[i] as number);
        if (kn > 4) view.setInt32(pos + 4, keyLo[i] as number);
      } else {
        if (pos + kn > ENCODE_BYTES) return -1;
        for (let j = 0; j < kn; j++) buf[pos + j] = kb[j] as number;
      }
      pos += kn;
      // The commonest values here, their writers inlined; the rest through `#value`.
      const v = o[key];
      if (pos + VALUE_ROOM > ENCODE_BYTES) return -1;
      if (typeof v === 'number') pos = writeNumber(buf, this.#view, v, pos);
      else if (typeof v === 'string') pos = writeString(buf, v, pos);
      else pos = this.#value(v, pos, shape, i, depth);
      if (pos < 0) return -1;
      i++;
    }
    if (i < keys.length) {
      shape.write = undefined;
      shape.still = 0;
      keys.length = i;
      keyBytes.length = i;
      keyHi.length = i;
      keyLo.length = i;
      kids.length = i;
    }
    buf[start + 1] = i >> 8;
    buf[start + 2] = i & 0xff;
    if (shape.write === undefined && stillEnough(++shape.still, shape.writers)) {
      this.#compile(shape);
    }
    return pos;
  }

  /** Writes the array `a` at `pos`; objects in it share `shape.kids[i]`. Its end, or -1. */
  #array(a: unknown[], pos: number, shape: Shape, i: number, depth: number): number {
    // Only a true array: an object posing as one (its constructor set to Array) may have a
    // length that is no count, which msgpackr writes its own way.
    if (!Array.isArray(a)) return -1;
    const n = a.length;
    if (n > MAX_ARRAY || pos + 3 > ENCODE_BYTES) return -1;
    const buf = this.buffer;
    // msgpackr's array header: fixarray, else array 16.
    if (n < 0x10) buf[pos++] = 0x90 | n;
    else {
      buf[pos++] = 0xdc;
      buf[pos++] = n >> 8;
      buf[pos++] = n & 0xff;
    }
    for (let j = 0; j < n; j++) {
      pos = this.#value(a[j], pos, shape, i, depth);
      if (pos < 0) return -1;
    }
    return pos;
  }

  /** Writes `v`, the value at place `i` of `shape`, at `pos`; where it ends, or -1. */
  #value(v: unknown, pos: number, shape: Shape, i: number, depth: number): number {
    if (pos + VALUE_ROOM > ENCODE_BYTES) return -1;
    if (typeof v === 'number') return writeNumber(this.buffer, this.#view, v, pos);
    if (typeof v === 'string') return writeString(this.buffer, v, pos);
    const buf = this.buffer;
    if (v === null) buf[pos++] = 0xc0;
    else if (v === true) buf[pos++] = 0xc3;
    else if (v === false) buf[pos++] = 0xc2;
    else if (typeof v === 'object' && depth + 1 < MAX_DEPTH) {
      const c = v.constructor;
      if (c === Object) {
        let kid = shape.kids[i];
        if (kid === undefined) {
          kid = newShape();
          shape.kids[i] = kid;
        }
        return this.#object(v as Record<string, unknown>, pos, kid, depth + 1);
      }
      if (c === Array) return this.#array(v as unknown[], pos, shape, i, depth + 1);
      return -1;
    } else return -1;
    return pos;
  }
}

/**
 * A string met at one place of a shape, with its bytes (ASCII, one per character), the
 * first eight of them also as two big-endian 32-bit words, zero-padded (see `same`).
 */
interface Seen {
  text: string;
  bytes: Uint8Array;
  hi: number;
  lo: number;
}

/** The top `n` bytes (0 to 4) of a 32-bit word. */
const TOP = [0, 0xff000000 | 0, 0xffff0000 | 0, 0xffffff00 | 0, -1];

/** `bytes[at, at + n)` as an ASCII string, or undefined if a byte is not ASCII. */
function ascii(bytes: Uint8Array, at: number, n: number): string | undefined {
  let s = '';
  for (let j = 0; j < n; j++) {
    const c = bytes[at + j] as number;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Whether `bytes[at, at + n)` are `seen`'s bytes. Up to 8 of them are compared as two words
 * read through `view` (a view of all of `bytes`) when 8 bytes from `at` lie inside it: the
 * bytes past `n` are masked off.
 */
function same(
  seen: Seen | undefined,
  bytes: Uint8Array,
  view: DataView,
  at: number,
  n: number,
): seen is Seen {
  if (seen === undefined || seen.bytes.length !== n) return false;
  if (n <= 8 && at + 8 <= bytes.length) {
    if (n <= 4) return (view.getInt32(at) & (TOP[n] as number)) === seen.hi;
    return (
      view.getInt32(at) === seen.hi && (view.getInt32(at + 4) & (TOP[n - 4] as number)) === seen.lo
    );
  }
  const b = seen.bytes;
  for (let j = 0; j < n; j++) if (b[j] !== bytes[at + j]) return false;
  return true;
}

/**
 * What the decoder met at one place of a message: keys, string values, and what is under;
 * and the maker of its objects once its keys hold still (see {@link FlatDecoder}).
 */
interface Place {
  keys: (Seen | undefined)[];
  strings: (Seen | undefined)[];
  kids: (Place | undefined)[];
  /** Bumped whenever a key at this place differs from the one before at its index. */
  epoch: number;
  /** Maps in a row with the same keys (see {@link stillEnough}). */
  still: number;
  /** Makes the object of `vals` for the keys of `epoch`, `count` of them. */
  make: ((vals: unknown[]) => Record<string, unknown>) | undefined;
  makeEpoch: number;
  makeCount: number;
  /** Entries of the last map here. */
  lastCount: number;
  /** Makers compiled here (see {@link stillEnough}). */
  makers: number;
}

const newPlace = (): Place => ({
  keys: [],
  strings: [],
  kids: [],
  epoch: 0,
  still: 0,
  make: undefined,
  makeEpoch: -1,
  makeCount: -1,
  lastCount: -1,
  makers: 0,
});

/**
 * A function making the object of `vals` for `keys` by one store per key, each named in the
 * code (`o["sym"] = v[1]`: a store that V8 caches for this shape), instead of a keyed store
 * whose key varies, which V8 runs through its megamorphic store stub once a decoder has met
 * more than a few shapes (~14% of a consumer's time for quotes). They are stores, as
 * msgpackr's are (a setter inherited from `Object.prototype` runs, as it does there; an
 * object literal would define the property instead); a duplicate key is assigned in order.
 * The keys are ASCII and never `__proto__` (those maps are msgpackr's), written as JSON
 * string literals. Undefined if code cannot be made from strings
 * (`--disallow-code-generation-from-strings`).
 */
function maker(
  keys: readonly string[],
): ((vals: unknown[]) => Record<string, unknown>) | undefined {
  const stores = keys.map((k, i) => `o[${JSON.stringify(k)}] = v[${i}];`).join(' ');
  try {
    return new Function('v', `const o = {}; ${stores} return o;`) as (
      vals: unknown[],
    ) => Record<string, unknown>;
  } catch (e) {
    noCodegen(e);
    return undefined;
  }
}

/**
 * Decodes msgpack maps of plain data into the objects msgpackr's `unpack` (`useRecords:
 * false`) would make, or says {@link NOT_FLAT}.
 *
 * @example
 * ```ts
 * const flat = new FlatDecoder();
 * const v = flat.decode(batch, start, end);
 * const value = v === NOT_FLAT ? unpackr.unpack(batch.subarray(start, end)) : v;
 * ```
 */
export class FlatDecoder {
  /** What the top-level map held last time. */
  readonly #root: Place = newPlace();
  #src: Uint8Array = Buffer.alloc(0);
  #view: DataView = new DataView(this.#src.buffer);
  /** `#src`'s length when `#view` was made (read from the view, it throws once shrunk). */
  #srcLength = 0;
  /** Where the next byte is read, and where the message ends. */
  #pos = 0;
  #end = 0;

  /** Per depth, the values of the map being decoded there (see `#map`). */
  readonly #vals: unknown[][] = Array.from({ length: MAX_DEPTH + 2 }, () => []);

  /** The key at `bytes[at, at + n)`, index `i` of `place`; a new one bumps its epoch. */
  #key(place: Place, i: number, at: number, n: number): string | undefined {
    const seen = place.keys[i];
    if (same(seen, this.#src, this.#view, at, n)) return seen.text;
    place.epoch++;
    return this.#string(place.keys, i, at, n);
  }

  /** The string at `bytes[at, at + n)`, reusing `cache[i]` if it has these bytes. */
  #string(cache: (Seen | undefined)[], i: number, at: number, n: number): string | undefined {
    const bytes = this.#src;
    const seen = cache[i];
    if (same(seen, bytes, this.#view, at, n)) return seen.text;
    const text = ascii(bytes, at, n);
    if (text !== undefined) {
      // A copy: `bytes` is a batch buffer, reused.
      const copy = new Uint8Array(n);
      for (let j = 0; j < n; j++) copy[j] = bytes[at + j] as number;
      cache[i] = { text, bytes: copy, hi: wordAt(copy, 0), lo: wordAt(copy, 4) };
    }
    return text;
  }

  /** The message at `bytes[start, end)`, or {@link NOT_FLAT} if it is not plain data. */
  decode(bytes: Uint8Array, start: number, end: number): unknown {
    if (end > bytes.length || start >= end) return NOT_FLAT;
    // A map at the top (anything else is msgpackr's).
    const token = bytes[start] as number;
    let n: number;
    if (token >= 0x80 && token <= 0x8f) {
      n = token & 0x0f;
      this.#pos = start + 1;
    } else if (token === 0xde && start + 3 <= end) {
      n = ((bytes[start + 1] as number) << 8) | (bytes[start + 2] as number);
      this.#pos = start + 3;
    } else return NOT_FLAT;
    // (A view of a resizable buffer may have grown or shrunk: its DataView is made again.)
    if (bytes !== this.#src || bytes.byteLength !== this.#srcLength) {
      this.#src = bytes;
      this.#srcLength = bytes.byteLength;
      this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.#end = end;
    const v = this.#map(n, this.#root, 1);
    return this.#pos === end ? v : NOT_FLAT;
  }

  /** A map of `n` entries from `#pos` (its header read), what was met there being `place`. */
  #map(n: number, place: Place, depth: number): unknown {
    if (n > MAX_KEYS) return NOT_FLAT;
    const bytes = this.#src;
    const end = this.#end;
    // The values by index (the object is made at the end: see `maker`); one array per depth,
    // as every map under this one is deeper. It keeps the last values until written over.
    const vals = this.#vals[depth] as unknown[];
    const epoch = place.epoch;
    // The position lives here while the loop runs, in `#pos` across the calls below.
    let pos = this.#pos;
    for (let i = 0; i < n; i++) {
      if (pos >= end) return NOT_FLAT;
      const kt = bytes[pos++] as number;
      if (kt < 0xa0 || kt >= 0xc0) return NOT_FLAT;
      const kn = kt & 0x1f;
      if (pos + kn > end) return NOT_FLAT;
      const key = this.#key(place, i, pos, kn);
      // msgpackr renames `__proto__`: left to it.
      if (key === undefined || key === '__proto__') return NOT_FLAT;
      pos += kn;
      // The commonest values inline (a call per value costs ~20% of a quote's decode).
      const t = pos < end ? (bytes[pos] as number) : -1;
      if (t >= 0 && t < 0x80) {
        vals[i] = t;
        pos += 1;
      } else if (t === 0xcb && pos + 9 <= end) {
        vals[i] = this.#view.getFloat64(pos + 1);
        pos += 9;
      } else if (t === 0xce && pos + 5 <= end) {
        vals[i] = this.#view.getUint32(pos + 1);
        pos += 5;
      } else if (t === 0xcd && pos + 3 <= end) {
        vals[i] = ((bytes[pos + 1] as number) << 8) | (bytes[pos + 2] as number);
        pos += 3;
      } else if (t >= 0xa0 && t < 0xc0 && pos + 1 + (t & 0x1f) <= end) {
        const v = this.#string(place.strings, i, pos + 1, t & 0x1f);
        if (v === undefined) return NOT_FLAT;
        vals[i] = v;
        pos += 1 + (t & 0x1f);
      } else {
        this.#pos = pos;
        const v = this.#value(place, i, depth);
        if (v === NOT_FLAT) return NOT_FLAT;
        vals[i] = v;
        pos = this.#pos;
      }
    }
    this.#pos = pos;
    return this.#made(place, n, epoch, vals);
  }

  /**
   * The object of the map just decoded at `place` (`n` entries, their keys in `place.keys`,
   * their values in `vals`; `epoch` the place's before it): made by the place's maker if it
   * has one for these keys, else by stores; after enough maps in a row ({@link stillEnough}) with the
   * same keys, a maker is compiled for them.
   */
  #made(place: Place, n: number, epoch: number, vals: unknown[]): Record<string, unknown> {
    const make = place.make;
    if (make !== undefined && place.makeEpoch === place.epoch && place.makeCount === n) {
      return make(vals);
    }
    const keys = place.keys;
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) o[(keys[i] as Seen).text] = vals[i];
    if (place.epoch === epoch && n === place.lastCount) {
      if (stillEnough(++place.still, place.makers)) {
        place.makers++;
        place.still = 0;
        place.make = maker(keys.slice(0, n).map((k) => (k as Seen).text));
        place.makeEpoch = place.epoch;
        place.makeCount = n;
      }
    } else {
      place.still = 0;
      place.lastCount = n;
    }
    return o;
  }

  /** An array of `n` elements from `#pos`; maps in it share `place.kids[i]`. */
  #array(n: number, place: Place, i: number, depth: number): unknown {
    // Every element takes a byte at least (msgpackr refuses a longer header too).
    if (n > this.#end - this.#pos) return NOT_FLAT;
    const a = new Array(n);
    for (let j = 0; j < n; j++) {
      const v = this.#value(place, i, depth);
      if (v === NOT_FLAT) return NOT_FLAT;
      a[j] = v;
    }
    return a;
  }

  /** The value at `#pos`, at place `i` of `place`. */
  #value(place: Place, i: number, depth: number): unknown {
    const bytes = this.#src;
    const end = this.#end;
    let pos = this.#pos;
    if (pos >= end) return NOT_FLAT;
    const t = bytes[pos++] as number;
    let v: unknown;
    if (t < 0x80) v = t;
    else if (t >= 0xe0) v = t - 0x100;
    else if (t >= 0xa0 && t < 0xc0) {
      const sn = t & 0x1f;
      if (pos + sn > end) return NOT_FLAT;
      v = this.#string(place.strings, i, pos, sn);
      if (v === undefined) return NOT_FLAT;
      pos += sn;
    } else if (t === 0xc0) v = null;
    else if (t === 0xc2) v = false;
    else if (t === 0xc3) v = true;
    else if (t >= 0xcb && t <= 0xd2 && t !== 0xcf) {
      // float 64, uint 8/16/32, int 8/16/32 (uint 64 is msgpackr's: it may be a BigInt).
      const w = FIXED_WIDTH[t - 0xcb] as number;
      if (pos + w > end) return NOT_FLAT;
      const view = this.#view;
      if (t === 0xcb) v = view.getFloat64(pos);
      else if (t === 0xcc) v = bytes[pos];
      else if (t === 0xcd) v = view.getUint16(pos);
      else if (t === 0xce) v = view.getUint32(pos);
      else if (t === 0xd0) v = view.getInt8(pos);
      else if (t === 0xd1) v = view.getInt16(pos);
      else v = view.getInt32(pos);
      pos += w;
    } else {
      // A map or an array: one level down.
      if (depth >= MAX_DEPTH) return NOT_FLAT;
      let n: number;
      let map: boolean;
      if (t >= 0x80 && t <= 0x9f) {
        n = t & 0x0f;
        map = t < 0x90;
      } else if (t === 0xde || t === 0xdc) {
        if (pos + 2 > end) return NOT_FLAT;
        n = ((bytes[pos] as number) << 8) | (bytes[pos + 1] as number);
        pos += 2;
        map = t === 0xde;
      } else return NOT_FLAT;
      this.#pos = pos;
      if (!map) return this.#array(n, place, i, depth + 1);
      let kid = place.kids[i];
      if (kid === undefined) {
        kid = newPlace();
        place.kids[i] = kid;
      }
      return this.#map(n, kid, depth + 1);
    }
    this.#pos = pos;
    return v;
  }
}
