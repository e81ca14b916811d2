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
import { FRAME_PREFIX, FrameWalker, frameBuffer, frameBytes } from './frame.js';
import {
  type NativeChannel,
  type NativeSubscription,
  type NativeSyncSubscription,
  native,
} from './native.js';
import type {
  IterateOptions,
  LostCallback,
  ReceiveOptions,
  SubscribeOptions,
  WaitStrategy,
} from './types.js';
import { checkSignal, checkSubscribeOptions, checkTimeout, optionsOf } from './validate.js';

/** Most messages decoded per native call. */
const BATCH_COUNT = 1024;
/** Native drains per event-loop turn before yielding with `setImmediate`. */
const BATCHES_PER_TURN = 16;

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

/** `Channel.messages`. */
export function messages<T>(
  src: Source<T>,
  options: SubscribeOptions | null | undefined,
): Observable<T> {
  // A bad option is the stream's error, like every other reason it cannot start.
  let bad: { error: unknown } | undefined;
  let o: SubscribeOptions = {};
  try {
    o = optionsOf<SubscribeOptions>('messages', options);
    checkSubscribeOptions('messages', o);
  } catch (error) {
    bad = { error };
  }
  const { wait = src.wait, onLost } = o;
  const overwrite = src.overwrite;
  return new Observable<T>((subscriber) => {
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
    const frames = new FrameWalker(buf);
    const decode = src.decode;
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
      src.live.delete(complete);
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
  const overwrite = src.overwrite;
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
      frames = new FrameWalker(frameBuffer(src.maxMessageSize));
      sub = call(() =>
        nat.subscribe(() => {
          const w = wake;
          wake = undefined;
          w?.();
        }, wait),
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

/** The channel's `receiveSync` subscription, made by the first call. */
export class SyncReceiver<T> {
  readonly #src: Source<T>;
  #sub: NativeSyncSubscription | undefined;
  #handle = -1;
  #buf: Buffer | undefined;
  /** The wait strategy the subscription was last given. */
  #wait: WaitStrategy | undefined;
  /** Messages the subscription had lost as of the last call. */
  #lost = 0;

  constructor(src: Source<T>) {
    this.#src = src;
  }

  /** `Channel.receiveSync`. */
  receive(
    timeoutMs: number | undefined,
    options: ReceiveOptions | null | undefined,
  ): { value: T } | undefined {
    const nat = this.#src.open();
    checkTimeout('receiveSync timeoutMs', timeoutMs);
    const o = optionsOf<ReceiveOptions>('receiveSync', options);
    checkSubscribeOptions('receiveSync', o);
    const wait = o.wait ?? this.#src.wait ?? 'adaptive';
    if (this.#sub === undefined) {
      this.#sub = call(() => nat.subscribeSync(wait));
      this.#handle = this.#sub.handle();
      this.#wait = wait;
    }
    const sub = this.#sub;
    if (wait !== this.#wait) {
      call(() => sub.setWait(wait));
      this.#wait = wait;
    }
    if (this.#buf === undefined) {
      // One frame; zero-filled and never from the shared pool (see `frameBuffer`).
      this.#buf = Buffer.alloc(frameBytes(this.#src.maxMessageSize));
    }
    const buf = this.#buf;
    const len = call(() => native.recv(this.#handle, buf, timeoutMs));
    if (this.#src.overwrite) this.#lost = reportLost(sub.lost(), this.#lost, o.onLost);
    if (len < 0) return undefined;
    return { value: this.#src.decode(buf, FRAME_PREFIX, frameBytes(len)) };
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
