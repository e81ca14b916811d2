import { Observable } from 'rxjs';
import { type Codec, msgpack } from './codec.js';
import { ClosedError, call, fromNative, makeError, TimeoutError } from './errors.js';
import { type NativeChannel, type NativeSubscription, native } from './native.js';

/** How messages are delivered: fan-out to every subscriber (`topic`). */
export type Kind = 'topic';
/** How producers coordinate: a CAS on the shared tail, no lock ever held. */
export type SyncMode = 'lockfree';
/**
 * What a full ring does to a publisher: `block` (`publish` returns false, `send` waits for
 * room) or `fail` (`publish` throws {@link RingFullError}).
 */
export type Policy = 'block' | 'fail';

/** Options of {@link open}. */
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
  /** How values are encoded (default msgpack). */
  codec?: Codec<T>;
}

/** The settings of an open channel, as stored in its header. */
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

/** One producer or subscriber attached to a channel. */
export interface Participant {
  slot: number;
  role: 'producer' | 'subscriber' | 'joining';
  pid: number;
  alive: boolean;
  /** A subscriber's next position to read (bytes). */
  cursor: number;
  /** Messages published (producer) or received (subscriber). */
  messages: number;
  lost: number;
  heartbeatMs: number;
}

/** A snapshot of a channel: its settings and participants. */
export interface ChannelStats extends ChannelInfo {
  participants: Participant[];
}

/** Options of {@link Channel.send}. */
export interface SendOptions {
  /** Give up after this many milliseconds with {@link TimeoutError} (default: wait forever). */
  timeoutMs?: number;
}

/** Most messages decoded per native call. */
const BATCH_COUNT = 1024;
/** Native drains per event-loop turn before yielding with `setImmediate`. */
const BATCHES_PER_TURN = 16;
/** A waiting `send` re-checks `close()` this often. */
const SEND_SLICE_MS = 100;

/**
 * A channel: publish values, and subscribe to them as an RxJS Observable. Create one with
 * {@link open}. One `Channel` may publish and subscribe at the same time.
 */
export class Channel<T = unknown> {
  /** The channel's name. */
  readonly name: string;
  #native: NativeChannel | undefined;
  readonly #codec: Codec<T>;
  readonly #maxMessageSize: number;
  readonly #live = new Set<() => void>();
  #sending: Promise<void> = Promise.resolve();
  #pendingSends = 0;

  /** @internal use {@link open} */
  constructor(name: string, nativeChannel: NativeChannel, codec: Codec<T>) {
    this.name = name;
    this.#native = nativeChannel;
    this.#codec = codec;
    this.#maxMessageSize = nativeChannel.info().maxMessageSize;
  }

  #open(): NativeChannel {
    if (this.#native === undefined)
      throw new ClosedError(`channel ${JSON.stringify(this.name)} is closed`);
    return this.#native;
  }

  /** Whether {@link close} was called. */
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
    const nat = this.#open();
    if (this.#pendingSends > 0) return false;
    const bytes = this.#codec.encode(value);
    return call(() => nat.publish(asBuffer(bytes)));
  }

  /**
   * Publishes `value`, waiting (off the event loop) for room if the ring is full. Sends
   * resolve in call order. Rejects with {@link TimeoutError} after `timeoutMs`, with
   * {@link ClosedError} if the channel is closed first.
   *
   * @example
   * ```ts
   * for (const v of values) await ch.send(v);
   * ```
   */
  send(value: T, options: SendOptions = {}): Promise<void> {
    let bytes: Buffer;
    try {
      this.#open();
      // Copied: the codec may reuse its buffer before this send gets its turn.
      bytes = Buffer.from(this.#codec.encode(value));
      if (bytes.length > this.#maxMessageSize) {
        // Same error (and message) publish would give, without waiting for a turn.
        call(() => this.#open().publish(bytes));
      }
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    this.#pendingSends++;
    const run = this.#sending.then(async () => {
      for (;;) {
        const nat = this.#open();
        if (call(() => nat.publish(bytes))) return;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new TimeoutError(
            `no room in channel ${JSON.stringify(this.name)} within ${options.timeoutMs} ms`,
          );
        }
        await nat.waitForSpace(bytes.length, Math.min(left, SEND_SLICE_MS));
      }
    });
    const done = run.finally(() => {
      this.#pendingSends--;
    });
    // The chain goes on whether this send succeeded or not.
    this.#sending = done.catch(() => {});
    return done;
  }

  /**
   * The stream of values published on this channel after you subscribe. Cold: each
   * subscription joins the channel as its own subscriber (a participant slot) and receives
   * every message from then on, in each producer's order; unsubscribing releases the slot.
   *
   * Waiting happens on a native thread that wakes JS once per burst; JS then drains the
   * ring in batches, so the event loop never blocks or spins. An idle subscription costs no
   * CPU, and a process with no open subscription can exit.
   *
   * @example
   * ```ts
   * ch.messages().pipe(filter((q) => q.px > 100)).subscribe((q) => console.log(q));
   * ```
   */
  messages(): Observable<T> {
    return new Observable<T>((subscriber) => {
      let nat: NativeChannel;
      try {
        nat = this.#open();
      } catch (e) {
        subscriber.error(e);
        return;
      }
      const buf = Buffer.allocUnsafe(Math.max(256 * 1024, this.#maxMessageSize + 4));
      const codec = this.#codec;
      let done = false;
      let sub: NativeSubscription | undefined;
      let immediate: NodeJS.Immediate | undefined;
      const drain = (): void => {
        immediate = undefined;
        if (done || sub === undefined) return;
        try {
          for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
            const bytes = sub.drain(buf, BATCH_COUNT);
            if (bytes === 0) {
              sub.rearm();
              return;
            }
            let at = 0;
            while (at < bytes) {
              const len = buf.readUInt32LE(at);
              const value = codec.decode(buf.subarray(at + 4, at + 4 + len));
              at += 4 + len;
              subscriber.next(value);
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
        sub = call(() => nat.subscribe(drain));
      } catch (e) {
        subscriber.error(e);
        return;
      }
      this.#live.add(complete);
      return teardown;
    });
  }

  /** The channel's settings. */
  info(): ChannelInfo {
    const nat = this.#open();
    return call(() => nat.info());
  }

  /** Settings plus every participant (pid, role, cursor, counters, liveness). */
  stats(): ChannelStats {
    const nat = this.#open();
    return call(() => ({
      ...nat.info(),
      participants: nat.participants() as Participant[],
    }));
  }

  /**
   * Closes this handle: completes its open `messages()` streams, rejects waiting sends with
   * {@link ClosedError}, and releases its participant slots. The channel itself stays (see
   * {@link unlink}). Idempotent.
   */
  close(): void {
    const nat = this.#native;
    if (nat === undefined) return;
    for (const complete of [...this.#live]) complete();
    this.#native = undefined;
    nat.close();
  }

  /** Removes the channel's name; processes still attached keep working on the old segment. */
  unlink(): void {
    unlink(this.name);
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
export function open<T = unknown>(name: string, options: OpenOptions<T> = {}): Channel<T> {
  const { codec = msgpack<T>(), ...rest } = options;
  if (typeof name !== 'string') {
    throw makeError('InvalidName', `channel name must be a string, not ${typeof name}`);
  }
  const nat = call(() => native.NativeChannel.open(name, rest));
  return new Channel<T>(name, nat, codec);
}

/** Removes the channel `name`. Throws {@link NotFoundError} if there is none. */
export function unlink(name: string): void {
  call(() => native.unlink(name));
}
