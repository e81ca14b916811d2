import { Observable } from 'rxjs';
import { asBuffer, type Codec, type CodecName, frameDecoder, resolveCodec } from './codec.js';
import { ClosedError, call, fromNative, makeError, ShmringError, TimeoutError } from './errors.js';
import { FRAME_PREFIX, FrameWalker, frameBuffer, frameBytes } from './frame.js';
import {
  type NativeChannel,
  type NativeParticipant,
  type NativeSubscription,
  type NativeSummary,
  type NativeSyncSubscription,
  native,
} from './native.js';
import {
  checkName,
  checkOpenOptions,
  checkSignal,
  checkSubscribeOptions,
  checkTimeout,
  optionsOf,
  shown,
} from './validate.js';

/**
 * How messages are delivered: fan-out to every subscriber (`topic`), or each message to
 * exactly one of competing consumers (`queue`).
 *
 * @example
 * ```ts
 * const kind: Kind = open('jobs').info().kind as Kind;
 * ```
 */
export type Kind = 'topic' | 'queue';
/**
 * How producers coordinate: a CAS on the shared tail, no lock ever held (`lockfree`), or
 * process-shared semaphores and a robust mutex (`semaphore`).
 *
 * @example
 * ```ts
 * const ch = open('ticks', { create: true, sync: 'lockfree' });
 * ```
 */
export type SyncMode = 'lockfree' | 'semaphore';
/**
 * What a full ring does to a publisher: `block` (`publish` returns false, `send` waits for
 * room), `fail` (`publish` throws {@link RingFullError}) or `overwrite` (topic only: never
 * wait; a lapped subscriber is told how many messages it lost).
 *
 * @example
 * ```ts
 * const ch = open('telemetry', { create: true, policy: 'fail' });
 * ```
 */
export type Policy = 'block' | 'fail' | 'overwrite';

/**
 * How a subscription waits for the next message (the engine's `WaitStrategy`):
 *
 * - `adaptive` (the default): poll the ring for about 50 µs, then sleep on a futex. Low
 *   latency within bursts, no CPU when idle.
 * - `spin`: never sleep. Lowest latency, and one core busy for as long as the subscription
 *   waits: for {@link Channel.messages} and {@link Channel.iterate} that is the
 *   subscription's native waiter thread (the event loop itself never spins); for
 *   {@link Channel.receiveSync}, the calling thread.
 * - `block`: sleep on the futex at once. Least CPU; each wake-up is a system call.
 *
 * @example
 * ```ts
 * const ch = open('ticks', { create: true, wait: 'spin' }); // every subscription spins
 * ch.messages({ wait: 'block' }).subscribe(log); // except this one
 * ```
 */
export type WaitStrategy = 'adaptive' | 'spin' | 'block';

/**
 * Options of {@link open}. Attaching to an existing channel adopts its settings; the
 * settings you state here are checked against it.
 *
 * @example
 * ```ts
 * const opts: OpenOptions<Buffer> = { create: true, capacity: 1 << 16, codec: 'raw' };
 * const ch = open('frames', opts);
 * ```
 */
export interface OpenOptions<T = unknown> {
  /** Create the channel if it does not exist (race-free: one process creates, others attach). */
  create?: boolean;
  /** With `create`: throw {@link AlreadyExistsError} if the channel exists. */
  exclusive?: boolean;
  /** Delivery kind (default `topic`). Checked against an existing channel if given. */
  kind?: Kind;
  /** Coordination mode (default `lockfree`). Checked against an existing channel if given. */
  sync?: SyncMode;
  /** Data area in bytes, a power of two (default 1 MiB). Checked if given. */
  capacity?: number;
  /** Largest encoded message in bytes (default 64 KiB, at most capacity/2 - 16). */
  maxMessageSize?: number;
  /** Participant table size (default 64). */
  maxParticipants?: number;
  /** Full-ring behaviour (default `block`). Checked if given. */
  policy?: Policy;
  /** Permission bits of a created segment (default `0o600`). */
  mode?: number;
  /**
   * Replace a dead channel under this name with a new one (implies `create`): one that is
   * stale (its creator and every participant are dead, and no process has it open) or that
   * never became ready (its creator died creating it). A channel some live process uses is
   * never replaced: it is attached as usual, or, if it cannot be (with `exclusive`, or a
   * damaged one), `open` throws an error naming the processes that hold it. Concurrent
   * recoverers all end up on the same new channel.
   */
  recover?: boolean;
  /**
   * Use a channel whose segment belongs to another user. Off by default: such a channel is
   * refused with {@link PermissionDeniedError}, since its owner could rewrite it under us.
   */
  allowForeignOwner?: boolean;
  /**
   * How values are encoded: `'msgpack'` (the default; readable by any msgpack decoder),
   * `'json'`, `'raw'` (Buffers in, Buffers out) or your own {@link Codec}. Every process on
   * a channel must use the same one; it is not stored in the channel.
   */
  codec?: CodecName | Codec<T>;
  /**
   * How this handle's subscriptions wait for messages, unless one says otherwise
   * (default `adaptive`). Not stored in the channel: each process chooses its own.
   */
  wait?: WaitStrategy;
}

/**
 * The settings of an open channel, as stored in its header.
 *
 * @example
 * ```ts
 * const { capacity, maxMessageSize } = ch.info();
 * ```
 */
export interface ChannelInfo {
  name: string;
  kind: string;
  sync: string;
  policy: string;
  capacity: number;
  maxMessageSize: number;
  maxParticipants: number;
  mode: number;
  /** Whether this handle created the segment. */
  created: boolean;
  creatorPid: number;
  createdAtMs: number;
}

/**
 * One producer or subscriber attached to a channel.
 *
 * @example
 * ```ts
 * const slow = ch.stats().participants.filter((p) => p.role === 'subscriber' && p.lag > 4096);
 * ```
 */
export interface Participant {
  slot: number;
  role: 'producer' | 'subscriber' | 'consumer' | 'joining';
  pid: number;
  /** Whether the owning process (pid and start time) still runs. */
  alive: boolean;
  /** A subscriber's next position to read (bytes since the channel was created). */
  cursor: number;
  /** A subscriber's distance behind the tail in bytes (0 for producers). */
  lag: number;
  /** Messages published (producer) or received (subscriber). */
  messages: number;
  /** Messages a subscriber lost to `overwrite`. */
  lost: number;
  /** Last activity, milliseconds since the Unix epoch. */
  heartbeatMs: number;
}

/**
 * The state of a channel, as {@link list} and `shmring ls` report it.
 *
 * @example
 * ```ts
 * for (const l of list()) if (l.summary?.stale) unlink(l.name);
 * ```
 */
export interface ChannelSummary {
  name: string;
  kind: string;
  sync: string;
  policy: string;
  capacity: number;
  maxMessageSize: number;
  maxParticipants: number;
  mode: number;
  creatorPid: number;
  /** Whether the creating process (pid and start time) still runs. */
  creatorAlive: boolean;
  createdAtMs: number;
  /** The next position producers will claim (bytes since creation). */
  tail: number;
  /** Bytes of the ring still held for the slowest subscriber. */
  bytesUsed: number;
  /** Creator and every participant are dead: nobody can be using the channel. */
  stale: boolean;
  participants: Participant[];
}

/**
 * A snapshot of an open channel: its settings, tail, participants and their lag.
 *
 * @example
 * ```ts
 * const { bytesUsed, participants } = ch.stats();
 * ```
 */
export interface ChannelStats extends ChannelInfo {
  tail: number;
  bytesUsed: number;
  creatorAlive: boolean;
  stale: boolean;
  participants: Participant[];
}

/**
 * One `shmring.*` segment found in `/dev/shm`: its summary, or why it could not be read
 * (a foreign or damaged file, or one we may not open).
 *
 * @example
 * ```ts
 * for (const { name, summary, error } of list()) console.log(name, summary?.bytesUsed ?? error?.code);
 * ```
 */
export interface ChannelListing {
  name: string;
  summary?: ChannelSummary;
  error?: ShmringError;
}

/**
 * Options of {@link Channel.send}.
 *
 * @example
 * ```ts
 * await ch.send(value, { timeoutMs: 1000, signal: AbortSignal.timeout(5000) });
 * ```
 */
export interface SendOptions {
  /**
   * Give up after this many milliseconds with {@link TimeoutError} (default: wait forever). A
   * number >= 0; `Infinity`, or anything from about 100 years up, waits forever; `NaN`, a
   * negative number or a non-number is an {@link InvalidArgumentError}.
   */
  timeoutMs?: number;
  /** Give up when this signal aborts; the send rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Called when a subscription finds it was lapped under policy `overwrite`: `count` messages
 * were lost since the last call (or since it joined), `totalLost` since it joined. It runs
 * before the values of the batch in which the gap was found are delivered.
 *
 * @example
 * ```ts
 * const onLost: LostCallback = (count, totalLost) => console.warn(`lost ${count} (${totalLost} in all)`);
 * ```
 */
export type LostCallback = (count: number, totalLost: number) => void;

/**
 * Options of {@link Channel.messages} (and, with `signal`, {@link Channel.iterate}).
 *
 * @example
 * ```ts
 * ch.messages({ wait: 'spin', onLost: (n) => metrics.lost.inc(n) }).subscribe(handle);
 * ```
 */
export interface SubscribeOptions {
  /** How this subscription waits for messages (default: the channel's `wait`, else `adaptive`). */
  wait?: WaitStrategy;
  /**
   * Told how many messages this subscription lost to being lapped (policy `overwrite` only;
   * other policies never lose messages). An exception it throws ends the stream with that error.
   */
  onLost?: LostCallback;
}

/**
 * Options of {@link Channel.iterate}.
 *
 * @example
 * ```ts
 * for await (const v of ch.iterate({ signal: AbortSignal.timeout(10_000) })) console.log(v);
 * ```
 */
export interface IterateOptions extends SubscribeOptions {
  /** Ends the iteration: a waiting `next()` rejects with `signal.reason`; the slot is released. */
  signal?: AbortSignal;
}

/**
 * Options of {@link Channel.receiveSync}.
 *
 * @example
 * ```ts
 * const m = ch.receiveSync(1000, { wait: 'spin', onLost: (n) => console.warn(`lost ${n}`) });
 * ```
 */
export interface ReceiveOptions {
  /**
   * How this call waits (default: the channel's `wait`, else `adaptive`). `spin` keeps the
   * calling thread busy until a message comes or the timeout passes.
   */
  wait?: WaitStrategy;
  /**
   * Told how many messages the channel's `receiveSync` subscription lost to being lapped
   * during this call (policy `overwrite` only), before the call returns.
   */
  onLost?: LostCallback;
}

/** Most messages decoded per native call. */
const BATCH_COUNT = 1024;
/** Native drains per event-loop turn before yielding with `setImmediate`. */
const BATCHES_PER_TURN = 16;
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

/**
 * A channel: publish values, and subscribe to them as an RxJS Observable or an async
 * iterator. Create one with {@link open}. One `Channel` may publish and subscribe at once.
 *
 * @example
 * ```ts
 * const ch = open<number>('numbers', { create: true });
 * const sub = ch.messages().subscribe((n) => console.log(n));
 * ch.publish(1);
 * // later
 * sub.unsubscribe();
 * ch.close();
 * ```
 */
export class Channel<T = unknown> {
  /** The channel's name. */
  readonly name: string;
  #native: NativeChannel | undefined;
  /** Names this handle's producer side in the native `publish` and `publishMany`. */
  readonly #handle: number;
  readonly #codec: Codec<T>;
  /** Decodes the message at `buffer[start, end)` of a batch (see `frameDecoder`). */
  readonly #decode: (buffer: Buffer, start: number, end: number) => T;
  readonly #maxMessageSize: number;
  readonly #capacity: number;
  /** Policy `overwrite`: subscriptions may be lapped and should count what they lost. */
  readonly #overwrite: boolean;
  readonly #wait: WaitStrategy | undefined;
  /** Completes each open stream (`messages()` subscription or iterator). */
  readonly #live = new Set<() => void>();
  /** Aborted by `close()` with a ClosedError: ends every waiting send at once. */
  readonly #closing = new AbortController();
  #sending: Promise<void> = Promise.resolve();
  #pendingSends = 0;
  #batch: Buffer | undefined;
  #ends: Uint32Array | undefined;
  #syncSub: NativeSyncSubscription | undefined;
  #syncHandle = -1;
  #syncBuf: Buffer | undefined;
  /** The wait strategy the `receiveSync` subscription was last given. */
  #syncWait: WaitStrategy | undefined;
  /** Messages the `receiveSync` subscription had lost as of the last call. */
  #syncLost = 0;

  /** @internal use {@link open} */
  constructor(
    name: string,
    nativeChannel: NativeChannel,
    codec: Codec<T>,
    wait: WaitStrategy | undefined = undefined,
  ) {
    this.name = name;
    this.#native = nativeChannel;
    this.#handle = nativeChannel.handle();
    this.#codec = codec;
    const decode = frameDecoder(codec);
    this.#decode = (buffer, start, end) => {
      try {
        return decode(buffer, start, end);
      } catch (e) {
        throw makeError(
          'CorruptSegment',
          `channel ${JSON.stringify(name)}: a ${end - start}-byte message this codec cannot decode (the publisher used another codec, or a process wrote garbage): ${e instanceof Error ? e.message : String(e)}`,
          e,
        );
      }
    };
    this.#wait = wait;
    const info = nativeChannel.info();
    this.#maxMessageSize = info.maxMessageSize;
    this.#capacity = info.capacity;
    this.#overwrite = info.policy === 'overwrite';
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
    if (bytes.byteLength === 0 && isDetached(bytes)) {
      throw makeError(
        'InvalidArgument',
        'the message is a view of a detached (transferred) ArrayBuffer: its bytes are gone',
      );
    }
    return bytes;
  }

  #open(): NativeChannel {
    if (this.#native === undefined)
      throw new ClosedError(`channel ${JSON.stringify(this.name)} is closed`);
    return this.#native;
  }

  /**
   * Whether {@link close} was called.
   *
   * @example
   * ```ts
   * if (!ch.closed) ch.publish(x);
   * ```
   */
  get closed(): boolean {
    return this.#native === undefined;
  }

  /**
   * Publishes `value` now if the ring has room. Never blocks the event loop.
   *
   * Returns `false` when the ring is full under policy `block` (or while earlier
   * {@link send} calls still wait, so that order is kept); throws {@link RingFullError} under
   * policy `fail`, {@link MessageTooLargeError} if the encoded value is larger than
   * `maxMessageSize`, {@link ClosedError} after {@link close}.
   *
   * @example
   * ```ts
   * if (!ch.publish({ sym: 'ACME', px: 101.5 })) await ch.send({ sym: 'ACME', px: 101.5 });
   * ```
   */
  publish(value: T): boolean {
    this.#open();
    if (this.#pendingSends > 0) return false;
    const bytes = this.#encode(value);
    return call(() => native.publish(this.#handle, asBuffer(bytes)));
  }

  /**
   * Publishes `values` in order, as many as the ring has room for now, with one native call
   * per ring-full of data (values are encoded back to back into one reused buffer, and
   * subscribers are woken once). Returns how many were published: publish the rest later,
   * e.g. with {@link send}. Never blocks the event loop. Throws like {@link publish}; the
   * error's {@link ShmringError.published} says how many values went in before it (the
   * values before the failing one are published first), so a retry does not duplicate them.
   *
   * @example
   * ```ts
   * let done = ch.publishMany(values);
   * for (const v of values.slice(done)) await ch.send(v);
   * ```
   */
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
        // A native call that failed part-way (policy `fail`: `RingFull`) published as many
        // messages as its message says (the wording of the engine's `try_publish_many`).
        if (e instanceof ShmringError) {
          const inCall = /\(after (\d+) messages of the batch were published\)$/.exec(e.message);
          e.published = published + Number(inCall?.[1] ?? 0);
        }
        throw e;
      }
      published += n;
      return n === batchCount;
    };
    try {
      for (const value of values) {
        let bytes: Uint8Array;
        try {
          bytes = this.#encode(value);
          // Refused here, not in the native call, so that the count of the values before
          // it is known; `publish` gives the error (and message) it would.
          if (bytes.length > this.#maxMessageSize) {
            if (count > 0 && !flush()) return published;
            call(() => native.publish(h, asBuffer(bytes)));
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
        if (used + bytes.length > batch.length) {
          // A ring-full per native call is as much as can go in at once anyway.
          if (used > 0 && used + bytes.length > this.#capacity && !flush()) return published;
          if (used + bytes.length > batch.length) {
            const bigger = Buffer.allocUnsafe(Math.max(2 * batch.length, used + bytes.length));
            batch.copy(bigger, 0, 0, used);
            batch = bigger;
          }
        }
        if (count === ends.length) {
          const more = new Uint32Array(2 * ends.length);
          more.set(ends);
          ends = more;
        }
        batch.set(bytes, used);
        used += bytes.length;
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

  /**
   * Publishes `value`, waiting (off the event loop) for room if the ring is full. Sends
   * resolve in call order. Rejects with {@link TimeoutError} after `timeoutMs`, with
   * `signal.reason` if `signal` aborts first, with {@link ClosedError} if the channel is
   * closed first; a send that gave up publishes nothing.
   *
   * @example
   * ```ts
   * for (const v of values) await ch.send(v, { signal: AbortSignal.timeout(5000) });
   * ```
   */
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
    const stop: AbortSignal[] =
      signal === undefined ? [this.#closing.signal] : [signal, this.#closing.signal];
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
            `no room in channel ${JSON.stringify(this.name)} within ${timeoutMs} ms`,
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

  /**
   * The stream of values published on this channel after you subscribe. Cold: each
   * subscription joins the channel as its own subscriber (a participant slot) and receives
   * every message from then on, in each producer's order; unsubscribing releases the slot.
   * Use `share()` for one slot feeding many observers. Errors (a value the codec cannot
   * decode, a damaged segment, a full participant table, a closed channel) go down the
   * error path and release the slot; {@link close} completes the stream.
   *
   * Waiting happens on a native thread that wakes JS once per burst; JS then drains the
   * ring in batches, so the event loop never blocks or spins. An idle subscription costs no
   * CPU (unless `wait` is `spin`), and a process with no open subscription can exit.
   *
   * Under policy `overwrite` a subscription that falls a ring behind is lapped: it skips to
   * the newest message, and `onLost` is told how many it lost. Every value it does deliver
   * is whole and in each producer's order.
   *
   * @example
   * ```ts
   * ch.messages().pipe(filter((q) => q.px > 100)).subscribe((q) => console.log(q));
   * telemetry.messages({ onLost: (n, total) => console.warn(`lost ${n}, ${total} in all`) });
   * ```
   */
  messages(options?: SubscribeOptions | null): Observable<T> {
    // A bad option is the stream's error, like every other reason it cannot start.
    let bad: { error: unknown } | undefined;
    let o: SubscribeOptions = {};
    try {
      o = optionsOf<SubscribeOptions>('messages', options);
      checkSubscribeOptions('messages', o);
    } catch (error) {
      bad = { error };
    }
    const { wait = this.#wait, onLost } = o;
    const overwrite = this.#overwrite;
    return new Observable<T>((subscriber) => {
      if (bad !== undefined) {
        subscriber.error(bad.error);
        return;
      }
      let nat: NativeChannel;
      try {
        nat = this.#open();
      } catch (e) {
        subscriber.error(e);
        return;
      }
      // Unsubscribed before we got here (e.g. a closed subscriber passed in): take no slot.
      if (subscriber.closed) return;
      const buf = frameBuffer(this.#maxMessageSize);
      const frames = new FrameWalker(buf);
      const decode = this.#decode;
      let done = false;
      let sub: NativeSubscription | undefined;
      let h = -1; // its handle, for the native drain
      let immediate: NodeJS.Immediate | undefined;
      let lost = 0;
      const drain = (): void => {
        immediate = undefined;
        if (done || sub === undefined) return;
        try {
          for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
            const bytes = native.drain(h, buf, BATCH_COUNT);
            if (bytes === 0) {
              sub.rearm();
              return;
            }
            if (overwrite) {
              lost = reportLost(sub.lost(), lost, onLost);
              if (done) return;
            }
            frames.reset(bytes);
            while (frames.next()) {
              subscriber.next(decode(buf, frames.start, frames.end));
              if (done) return;
            }
          }
          // More may be waiting: let other work run first, then go on.
          immediate = setImmediate(drain);
        } catch (e) {
          subscriber.error(fromNative(e));
        }
      };
      const teardown = (): void => {
        if (done) return;
        done = true;
        if (immediate !== undefined) clearImmediate(immediate);
        sub?.close();
        this.#live.delete(complete);
      };
      const complete = (): void => {
        teardown();
        subscriber.complete();
      };
      try {
        sub = call(() => nat.subscribe(drain, wait));
        h = sub.handle();
      } catch (e) {
        subscriber.error(e);
        return;
      }
      this.#live.add(complete);
      return teardown;
    });
  }

  /**
   * The same stream as {@link messages}, as an async iterator: it joins the channel (takes a
   * participant slot) on the first `next()` and reads in batches as you pull, so a slow
   * loop holds publishers back (policy `block`) instead of buffering without bound (under
   * policy `overwrite` it is lapped instead, and `onLost` says how many it lost).
   * Breaking out of the loop, `return()`, an aborted `signal` or {@link close} releases the
   * slot. `for await (const v of ch)` is `for await (const v of ch.iterate())`.
   *
   * @example
   * ```ts
   * for await (const q of ch.iterate({ signal: AbortSignal.timeout(60_000) })) {
   *   if (q.px > 105) break; // releases the slot
   * }
   * ```
   */
  iterate(options?: IterateOptions | null): AsyncIterableIterator<T> {
    // A bad option is the first `next()`'s error, like every other reason it cannot start.
    let bad: { error: unknown } | undefined;
    let o: IterateOptions = {};
    try {
      o = optionsOf<IterateOptions>('iterate', options);
      checkSubscribeOptions('iterate', o);
      checkSignal('iterate', o.signal);
    } catch (error) {
      bad = { error };
      o = {};
    }
    const { signal, wait = this.#wait, onLost } = o;
    const overwrite = this.#overwrite;
    let lost = 0;
    const decode = this.#decode;
    let frames: FrameWalker | undefined;
    let sub: NativeSubscription | undefined;
    let h = -1; // its handle, for the native drain
    let started = false;
    let done = false;
    let failure: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    let chain: Promise<unknown> = Promise.resolve();

    const finish = (): void => {
      if (done) return;
      done = true;
      frames?.reset(0);
      sub?.close();
      sub = undefined;
      this.#live.delete(finish);
      signal?.removeEventListener('abort', onAbort);
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onAbort = (): void => {
      if (done) return;
      failure = { error: signal?.reason };
      finish();
    };
    const start = (): void => {
      started = true;
      try {
        if (bad !== undefined) throw bad.error;
        signal?.throwIfAborted();
        const nat = this.#open();
        frames = new FrameWalker(frameBuffer(this.#maxMessageSize));
        sub = call(() =>
          nat.subscribe(() => {
            const w = wake;
            wake = undefined;
            w?.();
          }, wait),
        );
        h = sub.handle();
        this.#live.add(finish);
        signal?.addEventListener('abort', onAbort, { once: true });
      } catch (e) {
        failure = { error: fromNative(e) };
        finish();
      }
    };
    const step = async (): Promise<IteratorResult<T>> => {
      for (;;) {
        if (frames?.next()) {
          return { value: decode(frames.buffer, frames.start, frames.end), done: false };
        }
        if (failure !== undefined) {
          const { error } = failure;
          failure = undefined;
          throw error;
        }
        if (done || sub === undefined || frames === undefined) {
          return { value: undefined, done: true };
        }
        const buf = frames.buffer;
        const bytes = call(() => native.drain(h, buf, BATCH_COUNT));
        frames.reset(bytes);
        if (bytes > 0) {
          if (overwrite) lost = reportLost(sub.lost(), lost, onLost);
          continue;
        }
        sub.rearm();
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    };
    const iterator: AsyncIterableIterator<T> = {
      next: () => {
        // Join now, synchronously: what is published after this call is seen.
        if (!started) start();
        const result = chain.then(step).catch((e: unknown) => {
          finish();
          throw fromNative(e);
        });
        chain = result.catch(() => {});
        return result;
      },
      return: async () => {
        started = true;
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /**
   * `for await (const v of ch)`: the same stream as {@link messages}; see {@link iterate}.
   *
   * @example
   * ```ts
   * for await (const v of ch) {
   *   console.log(v);
   *   if (v === 'stop') break;
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this.iterate();
  }

  /**
   * Receives the next message synchronously, **blocking the calling thread** for up to
   * `timeoutMs` milliseconds (forever if omitted, `Infinity`, or from about 100 years up; `NaN`
   * or a negative number is an {@link InvalidArgumentError}): meant for latency-critical code in a
   * worker thread, never for the main thread of a server. Returns `{ value }`, or
   * `undefined` if nothing came in time (like `receiveMessageOnPort`).
   *
   * The first call joins the channel (takes a participant slot) and receives what is
   * published from then on; call `receiveSync(0)` early to join before publishers start.
   * {@link close} releases the slot. `options.wait` chooses how this call waits (`spin`
   * answers fastest and keeps the thread busy); under policy `overwrite`, `options.onLost`
   * is told what the subscription lost by being lapped.
   *
   * How a wait ends besides a message or the timeout: an {@link unlink} of the channel
   * (then it throws {@link ClosedError} after the messages left), or the end of the thread.
   * Even without a timeout it waits in slices of at most 50 ms and checks in between whether
   * Node is ending the calling thread, so `worker.terminate()` of a worker blocked here,
   * and `process.exit()` (which terminates every worker), end it within one slice: it then
   * throws a {@link ClosedError} that no JS sees (the thread runs no more JS). On the main
   * thread nothing else can end it (but a signal).
   *
   * @example
   * ```ts
   * // in a worker thread
   * ch.receiveSync(0); // join now
   * for (;;) {
   *   const m = ch.receiveSync(1000, { wait: 'spin' });
   *   if (m !== undefined) handle(m.value);
   * }
   * ```
   */
  receiveSync(timeoutMs?: number, options?: ReceiveOptions | null): { value: T } | undefined {
    const nat = this.#open();
    checkTimeout('receiveSync timeoutMs', timeoutMs);
    const o = optionsOf<ReceiveOptions>('receiveSync', options);
    checkSubscribeOptions('receiveSync', o);
    const wait = o.wait ?? this.#wait ?? 'adaptive';
    if (this.#syncSub === undefined) {
      this.#syncSub = call(() => nat.subscribeSync(wait));
      this.#syncHandle = this.#syncSub.handle();
      this.#syncWait = wait;
    }
    const sub = this.#syncSub;
    if (wait !== this.#syncWait) {
      call(() => sub.setWait(wait));
      this.#syncWait = wait;
    }
    if (this.#syncBuf === undefined) {
      // One frame; zero-filled and never from the shared pool (see `frameBuffer`).
      this.#syncBuf = Buffer.alloc(frameBytes(this.#maxMessageSize));
    }
    const buf = this.#syncBuf;
    const len = call(() => native.recv(this.#syncHandle, buf, timeoutMs));
    if (this.#overwrite) this.#syncLost = reportLost(sub.lost(), this.#syncLost, o.onLost);
    if (len < 0) return undefined;
    return { value: this.#decode(buf, FRAME_PREFIX, frameBytes(len)) };
  }

  /**
   * The channel's settings.
   *
   * @example
   * ```ts
   * console.log(ch.info().maxMessageSize);
   * ```
   */
  info(): ChannelInfo {
    const nat = this.#open();
    return call(() => nat.info());
  }

  /**
   * Settings plus the tail, bytes used, and every participant (pid, role, cursor, lag,
   * counters, liveness).
   *
   * @example
   * ```ts
   * const lagging = ch.stats().participants.filter((p) => p.lag > 0).length;
   * ```
   */
  stats(): ChannelStats {
    const nat = this.#open();
    return call(() => {
      const { participants, tail, bytesUsed, creatorAlive, stale } = summaryOf(nat.summary());
      return { ...nat.info(), tail, bytesUsed, creatorAlive, stale, participants };
    });
  }

  /**
   * Closes this handle: completes its open `messages()` streams and iterators, rejects
   * waiting sends with {@link ClosedError}, and releases its participant slots. The channel
   * itself stays (see {@link unlink}). Idempotent.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => ch.close());
   * ```
   */
  close(): void {
    const nat = this.#native;
    if (nat === undefined) return;
    for (const complete of [...this.#live]) complete();
    this.#native = undefined;
    this.#closing.abort(new ClosedError(`channel ${JSON.stringify(this.name)} is closed`));
    this.#syncSub?.close();
    this.#syncSub = undefined;
    nat.close();
  }

  /**
   * Removes the channel's name (see {@link unlink}): processes still attached get
   * {@link ClosedError}, this handle included.
   *
   * @example
   * ```ts
   * ch.close();
   * ch.unlink();
   * ```
   */
  unlink(): void {
    unlink(this.name);
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

/** Calls `onLost` if a subscription's lost count grew past `seen`; returns the count. */
function reportLost(total: number, seen: number, onLost: LostCallback | undefined): number {
  if (total > seen) onLost?.(total - seen, total);
  return total;
}

function participantOf(p: NativeParticipant, tail: number): Participant {
  return {
    ...p,
    role: p.role as Participant['role'],
    lag: p.role === 'subscriber' ? Math.max(0, tail - p.cursor) : 0,
  };
}

function summaryOf(s: NativeSummary): ChannelSummary {
  return { ...s, participants: s.participants.map((p) => participantOf(p, s.tail)) };
}

/**
 * Opens (attaches to, or with `create` creates) the channel `name`.
 *
 * Attaching adopts the channel's own settings; options you state are checked against them
 * and a conflict throws {@link IncompatibleSegmentError} naming both values.
 *
 * @example
 * ```ts
 * const ch = open<{ sym: string; px: number }>('quotes', { create: true });
 * ch.publish({ sym: 'ACME', px: 101.5 });
 * ```
 */
export function open<T = unknown>(name: string, options?: OpenOptions<T> | null): Channel<T> {
  checkName(name);
  const o = optionsOf<OpenOptions<T>>('open', options);
  checkOpenOptions(o);
  const { codec, wait, ...rest } = o;
  const resolved = resolveCodec<T>(codec);
  const nat = call(() => native.NativeChannel.open(name, rest));
  return new Channel<T>(name, nat, resolved, wait);
}

/**
 * Removes the channel `name`. Throws {@link NotFoundError} if there is none. Processes
 * still attached notice: their `publish` throws {@link ClosedError}, and their subscriptions
 * get what is left and then end with a {@link ClosedError}. The next `open` with `create`
 * makes a new channel under the name.
 *
 * @example
 * ```ts
 * unlink('quotes');
 * ```
 */
export function unlink(name: string): void {
  checkName(name);
  call(() => native.unlink(name));
}

/**
 * Every channel on this host (`/dev/shm/shmring.*`), sorted by name, with its settings,
 * bytes used, participants and whether it is stale (creator and all participants dead).
 * Reading a channel takes no participant slot. A file that is not a usable segment is
 * listed with its `error`.
 *
 * @example
 * ```ts
 * for (const { name, summary } of list()) {
 *   if (summary?.stale) unlink(name);
 * }
 * ```
 */
export function list(): ChannelListing[] {
  return call(() => native.list()).map((l) =>
    l.summary != null
      ? { name: l.name, summary: summaryOf(l.summary) }
      : {
          name: l.name,
          error: makeError(
            (l.errorCode ?? 'Io') as Parameters<typeof makeError>[0],
            l.errorMessage ?? 'unreadable',
          ),
        },
  );
}

/**
 * Removes the channel `name` only if it is stale (its creator and every participant are
 * dead); returns whether it did. What `shmring rm --stale` does for each channel.
 *
 * @example
 * ```ts
 * for (const { name } of list()) unlinkIfStale(name);
 * ```
 */
export function unlinkIfStale(name: string): boolean {
  checkName(name);
  return call(() => native.unlinkIfStale(name));
}
