/**
 * The core importer's way into the local channel: the messages of one socket read are
 * announced to the exporters (./loop.ts) with one native publish, then published with one
 * more, in their order. A batch starts on the first message of a read and runs once the
 * client has handed over the whole read (a microtask later). When the channel (or its side
 * channel) is full, the rest waits for room with `send`, still in order, while later
 * messages queue behind it; each message's digest always goes in before the message.
 */
import type { Channel } from '../channel.js';
import type { LoopMarker } from './loop.js';

/** Most messages per native publish. */
const CHUNK = 1024;

export class Delivery {
  readonly #ch: Channel<Buffer>;
  readonly #marker: LoopMarker;
  readonly #forwarded: (n: number) => void;
  /** Messages from `#head` on are not published yet; those before `#marked` are announced. */
  #queue: Buffer[] = [];
  #head = 0;
  #marked = 0;
  #running = false;
  #idle: Array<() => void> = [];
  /** The first failure (the channel closed, a `fail` channel full): the importer's end. */
  readonly failed: Promise<never>;
  #fail: (e: unknown) => void = () => {};

  constructor(ch: Channel<Buffer>, marker: LoopMarker, forwarded: (n: number) => void) {
    this.#ch = ch;
    this.#marker = marker;
    this.#forwarded = forwarded;
    this.failed = new Promise<never>((_, rej) => {
      this.#fail = rej;
    });
    this.failed.catch(() => {});
  }

  /** Queues `b` (a view the caller does not reuse). */
  push(b: Buffer): void {
    this.#queue.push(b);
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

  async #run(): Promise<void> {
    try {
      while (this.#head < this.#queue.length) await this.#step();
    } catch (e) {
      this.#queue = [];
      this.#head = 0;
      this.#marked = 0;
      this.#fail(e);
    } finally {
      this.#queue = [];
      this.#head = 0;
      this.#marked = 0;
      this.#running = false;
      for (const r of this.#idle.splice(0)) r();
    }
  }

  /** Announces and publishes what it can now; waits for room when nothing went in. */
  async #step(): Promise<void> {
    const q = this.#queue;
    if (this.#marked < q.length) {
      const k = this.#marker.markMany(q.slice(this.#marked, this.#marked + CHUNK));
      this.#marked += k;
      if (this.#marked === this.#head) {
        // No room for the next digest: wait for it, then go on.
        await this.#marker.mark(q[this.#head] as Buffer);
        this.#marked += 1;
      }
    }
    const ready =
      this.#head === 0 && this.#marked === q.length ? q : q.slice(this.#head, this.#marked);
    const n = this.#ch.publishMany(ready);
    if (n > 0) this.#take(n);
    else {
      // No room for the next message (its digest is in): wait for it.
      await this.#ch.send(q[this.#head] as Buffer);
      this.#take(1);
    }
  }

  #take(n: number): void {
    this.#head += n;
    this.#forwarded(n);
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      this.#marked = 0;
    } else if (this.#head >= 4096 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#marked -= this.#head;
      this.#head = 0;
    }
  }
}
