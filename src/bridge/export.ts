/**
 * The exporting bridge: every message of a local channel is published to a NATS subject,
 * bytes untouched, with the `Shmring-*` headers (see ./index.ts).
 *
 * It takes the channel's records as a subscriber whose cursor moves only when told
 * (./reader.ts), and drains only as fast as NATS takes them: when NATS cannot keep up, the
 * channel's policy decides (block holds local producers back; overwrite laps the bridge, and
 * the lap is counted as lost). Idle, it waits for the next record on its own thread in 1 ms
 * slices between turns of the event loop for a second after the last one (a quicker
 * wake-up), then on the subscription's waiter thread (the event loop free).
 *
 * - Core NATS: a flush (a round trip to the server) after every `maxInFlight / 2`
 *   publishes, at most one outstanding, bounds what is unflushed to `maxInFlight`; while the
 *   server is away the flush waits (nothing more is drained). At-most-once. The headers that
 *   stay the same for the run are encoded once (./wire.ts). A flush not answered within
 *   {@link FLUSH_TIMEOUT_MS} means the server stopped reading this connection (a server with
 *   a small `max_pending` stalls a fast producer's reads while a subscriber's pending bytes
 *   wait for that very read to end): the exporter counts what the flush covered as lost,
 *   forces a reconnect and halves its flush window for the rest of the run.
 * - JetStream: the bridge is the channel's named subscriber `durable`; each record is
 *   published with `Nats-Msg-Id: <channel>@<created-at>:<position>` and is consumed (its
 *   cursor moved past it) only once JetStream acknowledged it; a failed publish is retried
 *   with the same id after a backoff, so the server drops the copies. At-least-once into the
 *   stream, and with the id no duplicate in it.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { makeError } from '../errors.js';
import { backoff, oneLine, sleep } from './connect.js';
import { LoopFilter } from './loop.js';
import type { Resolved } from './options.js';
import { RecordReader } from './reader.js';
import type { BridgeStats } from './stats.js';
import { ensureStream } from './stream.js';
import {
  Framer,
  H_CODEC,
  H_ORIGIN,
  H_SEQ,
  H_SESSION,
  H_SOURCE,
  H_TICK,
  HeaderTemplate,
} from './wire.js';

/** Core: an idle exporter repeats its tick this often. */
const TICK_MS = 1000;

/**
 * For this long after it last took a record, an idle exporter waits for the next one on its
 * own thread (a quicker wake-up), giving the event loop a turn every {@link TURN_MS}; then on
 * the subscription's waiter thread (the event loop free). The cost while it lasts: about a
 * thousand wake-ups a second (the wait sleeps at once: strategy `block`, ./reader.ts).
 */
const HOT_MS = 1000;
const TURN_MS = 1;

/** Core: a flush not answered within this long counts as failed (the connection is redone). */
export const FLUSH_TIMEOUT_MS = 5000;

/** One publish in flight. */
interface Flight {
  position: number;
  msgID: string;
  data: Buffer;
  h: MsgHdrs;
  /** Settled: `true` acknowledged, `false` failed, `undefined` pending. */
  ok: boolean | undefined;
  settled: Promise<void>;
}

/** Runs an exporter until `signal` aborts; rejects on a fatal error. */
export async function runExport(
  o: Resolved,
  nc: NatsConnection,
  stats: BridgeStats,
  signal: AbortSignal,
  ready: () => void,
): Promise<void> {
  const durable = o.jetstream || o.durableGiven ? o.durable : undefined;
  // Join the side channel first: every import announced from now on is seen (./loop.ts).
  const filter = new LoopFilter(o.channel, o.dir, durable);
  let reader: RecordReader | undefined;
  try {
    reader = new RecordReader(o.channel, o.dir, durable, (n) => {
      stats.lost += n;
    });
    const source = `${o.channel}@${reader.createdAtMs}`;
    const session = `${process.pid}-${Date.now().toString(36)}`;
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const js = o.jetstream ? jetstream(nc) : undefined;
    if (o.jetstream) await ensureStream(await jetstreamManager(nc), o, o.subject);
    ready();
    let seq = 0;
    const template = new HeaderTemplate([
      [H_ORIGIN, o.origin],
      [H_SOURCE, source],
      [H_SESSION, session],
      [H_CODEC, o.codec],
    ]);
    const framer = new Framer(nc, o.subject, template, (data, h) =>
      nc.publish(o.subject, data, { headers: h }),
    );
    // The most header bytes a message takes (the server counts them in `max_payload`; the
    // framer does not check): the run's own, the two numbers, and JetStream's id and
    // expected-last-id (each about as long as the source and a position) with their names.
    const overhead = template.prefix.length + 80 + (js === undefined ? 0 : 2 * source.length + 160);
    /** Core: published since the last flush started; the last one's position. */
    let unflushed = 0;
    let lastPosition = -1;
    /** Core: the flush outstanding (at most one), and how many publishes it covers. */
    let flushing: Promise<void> | undefined;
    let flushingCount = 0;
    /** Core: flush after this many publishes, so that at most `maxInFlight` are unflushed. */
    let window = Math.max(1, Math.floor(o.maxInFlight / 2));
    /** Core: a flush timed out; the next publishes go in smaller windows. */
    const shrink = () => {
      window = Math.max(1, Math.floor(window / 2));
    };
    let tickedAt = 0;
    /**
     * Whether a record was taken since the exporter last went idle; when it last went idle
     * after records (so: about when the last one was taken); when the event loop last had a
     * turn. (A clock read per idle turn, none per record.)
     */
    let took = false;
    let busyAt = Number.NEGATIVE_INFINITY;
    let turnAt = performance.now();
    /** JetStream: in order; the head is the oldest. */
    const flights: Flight[] = [];
    /** JetStream: after a start or a failure, publish one at a time until caught up. */
    let resync = true;
    /** JetStream: the id of the last message sent (the next one's expected predecessor). */
    let prevID = '';
    let retryWait = 50;
    let committed = -1;
    const commit = (position: number) => {
      if (durable === undefined || position <= committed) return;
      committed = position;
      reader?.commit(position);
    };
    /** Core: flushes what was published (after the outstanding flush, if any, is done). */
    const startFlush = async () => {
      framer.send(); // the frames go before the flush's PING
      if (flushing !== undefined) await flushing;
      if (unflushed === 0) return;
      const n = unflushed;
      const position = lastPosition;
      unflushed = 0;
      flushingCount = n;
      const p: Promise<void> = flushed(nc, stats, n, signal, shrink).then(() => {
        commit(position);
        if (flushing === p) {
          flushing = undefined;
          flushingCount = 0;
        }
        stats.inFlight = unflushed + flushingCount;
      });
      flushing = p;
    };
    while (!signal.aborted) {
      if (js !== undefined) {
        // Consume the acknowledged prefix; on a failure, go back to one at a time.
        while (flights.length > 0 && flights[0]?.ok !== undefined) {
          const f = flights[0] as Flight;
          if (f.ok) {
            flights.shift();
            stats.forwarded += 1;
            commit(f.position);
            retryWait = 50;
          } else {
            // Everything after it was refused or may have been stored: wait for all, then
            // send them again one by one (their ids make copies harmless).
            await Promise.all(flights.map((x) => x.settled));
            const again = flights.splice(0);
            stats.retried += again.length;
            await sleep(retryWait, signal);
            retryWait = backoff(retryWait);
            for (const x of again) {
              if (signal.aborted) return;
              await publishOne(js, o, x, stats, signal);
              if (signal.aborted) return;
              stats.forwarded += 1;
              commit(x.position);
            }
            resync = true;
          }
        }
        stats.inFlight = flights.length;
        if (flights.length >= o.maxInFlight) {
          await Promise.race(flights.map((x) => x.settled));
          continue;
        }
      }
      if (js === undefined && !stats.connected) {
        // Core, the server away: what the client holds now is dropped when it reconnects.
        await sleep(50, signal);
        continue;
      }
      const m = reader.take();
      if (m === undefined) {
        if (unflushed > 0) {
          await startFlush();
          continue;
        }
        if (flights.length > 0) {
          await Promise.race(flights.map((x) => x.settled));
          continue;
        }
        if (js === undefined && seq > 0 && Date.now() - tickedAt >= TICK_MS) {
          // Idle: tell importers how many were sent, so that losses at the end count too.
          framer.send();
          const h = headers();
          h.set(H_ORIGIN, o.origin);
          h.set(H_SESSION, session);
          h.set(H_SEQ, String(seq));
          h.set(H_TICK, '1');
          nc.publish(o.subject, new Uint8Array(0), { headers: h });
          tickedAt = Date.now();
        }
        if (took) {
          took = false;
          busyAt = performance.now();
        }
        if (performance.now() - busyAt < HOT_MS) {
          // Busy a moment ago: the next record is waited for on this thread, in slices with
          // a turn of the event loop (its I/O, timers, signals) at least every TURN_MS.
          if (performance.now() - turnAt >= TURN_MS) {
            await new Promise(setImmediate);
            turnAt = performance.now();
          } else reader.waitHere(TURN_MS);
          continue;
        }
        await reader.wait(200, signal);
        continue;
      }
      took = true;
      if (filter.imported(m.value, reader.drains)) {
        stats.skipped += 1;
        if (flights.length === 0 && unflushed === 0 && flushing === undefined) commit(m.position);
        continue;
      }
      if (m.value.length > maxPayload - overhead) {
        stats.oversize += 1;
        stats.lost += 1;
        stats.lastEvent = `a ${m.value.length}-byte message at position ${m.position} exceeds the server's max_payload ${maxPayload}`;
        if (o.oversize === 'error') throw makeError('MessageTooLarge', stats.lastEvent);
        continue;
      }
      seq += 1;
      if (js === undefined) {
        framer.publish(m.value, m.position, seq);
        unflushed += 1;
        lastPosition = m.position;
        stats.inFlight = unflushed + flushingCount;
        if (unflushed >= window) await startFlush();
        continue;
      }
      const h = template.full(m.position, seq);
      const msgID = `${source}:${m.position}`;
      if (resync) {
        // One at a time, no expectation: the stream's last message is not known.
        const f = flight(m.position, msgID, m.value, h);
        await publishOne(js, o, f, stats, signal);
        if (signal.aborted) return;
        stats.forwarded += 1;
        commit(m.position);
        prevID = msgID;
        resync = false;
        continue;
      }
      // Windowed: each publish expects its predecessor to be the stream's last message, so
      // the stream keeps the channel's order even when a publish in the middle fails.
      const f = flight(m.position, msgID, m.value, h);
      const expect = prevID;
      f.settled = js
        .publish(o.subject, m.value, {
          msgID,
          headers: h,
          timeout: 5000,
          expect: { lastMsgID: expect },
        })
        .then(
          () => {
            f.ok = true;
          },
          (e: unknown) => {
            f.ok = false;
            stats.lastEvent = `publish: ${oneLine(e)}`;
          },
        );
      prevID = msgID;
      flights.push(f);
    }
    // Stopped: what is published is flushed by the connection's drain; count it if it is quick.
    framer.send();
    if (flushing !== undefined)
      await Promise.race([flushing, sleep(1000, new AbortController().signal)]);
  } finally {
    filter.close();
    reader?.close();
  }
}

function flight(position: number, msgID: string, data: Buffer, h: MsgHdrs): Flight {
  return { position, msgID, data, h, ok: undefined, settled: Promise.resolve() };
}

/**
 * Waits until the server has what was published: `n` publishes are `forwarded` if the first
 * flush is answered, else counted `lost` (at-most-once: a disconnect dropped what the client
 * had not written, and a timed-out flush's publishes may never be read); then it waits until
 * a flush is answered again (retrying through reconnects), so that nothing more is drained
 * while the server is away. A flush not answered within {@link FLUSH_TIMEOUT_MS} forces a
 * reconnect and calls `shrink` when the connection is up (while it is away, the flush just
 * waits on, one try per timeout).
 */
async function flushed(
  nc: NatsConnection,
  stats: BridgeStats,
  n: number,
  signal: AbortSignal,
  shrink: () => void,
): Promise<void> {
  let wait = 50;
  let pending = n;
  while (!signal.aborted) {
    const answered = await bounded(nc.flush(), FLUSH_TIMEOUT_MS, signal).catch((e: unknown) => {
      stats.lastEvent = `flush: ${oneLine(e)}`;
      return false;
    });
    if (signal.aborted) return;
    if (answered) {
      stats.forwarded += pending;
      return;
    }
    stats.lost += pending;
    pending = 0;
    if (answered === undefined) {
      // Connected: the server stopped reading us. Away: the client is reconnecting already.
      if (stats.connected) {
        stats.lastEvent = `flush: no answer from the server in ${FLUSH_TIMEOUT_MS} ms (it stopped reading this connection); reconnecting`;
        shrink();
        await nc.reconnect().catch(() => {});
      }
      continue;
    }
    await sleep(wait, signal);
    wait = backoff(wait);
  }
}

/** `true` once `p` resolves, `undefined` after `ms` (or an abort); rejects with `p`. */
function bounded(p: Promise<void>, ms: number, signal: AbortSignal): Promise<true | undefined> {
  p.catch(() => {}); // a flush given up on is rejected later, by the reconnect
  return new Promise((res, rej) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      res(undefined);
    }
    signal.addEventListener('abort', done);
    p.then(
      () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        res(true);
      },
      (e: unknown) => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        rej(e);
      },
    );
  });
}

/** Publishes one message to JetStream until it is acknowledged (same id on every try). */
async function publishOne(
  js: ReturnType<typeof jetstream>,
  o: Resolved,
  f: Flight,
  stats: BridgeStats,
  signal: AbortSignal,
): Promise<void> {
  let wait = 50;
  while (!signal.aborted) {
    try {
      await js.publish(o.subject, f.data, { msgID: f.msgID, headers: f.h, timeout: 5000 });
      return;
    } catch (e) {
      stats.retried += 1;
      stats.lastEvent = `publish: ${oneLine(e)}`;
      await sleep(wait, signal);
      wait = backoff(wait);
    }
  }
}
