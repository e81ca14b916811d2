/**
 * The core importer's way into the local channel. The messages of one socket read are copied
 * back to back into a batch; the batch's SHA-1 digests are taken with one native call and
 * announced to the channel's exporters (./loop.ts) with one native publish, then the messages
 * are published with one more, in their order. A batch starts on the first message of a read
 * and goes out once the client has handed over the whole read (a microtask later). When the
 * channel (or its side channel) is full, the rest waits for room, still in order, while later
 * messages queue behind it in batches of their own; each message's digest always goes in
 * before the message.
 */

import { ByteCopier } from '../copy.js';
import { call, fromNative } from '../errors.js';
import { type NativeChannel, native } from '../native.js';
import { DIGEST, sideName } from './loop.js';

/** Most messages per batch. */
const CHUNK = 1024;
/** Bytes of a batch's slab (a larger message gets a slab of its own size). */
const SLAB = 128 * 1024;
/** How long one wait for room lasts before it looks again. */
const ROOM_MS = 100;
/** The side channel's frame ends for `n` digests: message `i` ends at `DIGEST * (i + 1)`. */
const DIGEST_ENDS = Uint32Array.from({ length: CHUNK }, (_, i) => DIGEST * (i + 1));

/** Messages packed back to back: message `i` is `buf[ends[i - 1] ?? 0, ends[i])`. */
interface Batch {
  buf: Buffer;
  ends: Uint32Array;
  n: number;
}

/** Where the next message of `b` goes. */
function at(b: Batch): number {
  return b.n === 0 ? 0 : (b.ends[b.n - 1] as number);
}

export class Delivery {
  readonly #ch: NativeChannel;
  readonly #h: number;
  readonly #side: NativeChannel;
  readonly #sh: number;
  readonly #forwarded: (n: number) => void;
  readonly #lost: (n: number) => void;
  /** Copies each message into its batch (by hand when short, ../copy.ts). */
  readonly #copier = new ByteCopier();
  /** Messages pushed and neither published nor counted lost yet. */
  #queued = 0;
  /** Batches not yet published, oldest first; new messages go into the last one. */
  #batches: Batch[] = [];
  /** Batches published, kept for the next messages (no slab allocated per socket read). */
  #spare: Batch[] = [];
  /** The last batch is being published: new messages start a batch of their own. */
  #sealed = false;
  #running = false;
  #idle: Array<() => void> = [];
  /** The first failure (the channel closed, a `fail` channel full): the importer's end. */
  readonly failed: Promise<never>;
  #fail: (e: unknown) => void = () => {};

  /**
   * Publishes into channel `channel` of `dir` (which exists, as does its side channel: the
   * importer opened both before). `forwarded(n)`: `n` more messages went in. `lost(n)`: `n` messages will not, the delivery
   * having failed (or been closed) before them; their digests may have been announced (a
   * limit stated in ./loop.ts).
   */
  constructor(
    channel: string,
    dir: string | undefined,
    forwarded: (n: number) => void,
    lost: (n: number) => void = () => {},
  ) {
    const opts = dir === undefined ? {} : { dir };
    this.#ch = call(() => native.NativeChannel.open(channel, opts));
    try {
      this.#side = call(() => native.NativeChannel.open(sideName(channel), opts));
    } catch (e) {
      this.#ch.close();
      throw e;
    }
    this.#h = this.#ch.handle();
    this.#sh = this.#side.handle();
    this.#forwarded = (n) => {
      this.#queued -= n;
      forwarded(n);
    };
    this.#lost = lost;
    this.failed = new Promise<never>((_, rej) => {
      this.#fail = rej;
    });
    this.failed.catch(() => {});
  }

  /**
   * Queues a copy of `src[start, end)` (at most the channel's `maxMessageSize` bytes; the
   * caller checks).
   */
  push(src: Uint8Array, start = 0, end = src.length): void {
    const len = end - start;
    let last = this.#batches[this.#batches.length - 1];
    if (
      last === undefined ||
      this.#sealed ||
      last.n === CHUNK ||
      at(last) + len > last.buf.length
    ) {
      last = this.#batch(len);
      this.#batches.push(last);
      this.#sealed = false;
    }
    const to = at(last);
    this.#copier.copy(src, start, end, last.buf, to);
    last.ends[last.n++] = to + len;
    this.#queued += 1;
    if (!this.#running) {
      this.#running = true;
      queueMicrotask(() => void this.#run());
    }
  }

  /** Resolves once everything queued so far is published (or failed). */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((res) => this.#idle.push(res));
  }

  close(): void {
    this.#side.close();
    this.#ch.close();
  }

  /** An empty batch for a message of `len` bytes (a spare one when it fits). */
  #batch(len: number): Batch {
    const b = len <= SLAB ? this.#spare.pop() : undefined;
    if (b !== undefined) {
      b.n = 0;
      return b;
    }
    return { buf: Buffer.allocUnsafe(Math.max(SLAB, len)), ends: new Uint32Array(CHUNK), n: 0 };
  }

  async #run(): Promise<void> {
    try {
      while (this.#batches.length > 0) {
        const b = this.#batches[0] as Batch;
        if (this.#batches.length === 1) this.#sealed = true;
        await this.#deliver(b);
        this.#batches.shift();
        // Its bytes are in the ring now: the slab can take the next messages.
        if (b.buf.length === SLAB && this.#spare.length < 2) this.#spare.push(b);
      }
    } catch (e) {
      // What was not published is lost (counted once: nothing more goes in after a failure).
      const n = this.#queued;
      this.#queued = 0;
      if (n > 0) this.#lost(n);
      this.#fail(e);
    } finally {
      this.#batches = [];
      this.#sealed = false;
      this.#running = false;
      for (const r of this.#idle.splice(0)) r();
    }
  }

  /** Announces and publishes batch `b`, waiting for room where there is none. */
  async #deliver(b: Batch): Promise<void> {
    const { buf, n } = b;
    const ends = b.ends.subarray(0, n);
    const digests = call(() => native.sha1Frames(buf, ends));
    /** Messages before `marked` are announced, before `head` published. */
    let marked = 0;
    let head = 0;
    while (head < n) {
      if (marked < n) {
        const d = digests.subarray(DIGEST * marked, DIGEST * n);
        marked += this.#publish(this.#sh, d, DIGEST_ENDS.subarray(0, n - marked));
        if (marked === head) {
          // No room for the next digest: wait for it, then go on.
          await this.#room(this.#side, DIGEST);
          continue;
        }
      }
      const from = head === 0 ? 0 : (ends[head - 1] as number);
      let e = ends.subarray(head, marked);
      if (from > 0) {
        // Ends relative to the first message not yet in (only after a full ring).
        e = e.slice();
        for (let i = 0; i < e.length; i++) e[i] = (e[i] as number) - from;
      }
      const k = this.#publish(this.#h, buf.subarray(from, ends[marked - 1]), e);
      if (k > 0) {
        head += k;
        this.#forwarded(k);
      } else await this.#room(this.#ch, (ends[head] as number) - from);
    }
  }

  /** `native.publishMany`: how many went in; an error of a batch part-way counts what did. */
  #publish(h: number, buf: Buffer, ends: Uint32Array): number {
    try {
      return native.publishMany(h, buf, ends);
    } catch (e) {
      const err = fromNative(e);
      const published = (err as { published?: number }).published ?? 0;
      if (h === this.#h && published > 0) this.#forwarded(published);
      throw err;
    }
  }

  /** Waits (a while at most) until a message of `len` bytes fits into `ch`. */
  async #room(ch: NativeChannel, len: number): Promise<void> {
    try {
      await ch.waitForSpace(len, ROOM_MS);
    } catch (e) {
      throw fromNative(e);
    }
  }
}
