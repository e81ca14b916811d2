/**
 * `bridge(...)`: carry a local channel's messages to a NATS subject (`export`) or a NATS
 * subject's into a local channel (`import`), through core NATS (at-most-once, losses
 * counted) or JetStream (at-least-once end to end, duplicates removed). Bytes pass through
 * untouched: the channels are opened with codec `raw`. Each message carries the headers
 * `Shmring-Origin` (the exporting host), `Shmring-Source` (channel name and creation time),
 * `Shmring-Position`, `Shmring-Session` and `Shmring-Seq` (the exporter's run and its
 * message number, for counting core losses) and, when given, `Shmring-Codec`.
 *
 * The directions are in ./export.ts and ./import.ts, loop prevention in ./loop.ts.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBridge, oneLine } from './connect.js';
import { runExport } from './export.js';
import { runImport } from './import.js';
import { type BridgeOptions, resolve } from './options.js';
import { type BridgeStats, emptyStats, reportLine } from './stats.js';

export type { BridgeDirection, BridgeOptions } from './options.js';
export type { BridgeStats } from './stats.js';

/**
 * A running bridge.
 *
 * @example
 * ```ts
 * const b = await bridge({ direction: 'import', channel: 'orders', subject: 'orders', nats: url, create: true });
 * process.on('SIGTERM', () => void b.close());
 * await b.done;
 * ```
 */
export interface Bridge {
  /** The counters so far (a copy). */
  stats(): BridgeStats;
  /** Settles when the bridge stops: resolves after {@link Bridge.close}, rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Stops the bridge, drains and closes the connection and the channels. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a bridge. Rejects with a one-line error if the options are bad
 * (`InvalidArgumentError`), the server cannot be reached (`IoError`), the channel is
 * missing (`NotFoundError`) or, with `noCreate`, the stream is.
 *
 * @example
 * ```ts
 * const b = await bridge({ direction: 'export', channel: 'ticks', subject: 'ticks', nats: 'nats://127.0.0.1:4222' });
 * ```
 */
export async function bridge(options: BridgeOptions): Promise<Bridge> {
  const o = resolve(options);
  const counters = emptyStats();
  const nc: NatsConnection = await connectBridge(o, counters);
  const stop = new AbortController();
  const label = `${o.direction} ${o.channel} ${o.direction === 'export' ? '->' : '<-'} ${o.subject}${o.jetstream ? ` (JetStream ${o.stream})` : ''}`;
  const timer =
    o.reportMs > 0
      ? setInterval(() => o.report(reportLine(label, counters, o.json)), o.reportMs)
      : undefined;
  timer?.unref();
  const run = o.direction === 'export' ? runExport : runImport;
  // A failure of the set-up (a missing channel or stream) rejects `bridge()` itself.
  let started: (() => void) | undefined;
  const ready = new Promise<void>((res) => {
    started = res;
  });
  const done = (async () => {
    try {
      await run(o, nc, counters, stop.signal, () => started?.());
    } finally {
      if (timer !== undefined) clearInterval(timer);
      if (o.reportMs > 0) o.report(reportLine(label, counters, o.json));
      // A server that stopped reading this connection never answers the drain's flush.
      const drained = nc.drain().then(
        () => true,
        () => false,
      );
      const t = new Promise<false>((res) => setTimeout(() => res(false), 5000).unref());
      if (!(await Promise.race([drained, t]))) await nc.close().catch(() => {});
    }
  })();
  await Promise.race([ready, done]);
  done.catch(() => {});
  let closing: Promise<void> | undefined;
  return {
    stats: () => ({ ...counters }),
    done,
    close() {
      closing ??= (async () => {
        stop.abort();
        await done.catch((e) => {
          counters.lastEvent = oneLine(e);
        });
      })();
      return closing;
    },
  };
}
