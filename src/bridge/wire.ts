/**
 * The `Shmring-*` headers on the wire, made cheap for the core bridge's hot path.
 *
 * - Export: {@link HeaderTemplate} encodes the headers that stay the same for a whole
 *   exporter run (origin, source, session, codec) once, through the client's own `MsgHdrs`
 *   (so they are checked and encoded exactly as the client does), and per message only
 *   appends `Shmring-Position` and `Shmring-Seq`. The client's `publish` asks a headers
 *   object only for `encode()`.
 * - Import: {@link readHeaders} takes the few headers the importer needs straight from the
 *   message's header block (one decode, no map), falling back to the client's parsed
 *   `headers` when the message does not expose its raw bytes.
 */
import { headers, type Msg, type MsgHdrs } from '@nats-io/transport-node';

export const H_ORIGIN = 'Shmring-Origin';
export const H_SOURCE = 'Shmring-Source';
export const H_POSITION = 'Shmring-Position';
export const H_SESSION = 'Shmring-Session';
export const H_SEQ = 'Shmring-Seq';
export const H_CODEC = 'Shmring-Codec';
/** Core: an empty message saying `Shmring-Seq` is the last one sent (so tail losses count). */
export const H_TICK = 'Shmring-Tick';

const CRLF = '\r\n';

/** What the client's `publish` uses of a headers object (its `MsgHdrs` implementation has it). */
interface Encodable {
  encode(): Uint8Array;
}

/** The constant headers of one exporter run, and the per-message ones appended to them. */
export class HeaderTemplate {
  /** `NATS/1.0\r\n<constant headers>\r\n` (without the blank line that ends the block). */
  readonly #prefix: Buffer;
  /** The constant headers as a `MsgHdrs` (JetStream publishes add their own to a copy). */
  readonly #fixed: Array<[string, string]>;

  constructor(fixed: Array<[string, string | undefined]>) {
    const h = headers();
    this.#fixed = [];
    for (const [k, v] of fixed) {
      if (v === undefined) continue;
      h.set(k, v); // checks the value as the client does (no CR or LF)
      this.#fixed.push([k, v]);
    }
    const all = Buffer.from((h as unknown as Encodable).encode());
    // The client ends the block with an empty line: keep everything before it.
    this.#prefix = all.subarray(0, all.length - CRLF.length);
  }

  /** The encoded header block with `Shmring-Position` and `Shmring-Seq` appended. */
  encode(position: number, seq: number): Uint8Array {
    const tail = `${H_POSITION}: ${position}${CRLF}${H_SEQ}: ${seq}${CRLF}${CRLF}`;
    const p = this.#prefix;
    const b = Buffer.allocUnsafe(p.length + tail.length);
    p.copy(b, 0);
    b.write(tail, p.length, 'latin1');
    return b;
  }

  /** A headers object for `nc.publish` whose encoding is {@link encode}'s. */
  wire(position: number, seq: number): MsgHdrs {
    const bytes = this.encode(position, seq);
    const h: Encodable = { encode: () => bytes };
    return h as unknown as MsgHdrs;
  }

  /** A full `MsgHdrs` (for JetStream publishes, which add their own headers). */
  full(position: number, seq: number): MsgHdrs {
    const h = headers();
    for (const [k, v] of this.#fixed) h.set(k, v);
    h.set(H_POSITION, String(position));
    h.set(H_SEQ, String(seq));
    return h;
  }
}

/** What an importer reads of a message's headers. */
export interface BridgeHeaders {
  origin: string | undefined;
  source: string | undefined;
  session: string | undefined;
  position: number;
  seq: number;
  tick: boolean;
}

/** The raw parts of the client's message, when it has them (checked at each use). */
interface RawMsg {
  _rdata?: unknown;
  _msg?: { hdr?: unknown };
}

const decoder = new TextDecoder();

/** The `Shmring-*` headers of `m` (fields missing when the message has no such header). */
export function readHeaders(m: Msg): BridgeHeaders {
  const raw = m as unknown as RawMsg;
  const hdr = raw._msg?.hdr;
  const data = raw._rdata;
  if (typeof hdr === 'number' && data instanceof Uint8Array && hdr <= data.length) {
    if (hdr < 0) return parse('');
    return parse(decoder.decode(data.subarray(0, hdr)));
  }
  return fromHeaders(m.headers);
}

/** The `Shmring-*` headers of a parsed `MsgHdrs`. */
export function fromHeaders(h: MsgHdrs | undefined): BridgeHeaders {
  return {
    origin: h?.get(H_ORIGIN) || undefined,
    source: h?.get(H_SOURCE) || undefined,
    session: h?.get(H_SESSION) || undefined,
    position: num(h?.get(H_POSITION)),
    seq: num(h?.get(H_SEQ)),
    tick: h?.get(H_TICK) === '1',
  };
}

function num(s: string | undefined): number {
  return s === undefined || s === '' ? Number.NaN : Number(s);
}

/** Parses a header block `NATS/1.0\r\nK: V\r\n...\r\n\r\n`; the first value of a key wins. */
export function parse(block: string): BridgeHeaders {
  const r: BridgeHeaders = {
    origin: undefined,
    source: undefined,
    session: undefined,
    position: Number.NaN,
    seq: Number.NaN,
    tick: false,
  };
  let at = block.indexOf(CRLF);
  if (at < 0) return r;
  at += 2;
  let seqSeen = false;
  let posSeen = false;
  while (at < block.length) {
    let end = block.indexOf(CRLF, at);
    if (end < 0) end = block.length;
    if (end === at) break; // the empty line ending the block
    const colon = block.indexOf(':', at);
    if (colon > at && colon < end) {
      const k = block.slice(at, colon).trim().toLowerCase();
      const v = block.slice(colon + 1, end).trim();
      switch (k) {
        case 'shmring-origin':
          r.origin ??= v;
          break;
        case 'shmring-source':
          r.source ??= v;
          break;
        case 'shmring-session':
          r.session ??= v;
          break;
        case 'shmring-position':
          if (!posSeen) r.position = num(v);
          posSeen = true;
          break;
        case 'shmring-seq':
          if (!seqSeen) r.seq = num(v);
          seqSeen = true;
          break;
        case 'shmring-tick':
          if (!r.tick) r.tick = v === '1';
          break;
      }
    }
    at = end + 2;
  }
  return r;
}
