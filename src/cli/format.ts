/**
 * How the `shmring` command prints things: byte sizes, text tables, JSON that carries binary
 * values, a listing's JSON and `stat`'s text.
 */
import type { ChannelListing, ChannelStats } from '../index.js';

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * Left-aligned text table. A row shorter than `head` ends in a cell that spans the rest
 * (an error message): it neither sets nor follows the widths of the columns it spans.
 */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) =>
    Math.max(
      h.length,
      ...rows.map((r) => (r.length === head.length || i < r.length - 1 ? (r[i] ?? '') : '').length),
    ),
  );
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** JSON that also carries what msgpack can decode to: binary, bigint, undefined. */
export function toJson(value: unknown): string {
  return (
    JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Uint8Array) return { $binary: Buffer.from(v).toString('base64') };
      // JSON.stringify hands Buffers to the replacer already converted by toJSON.
      if (
        v !== null &&
        typeof v === 'object' &&
        (v as { type?: unknown }).type === 'Buffer' &&
        Array.isArray((v as { data?: unknown }).data)
      ) {
        return { $binary: Buffer.from((v as { data: number[] }).data).toString('base64') };
      }
      return v;
    }) ?? 'null'
  );
}

export function listingJson(l: ChannelListing): unknown {
  if (l.summary !== undefined) return l.summary;
  return { name: l.name, error: { code: l.error?.code, message: l.error?.message } };
}

export function statText(s: ChannelStats): string {
  const header = [
    `channel        ${s.name}`,
    `kind           ${s.kind}`,
    `sync           ${s.sync}`,
    `policy         ${s.policy}`,
    ...(s.kind === 'queue'
      ? [
          `delivery       ${s.delivery}${s.ackTimeoutMs > 0 ? ` (ack timeout ${s.ackTimeoutMs} ms)` : ''}`,
        ]
      : []),
    `capacity       ${bytes(s.capacity)} (${s.capacity})`,
    `max message    ${bytes(s.maxMessageSize)}`,
    `max parts      ${s.maxParticipants}`,
    `mode           0${s.mode.toString(8)}`,
    `creator        pid ${s.creatorPid} (${s.creatorAlive ? 'alive' : 'dead'})`,
    `created        ${new Date(s.createdAtMs).toISOString()}`,
    `tail           ${s.tail}`,
    `bytes used     ${bytes(s.bytesUsed)} (${s.bytesUsed})`,
    `stale          ${s.stale ? 'yes' : 'no'}`,
  ].join('\n');
  if (s.participants.length === 0) return `${header}\n\nno participants`;
  const acked = s.delivery === 'at-least-once';
  const rows = s.participants.map((p) => [
    String(p.slot),
    p.role,
    String(p.pid),
    p.away ? 'away' : p.alive ? 'yes' : 'no',
    String(p.messages),
    String(p.lost),
    p.role === 'subscriber' ? bytes(p.lag) : '',
    new Date(p.heartbeatMs).toISOString(),
    p.name ?? '',
    ...(acked
      ? [
          p.role === 'consumer' ? String(p.inFlight) : '',
          p.role === 'consumer' ? String(p.redelivered) : '',
        ]
      : []),
  ]);
  const columns = ['SLOT', 'ROLE', 'PID', 'ALIVE', 'MESSAGES', 'LOST', 'LAG', 'HEARTBEAT', 'NAME'];
  if (acked) columns.push('IN FLIGHT', 'REDELIVERED');
  return `${header}\n\n${table(columns, rows)}`;
}
