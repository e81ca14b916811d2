/**
 * The importing bridge: every NATS message on a subject (core), or every message of a
 * durable JetStream consumer, is published into a local channel, bytes untouched.
 *
 * - Each message is announced to the channel's exporters first (./loop.ts), then published;
 *   a message whose `Shmring-Origin` is this bridge's own origin is dropped (it came back).
 * - Core: at-most-once; the gaps in each exporter session's `Shmring-Seq` are counted as lost.
 * - JetStream: a message is acked only after its local publish returned (committed into the
 *   ring); a message from a source position this importer already published is a duplicate,
 *   dropped and acked, also after a restart (./recover.ts). When the consumer's stream of messages fails (the server went away),
 *   it is opened again after a backoff.
 */
import { type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { open } from '../catalog.js';
import type { Channel } from '../channel.js';
import { backoff, oneLine, sleep } from './connect.js';
import { Delivery } from './deliver.js';
import { LoopMarker, type Origin, sourceTag } from './loop.js';
import type { Resolved } from './options.js';
import { Published, recoverPublished } from './recover.js';
import type { BridgeStats } from './stats.js';
import { ensureConsumer, ensureStream } from './stream.js';
import { type BridgeHeaders, fromHeaders, HeaderReader } from './wire.js';

/** Gaps remembered per exporter session (a late message in an older one stays lost). */
const MAX_GAPS = 1024;

/** Core: one exporter session's last `Shmring-Seq` and the gaps before it, oldest first. */
interface SessionSeq {
  last: number;
  /** Inclusive ranges of numbers counted lost. */
  gaps: Array<[number, number]>;
}

/** What an importer remembers to count losses and drop duplicates. */
class Seen {
  /** Per exporter session, the last `Shmring-Seq` and its gaps. */
  readonly #seq = new Map<string, SessionSeq>();
  /** JetStream: what was published (./recover.ts). */
  readonly #published: Published;
  /** Per source channel, its tag. */
  readonly #tags = new Map<string, Buffer>();

  /** `published`: what a restarted JetStream importer remembers. */
  constructor(published = new Published()) {
    this.#published = published;
  }

  /**
   * Core: the change to `lost` this message makes: the messages of its session missing before
   * it (a tick: up to and including the one it names, the last sent), or -1 when it is one of
   * those, arriving late (after an exporter's forced reconnect, the old connection's last
   * messages can come after the new one's first).
   */
  gap(h: BridgeHeaders): number {
    const { session, seq, tick } = h;
    if (!session || !Number.isInteger(seq)) return 0;
    const s = this.#seq.get(session);
    if (s === undefined) {
      this.#seq.set(session, { last: seq, gaps: [] });
      return 0;
    }
    if (seq > s.last) {
      const to = tick ? seq : seq - 1;
      if (to > s.last) {
        s.gaps.push([s.last + 1, to]);
        if (s.gaps.length > MAX_GAPS) s.gaps.shift();
      }
      const n = to - s.last;
      s.last = seq;
      return n;
    }
    if (tick) return 0;
    for (let i = s.gaps.length - 1; i >= 0; i--) {
      const g = s.gaps[i] as [number, number];
      if (seq > g[1]) break;
      if (seq < g[0]) continue;
      if (g[0] === g[1]) s.gaps.splice(i, 1);
      else if (seq === g[0]) g[0] += 1;
      else if (seq === g[1]) g[1] -= 1;
      else {
        s.gaps.splice(i + 1, 0, [seq + 1, g[1]]);
        g[1] = seq - 1;
      }
      return -1;
    }
    return 0;
  }

  /**
   * JetStream: `'duplicate'` if this message was published already, else where it comes
   * from (for its announcement; `undefined` without the headers). A first delivery comes in
   * the source's order; a redelivery is a duplicate only if its very position was published.
   */
  take(h: BridgeHeaders, redelivered: boolean): Origin | 'duplicate' | undefined {
    const { source, position } = h;
    if (!source || !Number.isFinite(position)) return undefined;
    let tag = this.#tags.get(source);
    if (tag === undefined) {
      tag = sourceTag(source);
      this.#tags.set(source, tag);
    }
    const key = tag.toString('hex');
    const p = this.#published;
    const high = p.high(key);
    if (redelivered ? p.has(key, position) : high !== undefined && position <= high) {
      return 'duplicate';
    }
    p.add(key, position);
    return { tag, position };
  }
}

/**
 * Publishes `data` into `ch` (announced first): `undefined` when both went in at once, else a
 * promise that settles once they did (waiting for room).
 */
function deliver(
  ch: Channel<Buffer>,
  marker: LoopMarker,
  data: Uint8Array,
  from: Origin | undefined,
): Promise<void> | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const marked = marker.mark(b, from);
  if (marked !== undefined) return marked.then(() => (ch.publish(b) ? undefined : ch.send(b)));
  return ch.publish(b) ? undefined : ch.send(b);
}

/** Runs an importer until `signal` aborts; rejects on a fatal error. */
export async function runImport(
  o: Resolved,
  nc: NatsConnection,
  stats: BridgeStats,
  signal: AbortSignal,
  ready: () => void,
): Promise<void> {
  const dirOpt = o.dir === undefined ? {} : { dir: o.dir };
  const ch = open<Buffer>(o.channel, { codec: 'raw', create: o.create, ...dirOpt });
  const marker = new LoopMarker(o.channel, o.dir);
  let seen = new Seen();
  try {
    if (!o.jetstream) {
      // Each message is looked at as the client parses it; the ones of one socket read are
      // published together (./deliver.ts).
      const delivery = new Delivery(ch, marker, (n) => {
        stats.forwarded += n;
      });
      const reader = new HeaderReader();
      const onMsg = (err: Error | null, m: Msg): void => {
        if (err !== null) {
          stats.lastEvent = `subscription: ${oneLine(err)}`;
          return;
        }
        const { h, data } = reader.read(m);
        if (h.origin === o.origin) {
          stats.skipped += 1;
          return;
        }
        stats.lost += seen.gap(h);
        if (h.tick) return;
        delivery.push(data);
      };
      const sub = nc.subscribe(o.subject, { callback: onMsg });
      await nc.flush(); // the server has the subscription
      ready();
      const stopped = new Promise<void>((res) => {
        if (signal.aborted) res();
        signal.addEventListener('abort', () => res(), { once: true });
      });
      try {
        await Promise.race([stopped, delivery.failed, sub.closed]);
      } finally {
        sub.unsubscribe();
        // What was received before the stop goes in (unless the channel stays full).
        await Promise.race([delivery.idle(), sleep(1000, new AbortController().signal)]);
      }
      return;
    }
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, o, o.subject);
    await ensureConsumer(jsm, o);
    seen = new Seen(recoverPublished(o.channel, o.dir));
    ready();
    const js = jetstream(nc);
    // Tests only: die (SIGKILL) right after the N-th local publish, before its ack.
    const dieAfter = Number(process.env.SHMRING_BRIDGE_TEST_DIE_AFTER_PUBLISH ?? Number.NaN);
    let wait = 50;
    while (!signal.aborted) {
      try {
        const consumer = await js.consumers.get(o.stream, o.durable);
        const msgs = await consumer.consume({ max_messages: 512 });
        const stop = () => void msgs.stop();
        signal.addEventListener('abort', stop, { once: true });
        try {
          for await (const m of msgs as AsyncIterable<JsMsg>) {
            wait = 50;
            const h = fromHeaders(m.headers);
            if (h.tick) {
              // a core exporter's tick captured by the stream: not a message
            } else if (h.origin === o.origin) stats.skipped += 1;
            else {
              const from = seen.take(h, m.redelivered);
              if (from === 'duplicate') stats.duplicates += 1;
              else {
                const w = deliver(ch, marker, m.data, from);
                if (w !== undefined) await w;
                stats.forwarded += 1;
                if (stats.forwarded === dieAfter) process.kill(process.pid, 'SIGKILL');
              }
            }
            m.ack();
          }
        } finally {
          signal.removeEventListener('abort', stop);
        }
      } catch (e) {
        stats.lastEvent = `consume: ${oneLine(e)}`;
      }
      await sleep(wait, signal);
      wait = backoff(wait);
    }
  } finally {
    marker.close();
    ch.close();
  }
}
