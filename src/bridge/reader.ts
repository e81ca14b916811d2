/**
 * The exporter's read side: a subscription of the channel whose records are taken one by
 * one (`take()`; `wait()` waits on the subscription's waiter thread, the event loop free;
 * `waitHere()` on the calling thread, the event loop standing still) and consumed only when
 * the bridge says so (`commit(position)`), so that a named subscriber's cursor moves past a
 * message only once NATS has it, while many publishes are in flight. It is the native
 * subscription that `records({ durable })` uses, driven by the bridge instead of by handlers
 * returning. Its waits sleep at once (strategy `block`): an exporter never spins.
 * @internal
 */
import { call, fromNative } from '../errors.js';
import { FrameWalker, frameBuffer, frameBytes } from '../frame.js';
import { type NativeChannel, type NativeSubscription, native } from '../native.js';

/** One record: a copy of its bytes (a view of its drain's copy), and its position. */
export interface Rec {
  value: Buffer;
  position: number;
}

/** Most records taken per native drain. */
const BATCH = 512;

export class RecordReader {
  readonly #nat: NativeChannel;
  readonly #sub: NativeSubscription;
  readonly #h: number;
  readonly #buf: Buffer;
  readonly #frames: FrameWalker;
  readonly #queue: Rec[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #lost = 0;
  #closed = false;
  /** Native drains that returned records so far (the loop filter's cue, ./loop.ts). */
  drains = 0;
  readonly #onLost: (n: number) => void;
  /** `createdAtMs` of the channel: with the name, its identity. */
  readonly createdAtMs: number;

  constructor(
    name: string,
    dir: string | undefined,
    durable: string | undefined,
    onLost: (n: number) => void,
  ) {
    this.#nat = call(() => native.NativeChannel.open(name, dir === undefined ? {} : { dir }));
    const info = this.#nat.info();
    this.createdAtMs = info.createdAtMs;
    this.#onLost = onLost;
    this.#buf = frameBuffer(info.maxMessageSize);
    this.#frames = new FrameWalker(this.#buf, true);
    const ready = (): void => {
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    };
    this.#sub = call(() => this.#nat.subscribe(ready, 'block', { durable, records: true }));
    this.#h = this.#sub.handle();
  }

  /** The next record now, or `undefined` if none is there. */
  take(): Rec | undefined {
    if (this.#head < this.#queue.length) {
      const r = this.#queue[this.#head++] as Rec;
      if (this.#head === this.#queue.length) {
        this.#queue.length = 0;
        this.#head = 0;
      }
      return r;
    }
    if (this.#closed) return undefined;
    let bytes: number;
    try {
      bytes = native.drain(this.#h, this.#buf, BATCH);
    } catch (e) {
      throw fromNative(e);
    }
    this.#countLost();
    if (bytes === 0) return undefined;
    this.#push(bytes);
    return this.take();
  }

  #countLost(): void {
    const lost = this.#sub.lost();
    if (lost > this.#lost) {
      this.#onLost(lost - this.#lost);
      this.#lost = lost;
    }
  }

  /** Queues the records of the first `bytes` of the drain buffer (a new drain). */
  #push(bytes: number): void {
    this.drains += 1;
    // One copy of the whole drain; each record a view of it.
    const copy = Buffer.from(this.#buf.subarray(0, bytes));
    const f = this.#frames;
    f.reset(bytes);
    while (f.next()) {
      this.#queue.push({ value: copy.subarray(f.start, f.end), position: f.position });
    }
  }

  /**
   * Waits on this thread — the event loop stands still meanwhile — up to `ms` for the next
   * record, and queues it for {@link take}; whether one came. A wake-up here is the
   * publisher's futex wake alone, without the waiter thread's hand-off to the event loop.
   */
  waitHere(ms: number): boolean {
    if (this.#closed || this.#head < this.#queue.length) return !this.#closed;
    let len: number;
    try {
      len = native.recv(this.#h, this.#buf, ms);
    } catch (e) {
      throw fromNative(e);
    }
    this.#countLost();
    if (len < 0) return false;
    this.#push(frameBytes(len, true));
    return true;
  }

  /** Resolves when data may be there (or after `ms`, or when `signal` aborts). */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((res) => {
      const done = (): void => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        res();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      this.#wake = done;
      this.#sub.rearm();
    });
  }

  /** A named subscriber: every record up to and including `position` is consumed. */
  commit(position: number): void {
    if (!this.#closed) call(() => native.commit(this.#h, position));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub.close();
    this.#nat.close();
  }
}
