/**
 * The exporting bridge: every message of a local channel is published to a NATS subject,
 * bytes untouched, with the `Shmring-*` headers (see ./index.ts).
 *
 * It reads the channel with `receiveSync(0)` (never blocking the event loop) and waits for
 * more on a doorbell (a plain subscription whose only job is to wake it), so it stops
 * draining when NATS cannot keep up: then the channel's policy decides (block holds local
 * producers back; overwrite laps the bridge, and the lap is counted as lost).
 *
 * - Core NATS: a flush after every `maxInFlight` publishes bounds what is buffered; while the
 *   server is away the flush waits (nothing more is drained). At-most-once.
 * - JetStream: the bridge is the channel's named subscriber `durable`; each record is
 *   published with `Nats-Msg-Id: <channel>@<created-at>:<position>` and is consumed (its
 *   cursor moved past it) only once JetStream acknowledged it; a failed publish is retried
 *   with the same id after a backoff, so the server drops the copies. At-least-once into the
 *   stream, and with the id no duplicate in it.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { open } from '../catalog.js';
import { makeError } from '../errors.js';
import { backoff, oneLine, sleep } from './connect.js';
import { LoopFilter } from './loop.js';
import type { Resolved } from './options.js';
import type { BridgeStats } from './stats.js';
import { ensureStream } from './stream.js';

export const H_ORIGIN = 'Shmring-Origin';
export const H_SOURCE = 'Shmring-Source';
export const H_POSITION = 'Shmring-Position';
export const H_SESSION = 'Shmring-Session';
export const H_SEQ = 'Shmring-Seq';
export const H_CODEC = 'Shmring-Codec';

/** Runs an exporter until `signal` aborts; rejects on a fatal error. */
export async function runExport(
  o: Resolved,
  nc: NatsConnection,
  stats: BridgeStats,
  signal: AbortSignal,
  ready: () => void,
): Promise<void> {
  const dirOpt = o.dir === undefined ? {} : { dir: o.dir };
  const ch = open<Buffer>(o.channel, { codec: 'raw', create: o.create, ...dirOpt });
  const durable = o.jetstream || o.durableGiven ? o.durable : undefined;
  let filter: LoopFilter | undefined;
  let wake: (() => void) | undefined;
  const bell = ch.messages({ wait: 'block' }).subscribe({
    next: () => {
      const w = wake;
      wake = undefined;
      w?.();
    },
    error: () => {},
  });
  try {
    filter = new LoopFilter(o.channel, o.dir, durable);
    const info = ch.info();
    const source = `${o.channel}@${info.createdAtMs}`;
    const session = `${process.pid}-${Date.now().toString(36)}`;
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const js = o.jetstream ? jetstream(nc) : undefined;
    if (o.jetstream) await ensureStream(await jetstreamManager(nc), o, o.subject);
    const recv = {
      ...(durable === undefined ? {} : { durable }),
      wait: 'block' as const,
      onLost: (n: number) => {
        stats.lost += n;
      },
    };
    ready();
    let seq = 0;
    let unflushed = 0;
    while (!signal.aborted) {
      const m = ch.receiveSync(0, recv);
      if (m === undefined) {
        if (unflushed > 0 && !o.jetstream) {
          await flushed(nc, stats, unflushed, signal);
          unflushed = 0;
          continue;
        }
        await new Promise<void>((res) => {
          wake = res;
          setTimeout(res, 200).unref();
          signal.addEventListener('abort', () => res(), { once: true });
        });
        wake = undefined;
        continue;
      }
      if (filter.imported(m.value)) {
        stats.skipped += 1;
        continue;
      }
      if (m.value.length > maxPayload - 512) {
        stats.oversize += 1;
        stats.lost += 1;
        stats.lastEvent = `a ${m.value.length}-byte message at position ${m.position} exceeds the server's max_payload ${maxPayload}`;
        if (o.oversize === 'error') throw makeError('MessageTooLarge', stats.lastEvent);
        continue;
      }
      seq += 1;
      const h = headers();
      h.set(H_ORIGIN, o.origin);
      h.set(H_SOURCE, source);
      h.set(H_POSITION, String(m.position));
      h.set(H_SESSION, session);
      h.set(H_SEQ, String(seq));
      if (o.codec !== undefined) h.set(H_CODEC, o.codec);
      if (js === undefined) {
        nc.publish(o.subject, m.value, { headers: h });
        unflushed += 1;
        stats.inFlight = unflushed;
        if (unflushed >= o.maxInFlight) {
          await flushed(nc, stats, unflushed, signal);
          unflushed = 0;
        }
      } else {
        await publishJs(js, o, h, m.value, `${source}:${m.position}`, stats, signal);
      }
    }
  } finally {
    bell.unsubscribe();
    filter?.close();
    ch.close();
  }
}

/** Waits until the server has what was published (retrying through reconnects). */
async function flushed(
  nc: NatsConnection,
  stats: BridgeStats,
  n: number,
  signal: AbortSignal,
): Promise<void> {
  let wait = 50;
  while (!signal.aborted) {
    try {
      await nc.flush();
      stats.forwarded += n;
      stats.inFlight = 0;
      return;
    } catch (e) {
      stats.lastEvent = `flush: ${oneLine(e)}`;
      await sleep(wait, signal);
      wait = backoff(wait);
    }
  }
}

/** Publishes one message to JetStream until it is acknowledged (same id on every try). */
async function publishJs(
  js: ReturnType<typeof jetstream>,
  o: Resolved,
  h: MsgHdrs,
  data: Buffer,
  msgID: string,
  stats: BridgeStats,
  signal: AbortSignal,
): Promise<void> {
  let wait = 50;
  stats.inFlight = 1;
  while (!signal.aborted) {
    try {
      await js.publish(o.subject, data, { msgID, headers: h, timeout: 5000 });
      stats.forwarded += 1;
      stats.inFlight = 0;
      return;
    } catch (e) {
      stats.retried += 1;
      stats.lastEvent = `publish: ${oneLine(e)}`;
      await sleep(wait, signal);
      wait = backoff(wait);
    }
  }
}
