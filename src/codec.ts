/**
 * Codecs turn values into bytes and back. The default is msgpack (msgpackr with
 * `useRecords: false`, so any msgpack decoder in any language can read the channel).
 */
import { Packr, Unpackr } from 'msgpackr';

/** Encodes values of `T` to bytes and decodes them back. */
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

/** msgpack via msgpackr: plain maps, no record extension; binary fields are copied out. */
export function msgpack<T = unknown>(): Codec<T> {
  const packr = new Packr({ useRecords: false });
  const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
  return {
    encode: (value) => packr.pack(value),
    decode: (bytes) => unpackr.unpack(bytes) as T,
  };
}
