/**
 * The `Channel` class: a handle on one open channel. It owns the native handle and the
 * codec; publishing is delegated to a {@link Publisher} (./publish.ts), reading to
 * ./subscribe.ts. Opening, listing and removing channels are in ./catalog.ts.
 */
import type { Observable } from 'rxjs';
import { type Codec, frameDecoder } from './codec.js';
import { ClosedError, call, makeError } from './errors.js';
import { type NativeChannel, native } from './native.js';
import { Publisher } from './publish.js';
import { SyncReceiver } from './receive.js';
import { iterate, messages, records, type Source } from './subscribe.js';
import { summaryOf } from './summary.js';
import type {
  ChannelInfo,
  ChannelRecord,
  ChannelStats,
  IterateOptions,
  ReceiveOptions,
  SendOptions,
  SubscribeOptions,
  WaitStrategy,
} from './types.js';
import { invalid } from './validate.js';

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
  /** What subscriptions read the channel with. */
  readonly #source: Source<T>;
  /** Completes each open stream (`messages()` subscription or iterator). */
  readonly #live = new Set<() => void>();
  /** Aborted by `close()` with a ClosedError: ends every waiting send at once. */
  readonly #closing = new AbortController();
  readonly #publisher: Publisher<T>;
  readonly #receiver: SyncReceiver<T>;
  /** The directory of the channel's file, as resolved at open. */
  readonly #dir: string;

  /** @internal use {@link open} */
  constructor(
    name: string,
    nativeChannel: NativeChannel,
    codec: Codec<T>,
    wait: WaitStrategy | undefined = undefined,
  ) {
    this.name = name;
    this.#native = nativeChannel;
    const handle = nativeChannel.handle();
    const frame = frameDecoder(codec);
    const decode = (buffer: Buffer, start: number, end: number): T => {
      try {
        return frame(buffer, start, end);
      } catch (e) {
        throw makeError(
          'CorruptSegment',
          `channel ${JSON.stringify(name)}: a ${end - start}-byte message this codec cannot decode (the publisher used another codec, or a process wrote garbage): ${e instanceof Error ? e.message : String(e)}`,
          e,
        );
      }
    };
    const info = nativeChannel.info();
    this.#dir = info.dir;
    const open = (): NativeChannel => this.#open();
    this.#publisher = new Publisher(name, open, handle, codec, info, this.#closing.signal);
    this.#source = {
      open,
      decode,
      maxMessageSize: info.maxMessageSize,
      overwrite: info.policy === 'overwrite',
      acked: info.delivery === 'at-least-once',
      wait,
      live: this.#live,
    };
    this.#receiver = new SyncReceiver(this.#source);
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
    return this.#publisher.publish(value);
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
    return this.#publisher.publishMany(values);
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
    return this.#publisher.send(value, options);
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
   * `from` replays what the ring still holds (`'earliest'`, or from a position of
   * {@link records}); `durable` joins as a named subscriber that resumes where the last one
   * of that name stopped, across process restarts (see {@link SubscribeOptions}).
   *
   * On an at-least-once queue ({@link Delivery}) the stream takes one batch at a time and
   * acknowledges it once its handlers returned, on a timer after the turn: if an uncaught
   * exception was reported meanwhile (RxJS reports a handler's error that way), the batch is
   * given back instead, and so it is if the process dies of it. Ended by `take(n)` or
   * `firstValueFrom`, it acknowledges what it handed out and gives back the rest; its slot
   * goes a timer later (also when {@link close} ends it). Limits: a stream cannot tell
   * `take(n)`'s end from an operator's error, so the value an operator threw on counts as
   * handled unless the error goes unhandled (then it is an uncaught exception, and the batch
   * comes again); with RxJS's `config.onUnhandledError` set, a handler's error is not an
   * uncaught exception either; and an `async` handler has "returned" at its first `await`.
   * For work that must finish before it counts, use {@link records} and `ack()` when done.
   *
   * @example
   * ```ts
   * ch.messages().pipe(filter((q) => q.px > 100)).subscribe((q) => console.log(q));
   * telemetry.messages({ onLost: (n, total) => console.warn(`lost ${n}, ${total} in all`) });
   * orders.messages({ durable: 'billing' }).subscribe(bill); // resumes after a restart
   * ```
   */
  messages(options?: SubscribeOptions | null): Observable<T> {
    return messages(this.#source, options);
  }

  /**
   * The same stream as {@link messages}, each value with its position in the channel's
   * stream: `{ value, position }`. Positions are unique for the channel's life and
   * increasing, so `from: last.position + 1` resumes right after a record (as long as the
   * ring still holds what follows it).
   *
   * On an at-least-once queue each record is a delivery to settle with
   * {@link ChannelRecord.ack} or {@link ChannelRecord.nack}: the stream takes its next batch
   * once every record of the one before is settled, so **every record it emits must be
   * settled** (one dropped unsettled, by `filter` say, stalls this stream; `ackTimeoutMs`
   * hands it to another consumer, but this stream still waits for it). After a `nack` the
   * rest of the batch is not emitted (it went back to the queue with it). An ended stream
   * keeps its slot until the records it handed out are settled (or the channel is closed;
   * then they go back to the queue). Elsewhere records are `{ value, position }` with
   * nothing to settle.
   *
   * @example
   * ```ts
   * const seen = await firstValueFrom(ch.records({ from: 'earliest' }).pipe(take(10), toArray()));
   * ch.records({ from: seen[9].position + 1 }).subscribe((r) => console.log(r.value));
   * // an at-least-once queue: settle each record, also after an await
   * jobs.records().subscribe(async (job) => {
   *   try {
   *     await run(job.value);
   *     job.ack();
   *   } catch {
   *     job.nack(); // delivered again, to any consumer, marked redelivered
   *   }
   * });
   * ```
   */
  records(options?: SubscribeOptions | null): Observable<ChannelRecord<T>> {
    return records(this.#source, options);
  }

  /**
   * Removes the named subscriber `name` (see {@link SubscribeOptions.durable}): its position
   * stops holding producers back. Returns whether it existed; a {@link BusyError} if a
   * subscription of that name is attached.
   *
   * @example
   * ```ts
   * ch.removeSubscriber('billing'); // the billing service is gone for good
   * ```
   */
  removeSubscriber(name: string): boolean {
    if (typeof name !== 'string') {
      throw invalid(`removeSubscriber name must be a string, not ${typeof name}`);
    }
    const nat = this.#open();
    return call(() => nat.removeSubscriber(name));
  }

  /**
   * The same stream as {@link messages}, as an async iterator: it joins the channel (takes a
   * participant slot) on the first `next()` and reads in batches as you pull, so a slow
   * loop holds publishers back (policy `block`) instead of buffering without bound (under
   * policy `overwrite` it is lapped instead, and `onLost` says how many it lost).
   * Breaking out of the loop, `return()`, an aborted `signal` or {@link close} releases the
   * slot. `for await (const v of ch)` is `for await (const v of ch.iterate())`. With
   * `durable`, a value counts as consumed when the loop asks for the next one; the value a
   * loop breaks out at is delivered again to the next subscription of that name. On an
   * at-least-once queue a value is acknowledged when the loop asks for the next one; the one
   * it breaks out at (or throws in), and what was drained with it, go back to the queue.
   *
   * @example
   * ```ts
   * for await (const q of ch.iterate({ signal: AbortSignal.timeout(60_000) })) {
   *   if (q.px > 105) break; // releases the slot
   * }
   * ```
   */
  iterate(options?: IterateOptions | null): AsyncIterableIterator<T> {
    return iterate(this.#source, options);
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
   * worker thread, never for the main thread of a server. Returns `{ value, position }`, or
   * `undefined` if nothing came in time (like `receiveMessageOnPort`). On an at-least-once
   * queue it is a delivery ({@link ChannelRecord}: `redelivered`, `deliveries`, `ack()`,
   * `nack()`); the next call acknowledges it unless you settled it first. `options.from` and
   * `options.durable`, read by the first call, choose where it starts and join as a named
   * subscriber (a message counts as consumed at the next call).
   *
   * The first call joins the channel (takes a participant slot) and receives what is
   * published from then on; call `receiveSync(0)` early to join before publishers start.
   * Like every call, `receiveSync(0)` also takes the next message if one is there: on a
   * queue, where messages published before a consumer joined are there for it too, it
   * consumes one, so handle the value it returns.
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
  receiveSync(timeoutMs?: number, options?: ReceiveOptions | null): ChannelRecord<T> | undefined {
    return this.#receiver.receive(timeoutMs, options);
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
    this.#receiver.close();
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
    // `unlink(this.name, { dir })` of ./catalog.js, which imports this module; the directory
    // is the one this handle was opened in.
    call(() => native.unlink(this.name, this.#dir));
  }
}
