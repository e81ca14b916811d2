/**
 * The importing bridge: every NATS message on a subject (core), or every message of a
 * durable JetStream consumer, is published into a local channel, bytes untouched.
 *
 * - Each message is announced to the channel's exporters first (./loop.ts), then published;
 *   a message whose `Shmring-Origin` is this bridge's own origin is dropped (it came back).
 * - Core: at-most-once; the gaps in each exporter session's `Shmring-Seq` are counted as lost.
 * - JetStream: a message is acked only after its local publish returned (committed into the
 *   ring); a redelivered message whose stream sequence this importer is done with, or one
 *   from a source position it already published, is a duplicate, dropped and acked, also
 *   after a restart (./recover.ts). When the consumer's stream of messages fails (the server
 *   went away), it is opened again after a backoff.
 */
import { type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { open } from '../catalog.js';
import type { Channel } from '../channel.js';
import { makeError, ShmringError } from '../errors.js';
import { backoff, oneLine, sleep } from './connect.js';
import { Delivery } from './deliver.js';
import { LoopMarker, type Origin } from './loop.js';
import type { Resolved } from './options.js';
import { JetStreamDedup, recoverPublished } from './recover.js';
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

/** What a core importer remembers to count losses. */
class Seen {
  /** Per exporter session, the last `Shmring-Seq` and its gaps. */
  readonly #seq = new Map<string, SessionSeq>();

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
  const seen = new Seen();
  const maxMessageSize = ch.info().maxMessageSize;
  /** Rejected by a message the channel cannot take when `oversize` is `'error'`. */
  let tooLarge: (e: Error) => void = () => {};
  const fatal = new Promise<never>((_, rej) => {
    tooLarge = rej;
  });
  fatal.catch(() => {});
  /** Core: an oversize message ended the importer; nothing after it goes in. */
  let ended = false;
  /**
   * A message larger than the channel takes: counted (`oversize`, `lost`) and skipped, or
   * with `oversize: 'error'` the importer's end; whether it is skipped.
   */
  const oversize = (len: number): boolean => {
    if (len <= maxMessageSize) return false;
    stats.oversize += 1;
    stats.lost += 1;
    stats.lastEvent = `a ${len}-byte message exceeds channel ${JSON.stringify(o.channel)}'s maxMessageSize ${maxMessageSize}`;
    if (o.oversize === 'error' && !o.jetstream) {
      ended = true;
      tooLarge(makeError('MessageTooLarge', stats.lastEvent));
    }
    return true;
  };
  try {
    if (!o.jetstream) {
      // Each message is looked at as the client parses it; the ones of one socket read are
      // published together (./deliver.ts).
      const delivery = new Delivery(
        o.channel,
        o.dir,
        (n) => {
          stats.forwarded += n;
        },
        (n) => {
          stats.lost += n;
        },
      );
      try {
        const reader = new HeaderReader();
        const onMsg = (err: Error | null, m: Msg): void => {
          if (ended) return;
          if (err !== null) {
            stats.lastEvent = `subscription: ${oneLine(err)}`;
            return;
          }
          const h = reader.read(m);
          if (h.origin === o.origin) {
            stats.skipped += 1;
            return;
          }
          stats.lost += seen.gap(h);
          if (h.tick) return;
          const { bytes, start, end } = reader;
          if (!oversize(end - start)) delivery.push(bytes, start, end);
        };
        const sub = nc.subscribe(o.subject, { callback: onMsg });
        await nc.flush(); // the server has the subscription
        ready();
        const stopped = new Promise<void>((res) => {
          if (signal.aborted) res();
          signal.addEventListener('abort', () => res(), { once: true });
        });
        try {
          await Promise.race([stopped, delivery.failed, sub.closed, fatal]);
        } finally {
          sub.unsubscribe();
          // What was received before the stop goes in (unless the channel stays full).
          await Promise.race([delivery.idle(), sleep(1000, new AbortController().signal)]);
        }
      } finally {
        delivery.close();
      }
      return;
    }
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, o, o.subject);
    await ensureConsumer(jsm, o);
    const dedup = new JetStreamDedup(recoverPublished(o.channel, o.dir));
    ready();
    const js = jetstream(nc);
    // Tests only: die (SIGKILL) right after the N-th local publish, before its ack; leave the
    // first delivery of stream sequence N unacked (an ack the server never got).
    const dieAfter = Number(process.env.SHMRING_BRIDGE_TEST_DIE_AFTER_PUBLISH ?? Number.NaN);
    let skipAck = Number(process.env.SHMRING_BRIDGE_TEST_SKIP_ACK ?? Number.NaN);
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
              const from = dedup.check(h, m.seq, m.redelivered);
              if (from === 'duplicate') stats.duplicates += 1;
              else if (oversize(m.data.length)) {
                // Never deliverable here: acked below so that it does not come again (with
                // `oversize: 'error'`, left unacked: the importer ends).
                if (o.oversize === 'error')
                  throw makeError('MessageTooLarge', stats.lastEvent as string);
              } else {
                const w = deliver(ch, marker, m.data, from);
                if (w !== undefined) await w;
                stats.forwarded += 1;
                if (stats.forwarded === dieAfter) process.kill(process.pid, 'SIGKILL');
              }
              dedup.done(m.seq, from);
            }
            if (m.seq === skipAck) skipAck = Number.NaN;
            else m.ack();
          }
        } finally {
          signal.removeEventListener('abort', stop);
        }
      } catch (e) {
        if (e instanceof ShmringError && e.code === 'MessageTooLarge') throw e;
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
