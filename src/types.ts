/**
 * The public types of channels: the option enums, the options of `open` and of each call,
 * and what `info`, `stats` and `list` report. Types only: no code.
 */
import type { Codec, CodecName } from './codec.js';
import type { ShmringError } from './errors.js';

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
 * What a queue promises about each message (stored in the channel's header):
 *
 * - `at-most-once` (the default): a message is removed from the queue when a consumer
 *   receives it; if that consumer dies before handling it, it is lost.
 * - `at-least-once` (queues only): a consumer's deliveries stay its own until it
 *   acknowledges them; a consumer that dies (or calls `nack`, or with
 *   {@link OpenOptions.ackTimeoutMs}, sits on them too long) gives them back, and another
 *   consumer receives them again, marked `redelivered`. Producers never overwrite a record
 *   that is not acknowledged. See {@link Channel.records}.
 *
 * @example
 * ```ts
 * const jobs = open('jobs', { create: true, kind: 'queue', delivery: 'at-least-once' });
 * ```
 */
export type Delivery = 'at-most-once' | 'at-least-once';

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
 * When a handle forces what it publishes out to the channel's file (the engine's `Flush`);
 * it matters for a channel in a directory on a disk filesystem (see {@link OpenOptions.dir}):
 *
 * - `'os'` (the default): never forced; the kernel writes dirty pages back on its own
 *   (on Linux within about 30 seconds).
 * - `'publish'`: each `publish`/`publishMany`/`send` call forces the records it wrote (then
 *   the header word that makes them reachable) to the file (`msync(MS_SYNC)`) before it
 *   returns. The slowest and safest.
 * - a number of milliseconds (1 to 3,600,000): a native flusher thread forces the whole
 *   file out that often while the channel is open; it stops when the handle is closed.
 *
 * Whatever a producer committed survives the crash of any process in any case; only what
 * was written back survives a power loss. Per handle: not stored in the channel. On
 * `/dev/shm` (tmpfs) every setting is accepted and costs next to nothing.
 *
 * @example
 * ```ts
 * const ch = open('orders', { create: true, dir: '/var/lib/app/channels', flush: 10 });
 * ```
 */
export type Flush = 'os' | 'publish' | number;

/**
 * The options of {@link list}, {@link unlink} and {@link unlinkIfStale}: which directory.
 *
 * @example
 * ```ts
 * for (const { name } of list({ dir: '/var/lib/app/channels' })) console.log(name);
 * ```
 */
export interface CatalogOptions {
  /**
   * The directory of the channels: an absolute path (default the `SHMRING_DIR` environment
   * variable when set, else `/dev/shm`). See {@link OpenOptions.dir}.
   */
  dir?: string;
}

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
  /**
   * Queues: `at-most-once` (the default) or `at-least-once` ({@link Delivery}). Checked
   * against an existing channel if given; `at-least-once` on a topic is an
   * {@link InvalidArgumentError}.
   */
  delivery?: Delivery;
  /**
   * At-least-once queues: a live consumer's deliveries not acknowledged this many
   * milliseconds after it received them (or after its last acknowledgement) go back to the
   * queue for another consumer (default 0: never; a dead consumer's go back within about
   * 100 ms in any case). A whole number up to 4,294,967,295; stored in the header and checked
   * against an existing channel if given. Needs `delivery: 'at-least-once'`.
   */
  ackTimeoutMs?: number;
  /** Permission bits of a created segment (default `0o600`). */
  mode?: number;
  /**
   * Replace a dead channel under this name with a new one (implies `create`): one that is
   * stale (its creator and every participant are dead, and no process has it open) or that
   * never became ready (its creator died creating it). A channel some live process uses is
   * never replaced: it is attached as usual, or, if it cannot be (with `exclusive`, or a
   * damaged one), `open` throws an error naming the processes that hold it. Concurrent
   * recoverers all end up on the same new channel. A stale channel in a directory on a disk
   * filesystem (a durable one, see {@link OpenOptions.dir}) is attached with its messages,
   * not replaced.
   */
  recover?: boolean;
  /**
   * Use a channel whose segment belongs to another user. Off by default: such a channel is
   * refused with {@link PermissionDeniedError}, since its owner could rewrite it under us.
   */
  allowForeignOwner?: boolean;
  /**
   * Make this handle's producer side the channel's **exclusive producer**, taken at `open`:
   * while this handle is open, no other producer may join, in this process or any other
   * (their `publish` throws {@link BusyError}), and this one claims ring space with a plain
   * store instead of a compare-and-swap. `open` throws {@link BusyError} if another live
   * producer exists (a handle that published and is still open), and
   * {@link InvalidArgumentError} in semaphore mode. If this process dies, the next producer may
   * join at once. Default `false`.
   *
   * @example
   * ```ts
   * const feed = open('ticks', { create: true, exclusiveProducer: true });
   * feed.publish({ px: 101.5 }); // the channel's only producer until feed.close()
   * ```
   */
  exclusiveProducer?: boolean;
  /**
   * The directory of the channel's file, `<dir>/shmring.<name>`: an absolute path of an
   * existing directory (default the `SHMRING_DIR` environment variable when set, else
   * `/dev/shm`, POSIX shared memory). A directory on a disk filesystem makes the channel
   * **durable**: its messages survive every process exiting and a reboot (see
   * {@link Flush} for what survives a power loss). A relative path or one that is not a
   * directory throws {@link InvalidArgumentError}, a missing one {@link NotFoundError}, one
   * this process may not write to (when creating) {@link PermissionDeniedError}, each
   * naming the path. With `recover`, a durable channel whose processes have all exited is
   * kept (attached), not replaced.
   *
   * @example
   * ```ts
   * const ch = open('orders', { create: true, kind: 'queue', dir: '/var/lib/app/channels' });
   * ```
   */
  dir?: string;
  /** When this handle forces what it publishes out to the file (default `'os'`): {@link Flush}. */
  flush?: Flush;
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
  /** The directory of the channel's file (`<dir>/shmring.<name>`), as resolved at `open`. */
  dir: string;
  /** `at-most-once` or `at-least-once` ({@link Delivery}; topics: `at-most-once`). */
  delivery: string;
  /** At-least-once queues: the ack timeout in milliseconds (0: none). */
  ackTimeoutMs: number;
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
  /** A named subscriber's name (`messages({ durable })`). */
  name?: string;
  /**
   * A named subscriber that is away (closed or dead): its cursor still holds producers back
   * under `block`, and its `lag` grows, until it resumes or `removeSubscriber` drops it.
   */
  away?: boolean;
  /** An at-least-once queue consumer's deliveries not acknowledged yet (else 0). */
  inFlight: number;
  /** Messages an at-least-once queue consumer received that had been delivered before. */
  redelivered: number;
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
  /** `at-most-once` or `at-least-once` ({@link Delivery}). */
  delivery: string;
  /** At-least-once queues: the ack timeout in milliseconds (0: none). */
  ackTimeoutMs: number;
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
 * One `shmring.*` segment found in a directory (default `/dev/shm`): its summary, or why it could not be read
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
   * Where a topic subscription starts: `'latest'` (the default: what is published from now
   * on), `'earliest'` (the oldest whole message the ring still holds), or a position (the
   * first message at or after it: `last.position + 1` resumes right after a record from
   * {@link Channel.records}). A named subscription that resumes ignores it. Messages
   * overwritten while a replay reads them are skipped and reported through `onLost`.
   */
  from?: 'latest' | 'earliest' | number;
  /**
   * Join as the named subscriber of this name (`[A-Za-z0-9._-]{1,32}`, topics only): its
   * position lives in the channel and survives this process; the next subscription of that
   * name resumes right after the last message it consumed. A message is consumed once its
   * `next` handler returned (`messages`, `records`), or once the iterator or `receiveSync`
   * is called again; one in hand when the process dies is delivered again (at-least-once).
   * While away, under policy `block` the name holds producers back as a live subscriber
   * does; {@link Channel.removeSubscriber} drops it. A second subscription of a name that is
   * attached fails with `BusyError`.
   */
  durable?: string;
  /**
   * Told how many messages this subscription lost to being lapped (policy `overwrite`, or a
   * replay that producers wrapped over; a live subscription under `block` or `fail` never
   * loses messages). An exception it throws ends the stream with that error.
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
   * Where the channel's `receiveSync` subscription starts, as {@link SubscribeOptions.from}.
   * Read by the call that makes the subscription (the first); later calls may repeat it.
   */
  from?: 'latest' | 'earliest' | number;
  /**
   * The `receiveSync` subscription joins as this named subscriber (see
   * {@link SubscribeOptions.durable}); a message counts as consumed at the next call. Read by
   * the first call; a later call naming another subscriber is an `InvalidArgumentError`.
   */
  durable?: string;
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

/**
 * A message with its position, as {@link Channel.records} emits it and
 * {@link Channel.receiveSync} returns it; on an at-least-once queue, a delivery to settle
 * with {@link ChannelRecord.ack} or {@link ChannelRecord.nack}.
 *
 * @example
 * ```ts
 * let last = -1;
 * ch.records().subscribe((r) => { last = r.position; });
 * // later: resume right after it
 * ch.records({ from: last + 1 });
 * // an at-least-once queue
 * jobs.records().subscribe(async (job) => {
 *   try { await run(job.value); job.ack(); } catch { job.nack(); }
 * });
 * ```
 */
export interface ChannelRecord<T> {
  /** The decoded message. */
  readonly value: T;
  /**
   * The record's position in the channel's stream (bytes since it was created): unique for
   * the channel's life and increasing; exact up to 2^53 (8 PiB of stream).
   */
  readonly position: number;
  /**
   * At-least-once queues: this message was delivered before (to a consumer that died,
   * called `nack`, closed before acknowledging it, or sat on it past `ackTimeoutMs`).
   * Always false elsewhere.
   */
  readonly redelivered: boolean;
  /** How many times the message has been delivered, this time included (1 elsewhere). */
  readonly deliveries: number;
  /**
   * At-least-once queues: acknowledges the delivery. It is not delivered again once every
   * delivery before it in its batch is acknowledged too: the engine keeps one position per
   * batch, so one given back before it (a `nack`, or its consumer dying or closing) takes
   * the acknowledged ones after it along, and they come again, marked. Returns
   * false if there was nothing to acknowledge: settled already, given back (the
   * subscription closed), taken over by another consumer after `ackTimeoutMs`, or not an
   * at-least-once queue.
   */
  ack(): boolean;
  /**
   * At-least-once queues: gives the delivery back to the queue at once, with this
   * subscription's unsettled deliveries after it: they are delivered again (to any
   * consumer, this one included), marked `redelivered`. Returns false like {@link ack}.
   */
  nack(): boolean;
}
