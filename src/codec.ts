/**
 * Codecs turn values into bytes and back. The default is msgpack (msgpackr with
 * `useRecords: false`, so any msgpack decoder in any language can read the channel); `json`
 * and `raw` (Buffers in, Buffers out) are built in, and any object with `encode`/`decode`
 * works too.
 *
 * @example
 * ```ts
 * import { open, type Codec } from 'shmring';
 * const upper: Codec<string> = {
 *   encode: (s) => Buffer.from(s.toUpperCase()),
 *   decode: (b) => Buffer.from(b).toString(),
 * };
 * const ch = open<string>('shouts', { create: true, codec: upper });
 * ```
 */
import { Packr, RESET_BUFFER_MODE, REUSE_BUFFER_MODE, Unpackr } from 'msgpackr';
import { ByteCopier } from './copy.js';
import { makeError, ShmringError } from './errors.js';
import { FlatDecoder, FlatEncoder, MissBackoff, NOT_FLAT } from './flat.js';
import { shown } from './validate.js';

/**
 * `e`, thrown by `codec` encoding `value`, as an `InvalidArgument` naming the value (a
 * ShmringError passes as it is). @internal
 */
export function encodeError(codec: string, value: unknown, e: unknown): ShmringError {
  if (e instanceof ShmringError) return e;
  const why =
    e instanceof RangeError && /call stack/.test(e.message)
      ? 'it is circular or nested too deeply'
      : e instanceof Error
        ? e.message
        : String(e);
  return makeError(
    'InvalidArgument',
    `the ${codec} codec cannot encode ${shown(value)}: ${why}`,
    e,
  );
}

/**
 * Encodes values of `T` to bytes and decodes them back.
 *
 * @example
 * ```ts
 * const dates: Codec<Date> = {
 *   encode: (d) => Buffer.from(d.toISOString()),
 *   decode: (b) => new Date(Buffer.from(b).toString()),
 * };
 * ```
 */
export interface Codec<T> {
  /**
   * Encodes one value. The returned bytes need only stay valid until the next `encode`
   * call (shmring copies them into the ring at once).
   */
  encode(value: T): Uint8Array;
  /**
   * Decodes one message. `bytes` is a view of a buffer that is reused after the call:
   * copy anything you keep that is not a fresh value.
   */
  decode(bytes: Uint8Array): T;
}

/** The names of the built-in codecs. */
export type CodecName = 'msgpack' | 'json' | 'raw';

/**
 * Where a built-in codec keeps a faster `decode` of the message at `buffer[start, end)` of a
 * drained batch, which skips making a view of each message when that pays. @internal
 */
export const decodeAt: unique symbol = Symbol('shmring.decodeAt');

/**
 * Where a built-in codec keeps an `encode` that leaves the message in a reused buffer and
 * says where, so that publishing it needs no view of it. @internal
 */
export const encodeRange: unique symbol = Symbol('shmring.encodeRange');

/**
 * What an `encodeRange` returns: its buffer, the message at `buffer[start, end)`; `whole`,
 * when set, is an ArrayBuffer that the buffer views all of from byte 0 (the fast path's),
 * which the publisher hands over instead (kept here: a Buffer's `buffer` getter is a call
 * into V8 on every message). @internal
 */
export type EncodedRange = Buffer & { start: number; end: number; whole?: ArrayBuffer };

/** A codec that may decode a message in place in a batch buffer. @internal */
export type FrameCodec<T> = Codec<T> & {
  [decodeAt]?: (buffer: Buffer, start: number, end: number) => T;
  [encodeRange]?: (value: T) => EncodedRange;
};

/**
 * `codec`'s decoder of the message at `buffer[start, end)`: its own, or `decode` of a view.
 * @internal
 */
export function frameDecoder<T>(
  codec: Codec<T>,
): (buffer: Buffer, start: number, end: number) => T {
  const at = (codec as FrameCodec<T>)[decodeAt];
  return at ?? ((buffer, start, end) => codec.decode(buffer.subarray(start, end)));
}

/**
 * msgpackr's own size below which a source is decoded with JS string reads rather than its
 * native string extractor (msgpackr 2.1.4, `unpack.js`: `srcEnd < 140`). It compares the
 * *absolute* end offset, so a range deep in a batch buffer always takes the extractor (one
 * native call per message: slower than JS for short strings), and a view of each message
 * costs a `subarray` and a fresh `DataView` (~140 ns together, on the development machine).
 * Messages shorter than this are therefore copied, byte by byte, to the start of one reused
 * scratch buffer, whose `DataView` msgpackr caches: a 40-byte quote decodes in ~280 ns
 * instead of ~425 ns through a view. Larger ones are decoded in place by range (a ~300-byte
 * object: ~820 vs ~1,080 ns through a view).
 */
const MSGPACKR_SMALL_SOURCE = 140;

/**
 * msgpack via msgpackr: plain maps, no record extension; binary fields are copied out.
 * Plain data (objects and arrays of numbers, short ASCII strings, booleans, `null`) takes a
 * faster path that writes and reads the very bytes msgpackr does. `encode` returns a view of
 * one reused buffer, valid until its next call. A value msgpack cannot represent is an
 * {@link InvalidArgumentError} naming it: a function anywhere in it (msgpackr would drop it
 * silently: `{ f() {} }` would arrive as `{}`), a Symbol, a BigInt outside 64 bits, a
 * circular structure.
 *
 * @example
 * ```ts
 * const ch = open<{ n: number }>('numbers', { create: true, codec: msgpack() });
 * ```
 */
export function msgpack<T = unknown>(): Codec<T> {
  const packr = new Packr({
    useRecords: false,
    writeFunction: () => {
      throw makeError('InvalidArgument', 'a function cannot be sent');
    },
  });
  const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
  const range = { start: 0, end: 0 }; // read by unpack at once: safe to reuse
  // Reused for every small message: `copyBuffers` makes binary fields copies, and strings
  // are new values, so nothing decoded refers to it afterwards.
  const scratch = Buffer.allocUnsafe(MSGPACKR_SMALL_SOURCE);
  // Keeps a view of the batch buffer last decoded from (a subscription keeps one buffer).
  const copier = new ByteCopier();
  // Plain data (./flat.ts): msgpackr's bytes and values, made without it. A key's bytes
  // are msgpackr's own (RESET_BUFFER_MODE: copied before the next pack).
  const flatOut = new FlatEncoder((key) => packr.pack(key, RESET_BUFFER_MODE));
  const flatRange = flatOut.buffer as EncodedRange;
  flatRange.start = 0;
  flatRange.end = 0;
  flatRange.whole = flatOut.whole;
  const flatIn = new FlatDecoder();
  // A value the fast path cannot take costs a part-way walk before msgpackr's whole one (a
  // quote with a Date: ~450 ns to encode against msgpackr's ~300): after misses, skip it.
  const outTries = new MissBackoff();
  const inTries = new MissBackoff();
  /** The fast path's encoding of `value` (its end in `flatOut.buffer`), or -1. */
  const flatEncode = (value: unknown): number => {
    if (!outTries.try()) return -1;
    const end = flatOut.encode(value);
    if (end >= 0) outTries.hit();
    else outTries.miss();
    return end;
  };
  /** The fast path's decoding of `buffer[start, end)`, or NOT_FLAT. */
  const flatDecode = (buffer: Uint8Array, start: number, end: number): unknown => {
    if (!inTries.try()) return NOT_FLAT;
    const v = flatIn.decode(buffer, start, end);
    if (v !== NOT_FLAT) inTries.hit();
    else inTries.miss();
    return v;
  };
  /** msgpackr's decoding of `buffer[start, end)`. */
  const unpackAt = (buffer: Buffer, start: number, end: number): T => {
    const n = end - start;
    if (n < MSGPACKR_SMALL_SOURCE) {
      // By hand (./copy.ts): cheaper than Buffer#copy's native call at these sizes.
      copier.copy(buffer, start, end, scratch, 0);
      return unpackr.unpack(scratch, n) as T;
    }
    range.start = start;
    range.end = end;
    return unpackr.unpack(buffer, range) as T;
  };
  const codec: FrameCodec<T> = {
    // RESET_BUFFER_MODE: the next pack writes over this one (Codec.encode's contract allows
    // it), so packing reuses one region instead of a fresh 8 KiB buffer every ~150 quotes:
    // ~5% faster, and no garbage.
    // The flat path inside the `try` too: what reading the value throws (a getter, a Proxy
    // trap) is the codec's InvalidArgument, as it is through msgpackr.
    encode: (value) => {
      try {
        const end = flatEncode(value);
        if (end >= 0) return flatOut.buffer.subarray(0, end);
        return packr.pack(value, RESET_BUFFER_MODE);
      } catch (e) {
        throw encodeError('msgpack', value, e);
      }
    },
    // REUSE_BUFFER_MODE as well: msgpackr returns its whole buffer with the message's bounds
    // as `start` and `end` instead of a `subarray` of it (a fresh Buffer object per message,
    // ~30 ns of a 40-byte quote's ~350 ns publish); the publisher hands the range over.
    [encodeRange]: (value) => {
      try {
        const end = flatEncode(value);
        if (end >= 0) {
          flatRange.end = end;
          return flatRange;
        }
        return packr.pack(value, REUSE_BUFFER_MODE | RESET_BUFFER_MODE) as EncodedRange;
      } catch (e) {
        throw encodeError('msgpack', value, e);
      }
    },
    decode: (bytes) => {
      const v = flatDecode(bytes, 0, bytes.length);
      return v === NOT_FLAT ? (unpackr.unpack(bytes) as T) : (v as T);
    },
    [decodeAt]: (buffer, start, end) => {
      const v = flatDecode(buffer, start, end);
      return v === NOT_FLAT ? unpackAt(buffer, start, end) : (v as T);
    },
  };
  return codec;
}

/**
 * UTF-8 JSON text: readable by anything, slower and larger than msgpack. A value JSON
 * cannot represent (`undefined`, a function, a BigInt, a circular structure) is an
 * {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * const ch = open<{ level: string }>('logs', { create: true, codec: 'json' });
 * ```
 */
export function json<T = unknown>(): Codec<T> {
  const decoder = new TextDecoder();
  return {
    encode(value) {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (e) {
        throw encodeError('json', value, e);
      }
      if (text === undefined) {
        throw makeError('InvalidArgument', `the json codec cannot encode ${shown(value)}`);
      }
      return Buffer.from(text);
    },
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}

/**
 * Bytes as they are: any `Uint8Array` (or `Buffer`) in, a fresh `Buffer` out.
 *
 * @example
 * ```ts
 * const frames = open<Buffer>('frames', { create: true, codec: 'raw' });
 * frames.publish(Buffer.from([1, 2, 3]));
 * ```
 */
export function raw(): Codec<Buffer> {
  const codec: FrameCodec<Buffer> = {
    encode: (bytes) => {
      if (!(bytes instanceof Uint8Array)) {
        throw makeError('InvalidArgument', `the raw codec takes a Buffer or Uint8Array`);
      }
      return bytes;
    },
    decode: (bytes) => Buffer.from(bytes),
    // The same copy without a view first (~115 vs ~135 ns for 40 bytes).
    [decodeAt]: (buffer, start, end) => {
      const out = Buffer.allocUnsafe(end - start);
      buffer.copy(out, 0, start, end);
      return out;
    },
  };
  return codec;
}

/**
 * Bytes without a copy on the way out: any `Uint8Array` (or `Buffer`) in; out, a `Buffer`
 * *view* of the message in the subscription's reused frame buffer. It saves allocating and
 * filling a fresh `Buffer` per message, which dominates receiving large frames (a 64 KiB
 * `raw` message costs a copy plus an allocation that the garbage collector must later
 * reclaim). The view is valid only until the handler returns: until `next` returns for
 * {@link Channel.messages}, until the next `next()` of an async iterator, until the next
 * `receiveSync`. Copy what you keep (`Buffer.from(view)`), and copy before anything that
 * defers a value (RxJS `delay`, `bufferCount`, `observeOn`; two iterator `next()` calls in
 * flight at once).
 *
 * @example
 * ```ts
 * import { open, rawView } from 'shmring';
 * const frames = open<Buffer>('frames', { create: true, codec: rawView() });
 * frames.messages().subscribe((view) => hash.update(view)); // used at once, never kept
 * ```
 */
export function rawView(): Codec<Buffer> {
  const codec: FrameCodec<Buffer> = {
    encode: raw().encode,
    decode: asBuffer,
    [decodeAt]: (buffer, start, end) => buffer.subarray(start, end),
  };
  return codec;
}

/** `bytes` as a `Buffer` over the same memory (no copy). @internal */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The codec an `open` option names (a fresh instance per channel, since msgpackr reuses
 * its buffers). @internal
 */
export function resolveCodec<T>(codec: CodecName | Codec<T> | undefined): Codec<T> {
  if (codec === undefined || codec === 'msgpack') return msgpack<T>();
  if (codec === 'json') return json<T>();
  if (codec === 'raw') return raw() as unknown as Codec<T>;
  if (
    typeof codec === 'object' &&
    codec !== null &&
    typeof codec.encode === 'function' &&
    typeof codec.decode === 'function'
  ) {
    return codec;
  }
  throw makeError(
    'InvalidArgument',
    `codec must be 'msgpack', 'json', 'raw' or an object with encode and decode, not ${String(codec)}`,
  );
}
