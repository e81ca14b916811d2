/**
 * The importing bridge: every NATS message on a subject (core), or every message of a
 * durable JetStream consumer, is published into a local channel, bytes untouched.
 *
 * - Each message is announced to the channel's exporters first (./loop.ts), then published;
 *   a message whose `Shmring-Origin` is this bridge's own origin is dropped (it came back).
 * - Core: at-most-once; the gaps in each exporter session's `Shmring-Seq` are counted as lost.
 * - JetStream: a message is acked only after its local publish returned (committed into the
 *   ring); a message from a source position this importer already published is a duplicate,
 *   dropped and acked. When the consumer's stream of messages fails (the server went away),
 *   it is opened again after a backoff.
 */
import { type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { open } from '../catalog.js';
import type { Channel } from '../channel.js';
import { backoff, oneLine, sleep } from './connect.js';
import { H_ORIGIN, H_POSITION, H_SEQ, H_SESSION, H_SOURCE, H_TICK } from './export.js';
import { LoopMarker } from './loop.js';
import type { Resolved } from './options.js';
import type { BridgeStats } from './stats.js';
import { ensureConsumer, ensureStream } from './stream.js';

/** What an importer remembers to count losses and drop duplicates. */
class Seen {
  /** Per exporter session, the last `Shmring-Seq`. */
  readonly #seq = new Map<string, number>();
  /** Per source channel, the last position published. */
  readonly #position = new Map<string, number>();

  /**
   * Core: the messages of its session missing before this one (a tick: up to and including
   * the one it names, the last sent).
   */
  gap(h: MsgHdrs | undefined, tick: boolean): number {
    const session = h?.get(H_SESSION);
    const seq = Number(h?.get(H_SEQ));
    if (!session || !Number.isInteger(seq)) return 0;
    const last = this.#seq.get(session);
    this.#seq.set(session, Math.max(seq, last ?? 0));
    return last === undefined || seq <= last ? 0 : seq - last - (tick ? 0 : 1);
  }

  /** JetStream: whether this message's source position was published already. */
  duplicate(h: MsgHdrs | undefined): boolean {
    const source = h?.get(H_SOURCE);
    const pos = Number(h?.get(H_POSITION));
    if (!source || !Number.isFinite(pos)) return false;
    const last = this.#position.get(source);
    if (last !== undefined && pos <= last) return true;
    this.#position.set(source, pos);
    return false;
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
): Promise<void> | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const marked = marker.mark(b);
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
  const seen = new Seen();
  const mine = (h: MsgHdrs | undefined): boolean => h?.get(H_ORIGIN) === o.origin;
  try {
    if (!o.jetstream) {
      const sub = nc.subscribe(o.subject);
      await nc.flush(); // the server has the subscription
      ready();
      signal.addEventListener('abort', () => sub.unsubscribe(), { once: true });
      for await (const m of sub as AsyncIterable<Msg>) {
        if (mine(m.headers)) {
          stats.skipped += 1;
          continue;
        }
        const tick = m.headers?.get(H_TICK) === '1';
        stats.lost += seen.gap(m.headers, tick);
        if (tick) continue;
        const w = deliver(ch, marker, m.data);
        if (w !== undefined) await w;
        stats.forwarded += 1;
      }
      return;
    }
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, o, o.subject);
    await ensureConsumer(jsm, o);
    ready();
    const js = jetstream(nc);
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
            if (m.headers?.get(H_TICK) === '1') {
              // a core exporter's tick captured by the stream: not a message
            } else if (mine(m.headers)) stats.skipped += 1;
            else if (seen.duplicate(m.headers)) stats.duplicates += 1;
            else {
              const w = deliver(ch, marker, m.data);
              if (w !== undefined) await w;
              stats.forwarded += 1;
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
