/**
 * The options of {@link bridge} (./index.ts) and their checks: subjects, stream and consumer
 * names, the numbers. Bad input is an `InvalidArgumentError` naming the option.
 */
import { hostname } from 'node:os';
import { invalid } from '../validate.js';

/** Which way a bridge carries messages. */
export type BridgeDirection = 'export' | 'import';

/**
 * Options of {@link bridge}.
 *
 * @example
 * ```ts
 * const b = await bridge({ direction: 'export', channel: 'orders', subject: 'orders', nats: 'nats://127.0.0.1:4222', jetstream: true });
 * ```
 */
export interface BridgeOptions {
  /** `export`: local channel → NATS; `import`: NATS → local channel. */
  direction: BridgeDirection;
  /** The local channel (opened with codec `raw`: bytes pass through untouched). */
  channel: string;
  /** The NATS subject: a literal one to export to; to import from, wildcards (`*`, `>`) allowed. */
  subject: string;
  /** The NATS server(s): a URL such as `nats://127.0.0.1:4222`, or several separated by commas. */
  nats: string;
  /** Through JetStream (at-least-once, duplicates removed) instead of core NATS (at-most-once). */
  jetstream?: boolean;
  /** The JetStream stream (default: the subject with every character but A-Z a-z 0-9 _ - made `_`). */
  stream?: string;
  /**
   * Export: the named subscriber of the local channel (default `bridge-<subject>` cut to 32
   * characters; JetStream always uses one, core only when given). Import with JetStream: the
   * durable consumer's name (default the same).
   */
  durable?: string;
  /** Import: create the local channel if missing (export: it must exist unless `create`). */
  create?: boolean;
  /** JetStream: a missing stream is an error instead of being created. */
  noCreate?: boolean;
  /** The directory of the local channel (as `open`'s `dir`). */
  dir?: string;
  /**
   * This host's identity in the `Shmring-Origin` header (default `<hostname>:<dir>`): an
   * importer drops messages whose origin is its own.
   */
  origin?: string;
  /** Export: most publishes not yet acknowledged (core: not yet flushed) at once (default 1024). */
  maxInFlight?: number;
  /**
   * A message too large to pass (export: over the server's `max_payload`; import: over the
   * local channel's `maxMessageSize`): `'count'` it and go on (default) or `'error'`.
   */
  oversize?: 'count' | 'error';
  /** A label for the `Shmring-Codec` header (what the channel's producers encode with), for tools. */
  codec?: string;
  /** Milliseconds between counter reports (default 5000; 0: none). */
  reportMs?: number;
  /** Counter reports as JSON lines instead of text. */
  json?: boolean;
  /** Where the reports go (default stderr). */
  report?: (line: string) => void;
  /** Connection name shown by the server. */
  name?: string;
}

/** The options after checks and defaults. */
export interface Resolved extends Required<Omit<BridgeOptions, 'dir' | 'codec' | 'name'>> {
  /** Whether `durable` was given (a core exporter is a named subscriber only then). */
  durableGiven: boolean;
  dir: string | undefined;
  codec: string | undefined;
  name: string;
}

const TOKEN = /^[^\s*>.]+$/;
const NAME = /^[A-Za-z0-9_-]{1,255}$/;
const DURABLE = /^[A-Za-z0-9._-]{1,30}$/;

/** Checks a subject: dot-separated tokens without white space; wildcards only where `wild`. */
export function checkSubject(subject: unknown, wild: boolean): string {
  if (typeof subject !== 'string' || subject.length === 0) {
    throw invalid(`subject must be a non-empty string, not ${JSON.stringify(subject)}`);
  }
  const tokens = subject.split('.');
  tokens.forEach((t, i) => {
    const ok = TOKEN.test(t) || (wild && (t === '*' || (t === '>' && i === tokens.length - 1)));
    if (!ok) {
      throw invalid(
        `invalid subject ${JSON.stringify(subject)}: tokens are non-empty, without white space${wild ? ", '*' a whole token, '>' the last one" : ' or wildcards (an exporter publishes to one literal subject)'}`,
      );
    }
  });
  return subject;
}

/** The default stream name of a subject. */
export function streamOf(subject: string): string {
  return subject.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 255) || 'shmring';
}

function positiveInt(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || (v === 0 && name !== 'reportMs')) {
    throw invalid(
      `${name} must be a ${name === 'reportMs' ? 'non-negative' : 'positive'} integer, not ${String(v)}`,
    );
  }
  return v;
}

/** Checks `o` and fills in the defaults. */
export function resolve(o: BridgeOptions): Resolved {
  if (o === null || typeof o !== 'object') throw invalid('bridge options must be an object');
  if (o.direction !== 'export' && o.direction !== 'import') {
    throw invalid(`direction must be 'export' or 'import', not ${JSON.stringify(o.direction)}`);
  }
  if (typeof o.channel !== 'string' || o.channel.length === 0) {
    throw invalid('channel must be a channel name');
  }
  const subject = checkSubject(o.subject, o.direction === 'import');
  if (typeof o.nats !== 'string' || o.nats.trim() === '') {
    throw invalid('nats must be a server URL such as nats://127.0.0.1:4222');
  }
  const stream = o.stream ?? streamOf(subject);
  if (!NAME.test(stream)) {
    throw invalid(
      `stream ${JSON.stringify(stream)} must be 1 to 255 characters of A-Z a-z 0-9 _ -`,
    );
  }
  const durable = o.durable ?? `bridge-${subject.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 30);
  if (!DURABLE.test(durable)) {
    throw invalid(
      `durable ${JSON.stringify(durable)} must be 1 to 30 characters of A-Z a-z 0-9 . _ -`,
    );
  }
  if (o.oversize !== undefined && o.oversize !== 'count' && o.oversize !== 'error') {
    throw invalid(`oversize must be 'count' or 'error', not ${JSON.stringify(o.oversize)}`);
  }
  return {
    direction: o.direction,
    channel: o.channel,
    subject,
    nats: o.nats,
    jetstream: o.jetstream === true,
    stream,
    durable,
    durableGiven: o.durable !== undefined,
    create: o.create === true,
    noCreate: o.noCreate === true,
    dir: o.dir,
    origin: o.origin ?? `${hostname()}:${o.dir ?? process.env.SHMRING_DIR ?? '/dev/shm'}`,
    maxInFlight: positiveInt('maxInFlight', o.maxInFlight, 1024),
    oversize: o.oversize ?? 'count',
    codec: o.codec,
    reportMs: positiveInt('reportMs', o.reportMs, 5000),
    json: o.json === true,
    report: o.report ?? ((line) => process.stderr.write(`${line}\n`)),
    name: o.name ?? `shmring-bridge ${o.direction} ${o.channel} ${subject}`,
  };
}
