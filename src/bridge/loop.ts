/**
 * Loop prevention on one host: the importers of a channel tell its exporters which messages
 * they wrote, so that an exporter never sends back out what came in.
 *
 * Payload bytes stay untouched, so the mark cannot live in the message. Instead every
 * importer of channel `C` first publishes the SHA-1 digest of each message into the side
 * channel `C.bridged` (codec `raw`, policy `block`), and only then the message into `C`.
 * An exporter of `C` reads `C.bridged` too: before it looks at a record of `C` it takes every
 * digest published so far (each one was published before the message it announces, so the
 * announcement of every imported record the exporter can see is there: taking them once per
 * drain of `C`, after it, is enough), and a record whose digest is pending is skipped (and its
 * digest taken off, once). The core importer takes the digests of a batch with one native
 * call (./deliver.ts), the JetStream importer and the exporter with `crypto.hash`. A
 * JetStream exporter reads the side channel as a named subscriber too (`<durable>.l`), so a
 * restarted one still knows what was imported while it was away.
 *
 * Limits, stated in the README: a local message byte-for-byte equal to one imported while
 * its digest is pending may be the copy that is skipped (the other is exported in its
 * place, so the number and bytes sent are right); an importer killed between the two
 * publishes, or one whose delivery failed or was stopped while its channel stayed full (up
 * to a batch of 1,024), leaves digests that wait for equal messages.
 */
import { hash } from 'node:crypto';
import { open } from '../catalog.js';
import type { Channel } from '../channel.js';

/** The side channel's name for channel `name`. */
export function sideName(name: string): string {
  return `${name}.bridged`;
}

/** The SHA-1 of `bytes` as base64 (the exporter's key). */
export function digest(bytes: Uint8Array): string {
  return hash('sha1', bytes, 'base64');
}

/** The size of a digest in the side channel. */
export const DIGEST = 20;
/**
 * A JetStream importer's announcement also names what it imports: the digest, then the
 * source position (f64) and the first 8 bytes of the SHA-1 of the source (./recover.ts).
 */
export const TAGGED = DIGEST + 16;

/** The 8-byte tag of a source (`<channel>@<createdAtMs>`) in a tagged announcement. */
export function sourceTag(source: string): Buffer {
  return hash('sha1', source, 'buffer').subarray(0, 8);
}

/** Where a JetStream importer's message came from: its source's tag and position. */
export interface Origin {
  tag: Buffer;
  position: number;
}

export function openSide(channel: string, dir: string | undefined): Channel<Buffer> {
  return open<Buffer>(sideName(channel), {
    create: true,
    codec: 'raw',
    capacity: 1 << 20,
    maxMessageSize: 64,
    policy: 'block',
    ...(dir === undefined ? {} : { dir }),
  });
}

/** The importer's side: announce each message before publishing it. */
export class LoopMarker {
  readonly #side: Channel<Buffer>;
  constructor(channel: string, dir: string | undefined) {
    this.#side = openSide(channel, dir);
  }
  /**
   * Announces `bytes`: `undefined` when done at once, else a promise that settles once the
   * side channel had room.
   */
  mark(bytes: Uint8Array, from?: Origin): Promise<void> | undefined {
    let d = Buffer.from(digest(bytes), 'base64');
    if (from !== undefined) {
      const t = Buffer.allocUnsafe(TAGGED);
      d.copy(t, 0);
      t.writeDoubleLE(from.position, DIGEST);
      from.tag.copy(t, DIGEST + 8);
      d = t;
    }
    return this.#side.publish(d) ? undefined : this.#side.send(d);
  }
  close(): void {
    this.#side.close();
  }
}

/** The exporter's side: which records of the channel an importer wrote. */
export class LoopFilter {
  readonly #side: Channel<Buffer>;
  readonly #pending = new Map<string, number>();
  readonly #durable: string | undefined;
  /** The reader's drain the announcements were last taken after. */
  #drain = -1;
  constructor(channel: string, dir: string | undefined, durable: string | undefined) {
    this.#side = openSide(channel, dir);
    this.#durable = durable === undefined ? undefined : `${durable}.l`;
    this.#take(); // join now, before the channel's own subscription
  }
  #take(): void {
    const opts = this.#durable === undefined ? {} : { durable: this.#durable };
    for (;;) {
      const m = this.#side.receiveSync(0, opts);
      if (m === undefined) return;
      const k = m.value.toString('base64', 0, DIGEST);
      this.#pending.set(k, (this.#pending.get(k) ?? 0) + 1);
    }
  }
  /**
   * Whether `bytes` (the next record of the channel) came from an importer; takes it off.
   * `drain` counts the reader's drains of the channel: the announcements are taken again only
   * after a new one (every record of a drain was announced before the drain began).
   */
  imported(bytes: Uint8Array, drain: number): boolean {
    if (drain !== this.#drain) {
      this.#drain = drain;
      this.#take();
    }
    if (this.#pending.size === 0) return false;
    const k = digest(bytes);
    const n = this.#pending.get(k);
    if (n === undefined) return false;
    if (n === 1) this.#pending.delete(k);
    else this.#pending.set(k, n - 1);
    return true;
  }
  close(): void {
    this.#side.close();
  }
}
