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
 * redelivered one (its ack lost or late, or its importer died) is a duplicate if this
 * importer is done with its stream sequence ({@link DoneSeqs}: exact, however old), or else
 * if exactly its position was published.
 */
import { open } from '../catalog.js';
import { DIGEST, digest, type Origin, openSide, sourceTag, TAGGED } from './loop.js';

/** How many published source positions an importer remembers for redeliveries. */
const RECENT = 1 << 16;

/**
 * Most ranges of stream sequences remembered. The importer's own stream has a range per
 * hole only (messages delivered to a consumer stream that failed before they were taken,
 * filled when they come again), so this bounds only a stream shared with other subjects.
 */
const MAX_RANGES = 1 << 16;

/**
 * The stream sequences an importer is done with (published, or dropped as a duplicate), as
 * sorted disjoint inclusive ranges. JetStream redelivers a message whose ack it did not get
 * in time, however long ago it was delivered (an ack is fire-and-forget), so the check is by
 * sequence, not by a window of recent messages. Past {@link MAX_RANGES} the oldest range is
 * forgotten (a redelivery into it falls back to the position check).
 */
export class DoneSeqs {
  /** `[from, to]`, ascending, never adjacent (adjacent ranges are merged). */
  readonly #r: Array<[number, number]> = [];

  has(seq: number): boolean {
    const r = this.#r;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [from, to] = r[mid] as [number, number];
      if (seq < from) hi = mid - 1;
      else if (seq > to) lo = mid + 1;
      else return true;
    }
    return false;
  }

  add(seq: number): void {
    const r = this.#r;
    const last = r[r.length - 1];
    // The usual case: the next sequence of the stream.
    if (last !== undefined && seq === last[1] + 1) {
      last[1] = seq;
      return;
    }
    if (last === undefined || seq > last[1]) {
      r.push([seq, seq]);
    } else {
      // A hole being filled (or a sequence already in): find the first range ending at or after it.
      let lo = 0;
      let hi = r.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((r[mid] as [number, number])[1] < seq) lo = mid + 1;
        else hi = mid;
      }
      const at = r[lo] as [number, number];
      if (seq >= at[0]) return;
      const before = r[lo - 1];
      const joinsBefore = before !== undefined && before[1] + 1 === seq;
      const joinsAt = seq + 1 === at[0];
      if (joinsBefore && joinsAt) {
        before[1] = at[1];
        r.splice(lo, 1);
      } else if (joinsBefore) before[1] = seq;
      else if (joinsAt) at[0] = seq;
      else r.splice(lo, 0, [seq, seq]);
    }
    if (r.length > MAX_RANGES) r.shift();
  }

  /** How many ranges are held (tests). */
  get ranges(): number {
    return this.#r.length;
  }
}

/** Where a message comes from, with its source's key in {@link Published}. */
export interface Taken extends Origin {
  key: string;
}

/**
 * A JetStream importer's duplicate check: by stream sequence first ({@link DoneSeqs}), then
 * by source position ({@link Published}).
 */
export class JetStreamDedup {
  readonly #done = new DoneSeqs();
  readonly #published: Published;
  /** Per source channel, its tag and the tag's hex form (the key of {@link Published}). */
  readonly #tags = new Map<string, { tag: Buffer; key: string }>();

  /** `published`: what a restarted importer read back ({@link recoverPublished}). */
  constructor(published = new Published()) {
    this.#published = published;
  }

  /**
   * `'duplicate'` if the message at stream sequence `seq` was published already, else where
   * it comes from (for its announcement; `undefined` without the bridge's headers). Nothing
   * is remembered until {@link done} says the message went in (or was dropped).
   */
  check(
    h: { source: string | undefined; position: number },
    seq: number,
    redelivered: boolean,
  ): Taken | 'duplicate' | undefined {
    if (this.#done.has(seq)) return 'duplicate';
    const { source, position } = h;
    if (!source || !Number.isFinite(position)) return undefined;
    let t = this.#tags.get(source);
    if (t === undefined) {
      const tag = sourceTag(source);
      t = { tag, key: tag.toString('hex') };
      this.#tags.set(source, t);
    }
    const p = this.#published;
    const high = p.high(t.key);
    if (redelivered ? p.has(t.key, position) : high !== undefined && position <= high) {
      return 'duplicate';
    }
    return { tag: t.tag, key: t.key, position };
  }

  /**
   * The message at `seq` is in the channel (`from`: where it came from), or was dropped as a
   * duplicate: a redelivery of it is a duplicate from now on.
   */
  done(seq: number, from: Taken | 'duplicate' | undefined): void {
    this.#done.add(seq);
    if (from !== undefined && from !== 'duplicate') this.#published.add(from.key, from.position);
  }
}

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
