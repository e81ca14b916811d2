/**
 * The publishing side of a channel: `publish` and `publishMany` (synchronous, never block
 * the event loop) and the send queue (`send` waits for room off the event loop, in call
 * order, in `SEND_SLICE_MS` slices, and gives up on a timeout, an abort or `close`).
 * `Channel` delegates to one {@link Publisher}; the public docs are on its methods.
 * @internal
 */
import { asBuffer, type Codec, type EncodedRange, encodeRange, type FrameCodec } from './codec.js';
import { ByteCopier } from './copy.js';
import { call, fromNative, makeError, ShmringError, TimeoutError } from './errors.js';
import { type NativeChannel, native } from './native.js';
import type { SendOptions } from './types.js';
import { checkSignal, checkTimeout, optionsOf, shown } from './validate.js';

/** A waiting `send` waits for room in slices this long, so a wait can be given up quickly. */
const SEND_SLICE_MS = 100;

/** Whether `bytes` is a view of a detached (transferred) ArrayBuffer. */
function isDetached(bytes: Uint8Array): boolean {
  if (bytes.byteLength !== 0) return false;
  const ab = bytes.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof ab.detached === 'boolean') return ab.detached;
  try {
    new Uint8Array(ab); // Node 20 has no `detached`: constructing a view throws if it is
    return false;
  } catch {
    return true;
  }
}

/** What a channel publishes with: its producer side, its encoder and its send queue. */
export class Publisher<T> {
  /** The channel's name, for messages. */
  readonly #name: string;
  /** The native channel; throws a ClosedError once the channel is closed. */
  readonly #open: () => NativeChannel;
  /** Names this handle's producer side in the native `publish` and `publishMany`. */
  readonly #handle: number;
  readonly #codec: Codec<T>;
  /** The built-in msgpack codec's encoder into its reused buffer (see `encodeRange`). */
  readonly #encodeRange: ((value: T) => EncodedRange) | undefined;
  readonly #maxMessageSize: number;
  readonly #capacity: number;
  /** Aborted by the channel's `close()` with a ClosedError: ends every waiting send at once. */
  readonly #closing: AbortSignal;
  #sending: Promise<void> = Promise.resolve();
  #pendingSends = 0;
  #batch: Buffer | undefined;
  #ends: Uint32Array | undefined;
  /** Copies the built-in codec's messages out of its reused buffer (./copy.ts). */
  readonly #copier = new ByteCopier();

  constructor(
    name: string,
    open: () => NativeChannel,
    handle: number,
    codec: Codec<T>,
    sizes: { maxMessageSize: number; capacity: number },
    closing: AbortSignal,
  ) {
    this.#name = name;
    this.#open = open;
    this.#handle = handle;
    this.#codec = codec;
    this.#encodeRange = (codec as FrameCodec<T>)[encodeRange];
    this.#maxMessageSize = sizes.maxMessageSize;
    this.#capacity = sizes.capacity;
    this.#closing = closing;
  }

  /**
   * `value` encoded: an `InvalidArgument` if the codec cannot encode it (whatever the codec
   * threw is its `cause`), or returns something other than bytes, or a detached buffer.
   */
  #encode(value: T): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(value);
    } catch (e) {
      if (e instanceof ShmringError) throw e;
      throw makeError(
        'InvalidArgument',
        `the codec cannot encode ${shown(value)}: ${e instanceof Error ? e.message : String(e)}`,
        e,
      );
    }
    if (!(bytes instanceof Uint8Array)) {
      throw makeError(
        'InvalidArgument',
        `the codec's encode returned ${shown(bytes)}, not a Uint8Array`,
      );
    }
    if (isDetached(bytes)) {
      throw makeError(
        'InvalidArgument',
        'the message is a view of a detached (transferred) ArrayBuffer: its bytes are gone',
      );
    }
    return bytes;
  }

  /** `Channel.publish`. */
  publish(value: T): boolean {
    this.#open();
    if (this.#pendingSends > 0) return false;
    const range = this.#encodeRange;
    if (range !== undefined) {
      // The built-in codec: its errors are typed already, and its bytes are a live Buffer.
      const b = range(value);
      try {
        // All of an ArrayBuffer from byte 0 (the fast path's): hand over the ArrayBuffer.
        const whole = b.whole;
        if (whole !== undefined) return native.publishAt(this.#handle, whole, b.end);
        return native.publishRange(this.#handle, b, b.start, b.end);
      } catch (e) {
        throw fromNative(e);
      }
    }
    const bytes = this.#encode(value);
    return call(() => native.publish(this.#handle, asBuffer(bytes)));
  }

  /** `Channel.publishMany`. */
  publishMany(values: readonly T[]): number {
    this.#open();
    if (
      values === null ||
      typeof values !== 'object' ||
      typeof (values as Iterable<T>)[Symbol.iterator] !== 'function'
    ) {
      throw makeError(
        'InvalidArgument',
        `publishMany takes an array of values, not ${shown(values)}`,
      );
    }
    const h = this.#handle;
    if (this.#pendingSends > 0) return 0;
    let published = 0;
    let used = 0;
    let count = 0;
    let batch = this.#batch ?? Buffer.allocUnsafe(64 * 1024);
    let ends = this.#ends ?? new Uint32Array(1024);
    const flush = (): boolean => {
      const batchBytes = used;
      const batchCount = count;
      // Taken out of the batch before the call: whatever it does, never published twice.
      used = 0;
      count = 0;
      let n: number;
      try {
        n = call(() =>
          native.publishMany(h, batch.subarray(0, batchBytes), ends.subarray(0, batchCount)),
        );
      } catch (e) {
        // A native call that failed part-way (policy `fail`: `RingFull`) says how many of its
        // messages went in as its error's `published` (none: it published nothing).
        if (e instanceof ShmringError) e.published = published + (e.published ?? 0);
        throw e;
      }
      published += n;
      return n === batchCount;
    };
    const range = this.#encodeRange;
    try {
      for (const value of values) {
        /** The message: `bytes`, or (the built-in codec) `ranged[start, end)`. */
        let bytes: Uint8Array | undefined;
        let ranged: EncodedRange | undefined;
        try {
          if (range === undefined) bytes = this.#encode(value);
          else {
            // The built-in codec leaves it in its reused buffer (no view of each message);
            // its errors are typed already.
            ranged = range(value);
            if (ranged.end - ranged.start > this.#maxMessageSize) {
              bytes = ranged.subarray(ranged.start, ranged.end);
            }
          }
          // Refused here, not in the native call, so that the count of the values before
          // it is known; `publish` gives the error (and message) it would.
          if (bytes !== undefined && bytes.length > this.#maxMessageSize) {
            if (count > 0 && !flush()) return published;
            const oversize = bytes;
            // It throws the error `publish` gives; were the engine to take it, it is in (once).
            if (!call(() => native.publish(h, asBuffer(oversize)))) return published;
            published += 1;
            continue;
          }
        } catch (e) {
          // Values before this one go in first, as they would have without it.
          if (count > 0) flush();
          // (An error of a native call already says how many of its batch went in.)
          if (e instanceof ShmringError && e.published === undefined && published > 0) {
            e.message += ` (after ${published} messages of the batch were published)`;
          }
          throw e;
        }
        const len =
          bytes !== undefined
            ? bytes.length
            : (ranged as EncodedRange).end - (ranged as EncodedRange).start;
        if (used + len > batch.length) {
          // A ring-full per native call is as much as can go in at once anyway.
          if (used > 0 && used + len > this.#capacity && !flush()) return published;
          if (used + len > batch.length) {
            const bigger = Buffer.allocUnsafe(Math.max(2 * batch.length, used + len));
            batch.copy(bigger, 0, 0, used);
            batch = bigger;
          }
        }
        if (count === ends.length) {
          const more = new Uint32Array(2 * ends.length);
          more.set(ends);
          ends = more;
        }
        if (bytes !== undefined) batch.set(bytes, used);
        else {
          const r = ranged as EncodedRange;
          this.#copier.copy(r, r.start, r.end, batch, used);
        }
        used += len;
        ends[count++] = used;
      }
      if (count > 0) flush();
      return published;
    } catch (e) {
      const typed = fromNative(e);
      if (typed instanceof ShmringError && typed.published === undefined) {
        typed.published = published;
      }
      throw typed;
    } finally {
      this.#batch = batch;
      this.#ends = ends;
    }
  }

  /** `Channel.send`. */
  send(value: T, options?: SendOptions | null): Promise<void> {
    let timeoutMs: number | undefined;
    let signal: AbortSignal | undefined;
    let bytes: Buffer;
    try {
      const o = optionsOf<SendOptions>('send', options);
      timeoutMs = o.timeoutMs;
      signal = o.signal;
      checkTimeout('send option timeoutMs', timeoutMs);
      checkSignal('send', signal);
      this.#open();
      signal?.throwIfAborted();
      // Copied: the codec may reuse its buffer before this send gets its turn.
      bytes = Buffer.from(this.#encode(value));
      if (bytes.length > this.#maxMessageSize) {
        // Same error (and message) publish would give, without waiting for a turn.
        this.#open();
        call(() => native.publish(this.#handle, bytes));
      }
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
    // Not `AbortSignal.any`: each would add a listener to the channel's closing signal, and
    // 11 concurrent sends would print MaxListenersExceededWarning. `untilAborted` keeps one
    // listener per signal for all the sends that wait on it.
    const stop: AbortSignal[] = signal === undefined ? [this.#closing] : [signal, this.#closing];
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    this.#pendingSends++;
    const run = this.#sending.then(async () => {
      for (;;) {
        for (const s of stop) s.throwIfAborted();
        const nat = this.#open();
        if (call(() => native.publish(this.#handle, bytes))) return;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new TimeoutError(
            `no room in channel ${JSON.stringify(this.#name)} within ${timeoutMs} ms`,
          );
        }
        await untilAborted(nat.waitForSpace(bytes.length, Math.min(left, SEND_SLICE_MS)), stop);
      }
    });
    const settled = run.finally(() => {
      this.#pendingSends--;
    });
    // The chain goes on whether this send succeeded or not.
    this.#sending = settled.catch(() => {});
    // A send still queued behind others gives up at once when aborted.
    return untilAborted(settled, stop);
  }
}

/**
 * What waits on each signal: one `abort` listener per signal runs them all, however many
 * sends wait on it (a listener each would print MaxListenersExceededWarning past 10).
 */
const abortWaiters = new WeakMap<AbortSignal, Set<(reason: unknown) => void>>();

/** Calls `f(signal.reason)` when `signal` aborts; returns what stops that. */
function onAbort(signal: AbortSignal, f: (reason: unknown) => void): () => void {
  let waiters = abortWaiters.get(signal);
  if (waiters === undefined) {
    const set = new Set<(reason: unknown) => void>();
    waiters = set;
    abortWaiters.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        abortWaiters.delete(signal);
        for (const w of set) w(signal.reason);
      },
      { once: true },
    );
  }
  const set = waiters;
  set.add(f);
  return () => set.delete(f);
}

/** Resolves or rejects like `p`, or rejects with the reason of the first of `signals` to abort. */
function untilAborted<R>(p: Promise<R>, signals: readonly AbortSignal[]): Promise<R> {
  for (const s of signals) if (s.aborted) return Promise.reject(s.reason);
  return new Promise<R>((resolve, reject) => {
    const offs = signals.map((s) => onAbort(s, reject));
    p.then(resolve, reject).finally(() => {
      for (const off of offs) off();
    });
  });
}
