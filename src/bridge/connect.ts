/**
 * The NATS connection of a bridge: connect (a clear one-line error when the server cannot be
 * reached or refuses us), reconnect forever with backoff, and count what the status stream says.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { makeError } from '../errors.js';
import type { Resolved } from './options.js';
import type { BridgeStats } from './stats.js';

/** Connects to `o.nats`; throws an `Io` error (one line) if the first connection fails. */
export async function connectBridge(o: Resolved, stats: BridgeStats): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: o.nats.split(',').map((s) => s.trim()),
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      timeout: 5000,
      // Without this the client builds an Error (with its stack) for every request, ahead of
      // time: a JetStream exporter's publishes spent more than a third of their CPU on it.
      noAsyncTraces: true,
    });
  } catch (e) {
    throw makeError('Io', `cannot connect to NATS at ${o.nats}: ${oneLine(e)}`, e);
  }
  stats.connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        stats.connected = false;
        stats.lastEvent = 'disconnected';
      } else if (s.type === 'reconnect') {
        stats.connected = true;
        stats.reconnects += 1;
        stats.lastEvent = 'reconnected';
      } else if (s.type === 'slowConsumer') {
        stats.lastEvent = 'slow consumer (the server dropped messages to this bridge)';
      } else if (s.type === 'error') {
        stats.lastEvent = oneLine(s.error);
      }
    }
  })().catch(() => {});
  return nc;
}

/** An error's message on one line. */
export function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s+/g, ' ').trim();
}

/** Resolves after `ms`, or at once when `signal` is aborted. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    if (signal.aborted) return res();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      res();
    }
    signal.addEventListener('abort', done);
  });
}

/** The next backoff after `ms`: doubled, at most 2 s. */
export function backoff(ms: number): number {
  return Math.min(2000, Math.max(50, ms * 2));
}
