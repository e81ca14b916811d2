/**
 * A JetStream importer's memory across restarts: which source position it last published
 * into its channel, so that a message redelivered after it was killed between its local
 * publish and its ack is dropped as a duplicate instead of published twice.
 *
 * Its announcements in the side channel `C.bridged` (./loop.ts) carry the source's tag and
 * position. At start the importer reads what the side channel holds: every announced
 * message was published, but for each source's last one, which counts only if its message
 * is in the channel (the importer announces, then publishes, one message at a time).
 * Limits (README): a message byte-for-byte equal to that last one still in the channel
 * counts as it; what the side channel no longer holds is not remembered.
 *
 * A message delivered for the first time comes in stream order (the channel's): one at or
 * below its source's highest published position is a copy the stream holds twice. A
 * redelivered one (not acked in time, or its importer died) is a duplicate only if exactly
 * its position was published.
 */
import { open } from '../catalog.js';
import { DIGEST, digest, openSide, TAGGED } from './loop.js';

/** How many published source positions an importer remembers for redeliveries. */
const RECENT = 1 << 16;

/** What a JetStream importer published, by source tag (hex) and source position. */
export class Published {
  /** Per source, the highest position published. */
  readonly #high = new Map<string, number>();
  /** The last {@link RECENT} `<tag>:<position>` published, and the same in a ring. */
  readonly #recent = new Set<string>();
  readonly #ring: Array<string | undefined> = new Array(RECENT);
  #next = 0;

  /**
   * What a restarted importer read back from the side channel: kept for good (the messages
   * its predecessor held unacked come again only after the ack wait, by then many newer ones
   * may have pushed them out of {@link #recent}).
   */
  readonly #recovered = new Set<string>();

  /** Whether this source position was published. */
  has(tag: string, position: number): boolean {
    const key = `${tag}:${position}`;
    return this.#recent.has(key) || this.#recovered.has(key);
  }

  /** Remembers a source position published before this importer started. */
  recovered(tag: string, position: number): void {
    this.#recovered.add(`${tag}:${position}`);
    const h = this.#high.get(tag);
    if (h === undefined || position > h) this.#high.set(tag, position);
  }
  /** The highest position of this source published, if any. */
  high(tag: string): number | undefined {
    return this.#high.get(tag);
  }
  add(tag: string, position: number): void {
    const key = `${tag}:${position}`;
    if (!this.#recent.has(key)) {
      // Forget the oldest by its key (a Set's first entry is slow to find after many deletes).
      const old = this.#ring[this.#next];
      if (old !== undefined) this.#recent.delete(old);
      this.#ring[this.#next] = key;
      this.#next = (this.#next + 1) % RECENT;
      this.#recent.add(key);
    }
    const h = this.#high.get(tag);
    if (h === undefined || position > h) this.#high.set(tag, position);
  }
}

/** What channel `name`'s side channel says this host's JetStream importers published. */
export function recoverPublished(name: string, dir: string | undefined): Published {
  const records: Array<{ tag: string; position: number; digest: string }> = [];
  const side = openSide(name, dir);
  try {
    for (;;) {
      const m = side.receiveSync(0, { from: 'earliest' });
      if (m === undefined) break;
      const v = m.value;
      if (v.length !== TAGGED) continue;
      records.push({
        tag: v.toString('hex', DIGEST + 8, TAGGED),
        position: v.readDoubleLE(DIGEST),
        digest: v.toString('base64', 0, DIGEST),
      });
    }
  } finally {
    side.close();
  }
  const out = new Published();
  if (records.length === 0) return out;
  // Each source's last announcement may be of a message never published: look for it.
  const last = new Map<string, number>();
  for (const [i, r] of records.entries()) last.set(r.tag, i);
  const wanted = new Set([...last.values()].map((i) => records[i]?.digest));
  const found = new Set<string>();
  const ch = open<Buffer>(name, { codec: 'raw', ...(dir === undefined ? {} : { dir }) });
  try {
    for (;;) {
      const m = ch.receiveSync(0, { from: 'earliest' });
      if (m === undefined) break;
      const d = digest(m.value);
      if (wanted.has(d)) found.add(d);
    }
  } finally {
    ch.close();
  }
  for (const [i, r] of records.entries()) {
    if (last.get(r.tag) !== i || found.has(r.digest)) out.recovered(r.tag, r.position);
  }
  return out;
}
