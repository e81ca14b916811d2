/**
 * The reading side of a channel: `messages()` (a cold Observable, woken by the native
 * waiter thread, drained in batches), `iterate()` (the same stream pulled as an async
 * iterator) and the `receiveSync` subscription (blocking, for worker threads). Each stream
 * or subscription is one participant slot. `Channel` delegates here; the public docs are on
 * its methods.
 * @internal
 */
import { Observable } from 'rxjs';
import { call, fromNative } from './errors.js';
import { FrameWalker, frameBuffer, frameBytes, positionAt, RECORD_FRAME_PREFIX } from './frame.js';
import {
  type NativeChannel,
  type NativeSubscribeOptions,
  type NativeSubscription,
  type NativeSyncSubscription,
  native,
} from './native.js';
import type {
  ChannelRecord,
  IterateOptions,
  LostCallback,
  ReceiveOptions,
  SubscribeOptions,
  WaitStrategy,
} from './types.js';
import {
  checkSignal,
  checkSubscribeOptions,
  checkTimeout,
  invalid,
  optionsOf,
} from './validate.js';

/** Most messages decoded per native call. */
const BATCH_COUNT = 1024;
/** Native drains per event-loop turn before yielding with `setImmediate`. */
const BATCHES_PER_TURN = 16;
/**
 * A named subscription's drain turn: one batch of this many. What a turn handled is
 * committed a timer later, so a smaller turn is less to deliver again after a kill.
 */
const DURABLE_BATCH_COUNT = 256;

/** What a channel's subscriptions need of it. */
export interface Source<T> {
  /** The native channel; throws a ClosedError once the channel is closed. */
  open(): NativeChannel;
  /** Decodes the message at `buffer[start, end)` of a batch (see `frameDecoder`). */
  readonly decode: (buffer: Buffer, start: number, end: number) => T;
  readonly maxMessageSize: number;
  /** Policy `overwrite`: subscriptions may be lapped and should count what they lost. */
  readonly overwrite: boolean;
  /** The channel's default wait strategy (`open`'s `wait`). */
  readonly wait: WaitStrategy | undefined;
  /** Completes each open stream (`messages()` subscription or iterator); `close` calls them. */
  readonly live: Set<() => void>;
}

/** The native subscription options of `o`; `records`: frames carry positions. */
function nativeOptions(
  o: { from?: unknown; durable?: string },
  records: boolean,
): NativeSubscribeOptions | undefined {
  const { from, durable } = o;
  if (from === undefined && durable === undefined && !records) return undefined;
  return {
    from: typeof from === 'string' ? from : undefined,
    position: typeof from === 'number' ? from : undefined,
    durable,
    records: records || durable !== undefined,
  };
}

/** Whether a subscription with options `o` may count losses (`overwrite`, or a replay). */
function mayLose(src: { overwrite: boolean }, o: { from?: unknown; durable?: string }): boolean {
  return src.overwrite || (o.from !== undefined && o.from !== 'latest') || o.durable !== undefined;
}

/** `Channel.messages`. */
export function messages<T>(
  src: Source<T>,
  options: SubscribeOptions | null | undefined,
): Observable<T> {
  return stream(src, 'messages', options, false, (value) => value);
}

/** `Channel.records`. */
export function records<T>(
  src: Source<T>,
  options: SubscribeOptions | null | undefined,
): Observable<ChannelRecord<T>> {
  return stream(src, 'records', options, true, (value, position) => ({ value, position }));
}

/**
 * The stream of `messages` and `records`: each message, made into what it emits by `shape`
 * (with its position when `positions`). A named subscription consumes each message once its
 * `next` handler returned.
 */
function stream<T, R>(
  src: Source<T>,
  what: string,
  options: SubscribeOptions | null | undefined,
  positions: boolean,
  shape: (value: T, position: number) => R,
): Observable<R> {
  // A bad option is the stream's error, like every other reason it cannot start.
  let bad: { error: unknown } | undefined;
  let o: SubscribeOptions = {};
  try {
    o = optionsOf<SubscribeOptions>(what, options);
    checkSubscribeOptions(what, o);
  } catch (error) {
    bad = { error };
  }
  const { wait = src.wait, onLost } = o;
  const counting = mayLose(src, o);
  const durable = o.durable !== undefined;
  const nativeOpts = nativeOptions(o, positions);
  return new Observable<R>((subscriber) => {
    if (bad !== undefined) {
      subscriber.error(bad.error);
      return;
    }
    let nat: NativeChannel;
    try {
      nat = src.open();
    } catch (e) {
      subscriber.error(e);
      return;
    }
    // Unsubscribed before we got here (e.g. a closed subscriber passed in): take no slot.
    if (subscriber.closed) return;
    const buf = frameBuffer(src.maxMessageSize);
    const frames = new FrameWalker(buf, nativeOpts?.records === true);
    const decode = src.decode;
    let done = false;
    let sub: NativeSubscription | undefined;
    let h = -1; // its handle, for the native drain
    let immediate: NodeJS.Immediate | undefined;
    let lost = 0;
    // Named: when a message counts as consumed. Its `next` handler returned; but an error
    // the handler threw is not seen here (RxJS reports it on a timer of its own, which by
    // default kills the process). So what a drain turn handled is committed by a timer made
    // at the end of that turn, after every error timer its handlers made: a process that
    // dies of such an error never commits the message that failed.
    /** The last message whose handler returned (-1: none yet). */
    let handled = -1;
    /** What the pending commit timer commits: what earlier turns handled. */
    let scheduled = -1;
    /** `handled` when the running drain turn began (-1: no turn runs). */
    let beforeTurn = -1;
    let inTurn = false;
    let commitTimer: NodeJS.Timeout | undefined;
    const commitScheduled = (): void => {
      commitTimer = undefined;
      if (scheduled < 0 || sub === undefined || done) return;
      try {
        native.commit(h, scheduled);
      } catch (e) {
        subscriber.error(fromNative(e));
      }
    };
    const drain = (): void => {
      immediate = undefined;
      if (done || sub === undefined) return;
      inTurn = true;
      beforeTurn = handled;
      try {
        drainTurn();
      } finally {
        inTurn = false;
        if (durable && !done && handled > scheduled) {
          scheduled = handled;
          if (commitTimer !== undefined) clearTimeout(commitTimer);
          commitTimer = setTimeout(commitScheduled, 0);
        }
      }
    };
    const drainTurn = (): void => {
      if (sub === undefined) return;
      try {
        const turns = durable ? 1 : BATCHES_PER_TURN;
        const count = durable ? DURABLE_BATCH_COUNT : BATCH_COUNT;
        for (let turn = 0; turn < turns; turn++) {
          const bytes = native.drain(h, buf, count);
          if (bytes === 0) {
            sub.rearm();
            return;
          }
          if (counting) {
            lost = reportLost(sub.lost(), lost, onLost);
            if (done) return;
          }
          frames.reset(bytes);
          while (frames.next()) {
            const position = frames.position;
            subscriber.next(shape(decode(buf, frames.start, frames.end), position));
            if (done) return;
            handled = position; // its handler returned (see above)
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
      if (commitTimer !== undefined) clearTimeout(commitTimer);
      // What earlier turns handled is consumed. Ended from inside a turn (a handler, an
      // operator's error, `take(n)`), what this turn handled comes again: a handler of it
      // may have thrown (an error not seen yet), and the one that ended the stream did not
      // return.
      const through = inTurn ? beforeTurn : handled;
      if (durable && through >= 0 && sub !== undefined) {
        try {
          native.commit(h, through);
        } catch {
          // Closed under us (the channel's close): those come again; nothing is lost.
        }
      }
      sub?.close();
      src.live.delete(complete);
    };
    const complete = (): void => {
      teardown();
      subscriber.complete();
    };
    try {
      sub = call(() => nat.subscribe(drain, wait, nativeOpts));
      h = sub.handle();
    } catch (e) {
      subscriber.error(e);
      return;
    }
    src.live.add(complete);
    return teardown;
  });
}

/** `Channel.iterate`. */
export function iterate<T>(
  src: Source<T>,
  options: IterateOptions | null | undefined,
): AsyncIterableIterator<T> {
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
  const { signal, wait = src.wait, onLost } = o;
  const counting = mayLose(src, o);
  const durable = o.durable !== undefined;
  const nativeOpts = nativeOptions(o, false);
  /** A named subscription: the position of the value last handed out, not yet consumed. */
  let inHand = -1;
  let lost = 0;
  const decode = src.decode;
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
    src.live.delete(finish);
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
      const nat = src.open();
      frames = new FrameWalker(frameBuffer(src.maxMessageSize), nativeOpts?.records === true);
      sub = call(() =>
        nat.subscribe(
          () => {
            const w = wake;
            wake = undefined;
            w?.();
          },
          wait,
          nativeOpts,
        ),
      );
      h = sub.handle();
      src.live.add(finish);
      signal?.addEventListener('abort', onAbort, { once: true });
    } catch (e) {
      failure = { error: fromNative(e) };
      finish();
    }
  };
  const step = async (): Promise<IteratorResult<T>> => {
    // Asked for the next value: a named subscription has consumed the one before.
    if (durable && inHand >= 0 && sub !== undefined) {
      call(() => native.commit(h, inHand));
      inHand = -1;
    }
    for (;;) {
      if (frames?.next()) {
        if (durable) inHand = frames.position;
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
        if (counting) lost = reportLost(sub.lost(), lost, onLost);
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

/** The channel's `receiveSync` subscription, made by the first call. */
export class SyncReceiver<T> {
  readonly #src: Source<T>;
  #sub: NativeSyncSubscription | undefined;
  #handle = -1;
  #buf: Buffer | undefined;
  /** The wait strategy the subscription was last given. */
  #wait: WaitStrategy | undefined;
  /** The named subscriber the subscription joined as, if any. */
  #durable: string | undefined;
  /** Whether the subscription may count losses. */
  #counting = false;
  /** Messages the subscription had lost as of the last call. */
  #lost = 0;

  constructor(src: Source<T>) {
    this.#src = src;
  }

  /** `Channel.receiveSync`. */
  receive(
    timeoutMs: number | undefined,
    options: ReceiveOptions | null | undefined,
  ): { value: T; position: number } | undefined {
    const nat = this.#src.open();
    checkTimeout('receiveSync timeoutMs', timeoutMs);
    const o = optionsOf<ReceiveOptions>('receiveSync', options);
    checkSubscribeOptions('receiveSync', o);
    const wait = o.wait ?? this.#src.wait ?? 'adaptive';
    if (this.#sub === undefined) {
      // Frames with positions: the result carries the record's.
      const opts = nativeOptions(o, true);
      this.#sub = call(() => nat.subscribeSync(wait, opts));
      this.#handle = this.#sub.handle();
      this.#wait = wait;
      this.#durable = o.durable;
      this.#counting = mayLose(this.#src, o);
    } else if (o.durable !== undefined && o.durable !== this.#durable) {
      throw invalid(
        `receiveSync's subscription joined as ${this.#durable === undefined ? 'an unnamed subscriber' : `named subscriber ${JSON.stringify(this.#durable)}`}, not ${JSON.stringify(o.durable)}`,
      );
    }
    const sub = this.#sub;
    if (wait !== this.#wait) {
      call(() => sub.setWait(wait));
      this.#wait = wait;
    }
    if (this.#buf === undefined) {
      // One frame; zero-filled and never from the shared pool (see `frameBuffer`).
      this.#buf = Buffer.alloc(frameBytes(this.#src.maxMessageSize, true));
    }
    const buf = this.#buf;
    const len = call(() => native.recv(this.#handle, buf, timeoutMs));
    if (this.#counting) this.#lost = reportLost(sub.lost(), this.#lost, o.onLost);
    if (len < 0) return undefined;
    return {
      value: this.#src.decode(buf, RECORD_FRAME_PREFIX, frameBytes(len, true)),
      position: positionAt(buf, 0),
    };
  }

  /** Releases the subscription's slot (the channel's `close`). */
  close(): void {
    this.#sub?.close();
    this.#sub = undefined;
  }
}

/** Calls `onLost` if a subscription's lost count grew past `seen`; returns the count. */
function reportLost(total: number, seen: number, onLost: LostCallback | undefined): number {
  if (total > seen) onLost?.(total - seen, total);
  return total;
}
