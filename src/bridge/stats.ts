/**
 * A bridge's counters and their periodic report (text or JSON lines).
 */

/**
 * What a bridge counted since it started.
 *
 * @example
 * ```ts
 * const { forwarded, lost } = b.stats();
 * ```
 */
export interface BridgeStats {
  /** Messages carried (export: acknowledged by JetStream or flushed to the server; import: published locally). */
  forwarded: number;
  /** Export: publishes sent and not yet acknowledged (or flushed). */
  inFlight: number;
  /** Publishes tried again after a failure (same `Nats-Msg-Id`: JetStream drops the copies). */
  retried: number;
  /**
   * Messages known lost: core import, gaps in an exporter's `Shmring-Seq` (less the ones
   * that came late); core export, the publishes of a flush that failed or went unanswered
   * (not known delivered); oversize messages skipped; a channel's `overwrite` laps.
   */
  lost: number;
  /** Messages larger than the server's `max_payload` (also in `lost`). */
  oversize: number;
  /** Messages not forwarded because they came from a bridge (loop prevention). */
  skipped: number;
  /** Duplicates an importer dropped (a position it already published). */
  duplicates: number;
  /** Times the connection came back. */
  reconnects: number;
  /** Whether the connection is up now. */
  connected: boolean;
  /** The last error or event worth telling, if any. */
  lastEvent?: string;
}

export function emptyStats(): BridgeStats {
  return {
    forwarded: 0,
    inFlight: 0,
    retried: 0,
    lost: 0,
    oversize: 0,
    skipped: 0,
    duplicates: 0,
    reconnects: 0,
    connected: false,
  };
}

/** One report line of `s`. */
export function reportLine(label: string, s: BridgeStats, json: boolean): string {
  if (json) return JSON.stringify({ bridge: label, time: new Date().toISOString(), ...s });
  const ev = s.lastEvent === undefined ? '' : ` last: ${s.lastEvent}`;
  return `bridge ${label}: forwarded ${s.forwarded} in-flight ${s.inFlight} retried ${s.retried} lost ${s.lost} (oversize ${s.oversize}) skipped ${s.skipped} duplicates ${s.duplicates} reconnects ${s.reconnects} ${s.connected ? 'connected' : 'disconnected'}${ev}`;
}
