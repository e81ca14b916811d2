/**
 * The reading side of a channel: `messages()` (a cold Observable, woken by the native
 * waiter thread, drained in batches), `iterate()` (the same stream pulled as an async
 * iterator) and the `receiveSync` subscription (blocking, for worker threads). Each stream
 * or subscription is one participant slot. `Channel` delegates here; the public docs are on
 * its methods.
 * @internal
 */
import { Observable } from 'rxjs';
import { Batch, Delivered, plainRecord, SETTLE, settle, uncaughtSeen } from './acked.js';
import { call, fromNative } from './errors.js';
import { FrameWalker, frameBuffer } from './frame.js';
import {
  type NativeChannel,
  type NativeSubscribeOptions,
  type NativeSubscription,
  native,
} from './native.js';
import type {
  ChannelRecord,
  IterateOptions,
  LostCallback,
  SubscribeOptions,
  WaitStrategy,
} from './types.js';
import { checkSignal, checkSubscribeOptions, optionsOf } from './validate.js';

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
  /** An at-least-once queue: deliveries are settled (./acked.ts). */
  readonly acked: boolean;
  /** The channel's default wait strategy (`open`'s `wait`). */
  readonly wait: WaitStrategy | undefined;
  /** Completes each open stream (`messages()` subscription or iterator); `close` calls them. */
  readonly live: Set<() => void>;
}

/** The native subscription options of `o`; `records`: frames carry positions. */
export function nativeOptions(
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
export function mayLose(
  src: { overwrite: boolean },
  o: { from?: unknown; durable?: string },
): boolean {
  return src.overwrite || (o.from !== undefined && o.from !== 'latest') || o.durable !== undefined;
}

/** `Channel.messages`. */
export function messages<T>(
  src: Source<T>,
  options: SubscribeOptions | null | undefined,
): Observable<T> {
  return stream(src, 'messages', options, false, (value) => value);
}

/** What a record stream emits: a value with its position, and how to settle it. */
type Shape<T, R> = (
  value: T,
  position: number,
  flags: number,
  batch: Batch | undefined,
  index: number,
) => R;

/** `Channel.records`. */
export function records<T>(
  src: Source<T>,
  options: SubscribeOptions | null | undefined,
): Observable<ChannelRecord<T>> {
  return stream(src, 'records', options, true, (value, position, flags, batch, index) =>
    batch === undefined
      ? plainRecord(value, position)
      : new Delivered(value, position, Math.max(1, flags), batch, index),
  );
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
  shape: Shape<T, R>,
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
  const acked = src.acked;
  // An at-least-once queue: `records()` leaves settling to the user; `messages()` settles.
  const explicit = acked && positions;
  const nativeOpts = nativeOptions(o, positions || acked);
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
    // At-least-once (./acked.ts): one batch per turn, settled before the next is drained.
    // `messages()` settles a turn on a timer made at its end, for the reason above: the
    // batch is acknowledged if no handler's error was reported meanwhile, else given back.
    /** The settling of the last turn, not done yet (runs on `settleTimer`, or at close). */
    let unsettledTurn: (() => void) | undefined;
    let settleTimer: NodeJS.Timeout | undefined;
    /** `records()`: the timer that gives back a batch whose handler threw. */
    let checkTimer: NodeJS.Timeout | undefined;
    /** `records()`: the batch handed out; the stream closes once it is settled. */
    let batch: Batch | undefined;
    /** The message whose handler runs (at-least-once; -1: none). */
    let current = -1;
    /** The running turn's first message, and `uncaughtSeen()` when it began. */
    let turnFirst = -1;
    let turnUncaught = 0;
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
        if (acked) drainAcked();
        else drainTurn();
      } finally {
        inTurn = false;
        current = -1;
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
            subscriber.next(
              shape(decode(buf, frames.start, frames.end), position, 0, undefined, -1),
            );
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
    /** Settles a `messages()` turn: through `through`, or from `first` on after an error. */
    const settleTurn = (first: number, through: number, uncaught: number): void => {
      if (sub === undefined) return;
      if (uncaughtSeen() !== uncaught) settle(h, first, SETTLE.nack);
      else if (through >= 0) settle(h, through, SETTLE.ackThrough);
    };
    const drainAcked = (): void => {
      if (sub === undefined) return;
      const s = sub;
      const uncaught = uncaughtSeen();
      turnUncaught = uncaught;
      try {
        const bytes = native.drain(h, buf, BATCH_COUNT);
        if (bytes === 0) {
          s.rearm();
          return;
        }
        frames.reset(bytes);
        const b = explicit
          ? new Batch(h, () => {
              batch = undefined;
              if (!done) immediate = setImmediate(drain);
              else closeNative();
            })
          : undefined;
        batch = b;
        let first = -1;
        let through = -1;
        while (frames.next()) {
          const position = frames.position;
          if (first < 0) {
            first = position;
            turnFirst = position;
          }
          // Decoded first: a message that cannot be decoded is not handed out (the stream
          // errs, and it goes back with the rest).
          const value = decode(buf, frames.start, frames.end);
          current = position;
          const index = b === undefined ? -1 : b.add(position);
          subscriber.next(shape(value, position, frames.flags, b, index));
          if (done) return;
          through = position;
          // Given back by a `nack` (with everything after it in the batch): not handed out.
          if (b?.nacked) break;
        }
        if (b !== undefined) {
          // After the error timers of this turn's handlers: a batch whose handler threw is
          // given back (what it acknowledged stays acknowledged).
          if (checkTimer !== undefined) clearTimeout(checkTimer);
          checkTimer = setTimeout(() => {
            checkTimer = undefined;
            if (uncaughtSeen() !== uncaught) b.returnAll();
          }, 0);
          b.seal();
          return;
        }
        unsettledTurn = () => settleTurn(first, through, uncaught);
        settleTimer = setTimeout(() => {
          settleTimer = undefined;
          const run = unsettledTurn;
          unsettledTurn = undefined;
          try {
            run?.();
          } catch (e) {
            subscriber.error(fromNative(e));
            return;
          }
          if (done) closeNative();
          else drain();
        }, 0);
      } catch (e) {
        subscriber.error(fromNative(e));
      }
    };
    /** Releases the slot (what it still holds goes back to the queue). */
    const closeNative = (): void => {
      if (settleTimer !== undefined) clearTimeout(settleTimer);
      if (checkTimer !== undefined) clearTimeout(checkTimer);
      settleTimer = undefined;
      checkTimer = undefined;
      const run = unsettledTurn;
      unsettledTurn = undefined;
      try {
        run?.();
      } catch {
        // Closed under us: what it held went back to the queue; nothing is lost.
      }
      sub?.close();
      sub = undefined;
      src.live.delete(complete);
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
      if (acked) {
        const b = batch;
        if (b !== undefined) {
          // `records()`: what was not handed out goes back now; the slot stays until the
          // user settled what was (or the channel closes).
          if (inTurn && frames.next()) settle(h, frames.position, SETTLE.nack);
          if (b.unsettled > 0) {
            b.seal(); // its `onSettled` closes
            return;
          }
        } else if (inTurn && current >= 0) {
          // `messages()` ended inside a turn (`take(n)`, `firstValueFrom`, an operator's
          // error): the message being handled counts as handled, unless a handler's error
          // is reported before the timer; what was not handed out goes back at close.
          // (The source cannot tell `take(n)`'s end from an operator's error; see the
          // TSDoc of `messages`.)
          const [first, at, uncaught] = [turnFirst, current, turnUncaught];
          unsettledTurn = () => settleTurn(first, at, uncaught);
          settleTimer = setTimeout(closeNative, 0);
          return;
        } else if (unsettledTurn !== undefined) {
          return; // the turn's settling, on its timer, closes
        }
      }
      closeNative();
    };
    const complete = (): void => {
      teardown();
      // A turn not judged yet is settled on its timer (which then closes): judged now, a
      // handler's error RxJS has not reported yet would pass for success.
      if (unsettledTurn === undefined) closeNative();
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
  const acked = src.acked;
  const nativeOpts = nativeOptions(o, acked);
  /**
   * A named subscription or an at-least-once queue: the position of the value last handed
   * out, not yet consumed (acknowledged).
   */
  let inHand = -1;
  /** At-least-once: the last value the loop asked past, not acknowledged yet (-1: none). */
  let passed = -1;
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
    // What the loop asked past is acknowledged; the value in hand (the loop broke out or
    // threw) and what was not handed out go back to the queue when the slot is released.
    if (passed >= 0 && sub !== undefined) settle(h, passed, SETTLE.ackThrough);
    passed = -1;
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
    if (acked && inHand >= 0) {
      passed = inHand; // acknowledged before the next drain (one native call per batch)
      inHand = -1;
    }
    for (;;) {
      if (frames?.next()) {
        if (durable || acked) inHand = frames.position;
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
      if (passed >= 0) {
        settle(h, passed, SETTLE.ackThrough);
        passed = -1;
      }
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
  /** `next()` calls whose `step` has not settled yet. */
  let inFlight = 0;
  const stepDone = (): void => {
    inFlight--;
  };
  const iterator: AsyncIterableIterator<T> = {
    next: () => {
      // Join now, synchronously: what is published after this call is seen.
      if (!started) start();
      // A plain subscription with a frame of the drained batch left, and no `next()` before
      // this one still running: what `step` would do, without its promise chain (three
      // promises and an async call per message).
      if (inFlight === 0 && !durable && !acked && frames?.next()) {
        let value: T;
        try {
          value = decode(frames.buffer, frames.start, frames.end);
        } catch (e) {
          finish();
          return Promise.reject(fromNative(e));
        }
        return Promise.resolve({ value, done: false });
      }
      inFlight++;
      const result = chain.then(step).catch((e: unknown) => {
        finish();
        throw fromNative(e);
      });
      result.then(stepDone, stepDone);
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

/** Calls `onLost` if a subscription's lost count grew past `seen`; returns the count. */
export function reportLost(total: number, seen: number, onLost: LostCallback | undefined): number {
  if (total > seen) onLost?.(total - seen, total);
  return total;
}
