/**
 * The core exporter's frames, byte for byte: what `Framer` hands the client is
 * `HPUB <subject> <header bytes> <total bytes>\r\n`, the header block the client itself
 * encodes for the run's headers and the message's position and number, the payload, CRLF,
 * at every digit-count boundary of the numbers and of the header length, across many slabs.
 * And what `HeaderReader` reads back from such blocks, one exporter's after another's.
 */
import test from 'ava';

interface Template {
  encode(position: number, seq: number): Uint8Array;
}
interface FramerT {
  publish(data: Uint8Array, position: number, seq: number): void;
  send(): void;
}
// Internal to the bridge (not exported by the package): loaded from the build.
interface Headers {
  origin: string | undefined;
  source: string | undefined;
  session: string | undefined;
  position: number;
  seq: number;
  tick: boolean;
}
const { Framer, HeaderReader, HeaderTemplate } = (await import(
  new URL('../../dist/bridge/wire.js', import.meta.url).href
)) as {
  Framer: new (
    nc: unknown,
    subject: string,
    template: Template,
    publish: (data: Uint8Array, h: unknown) => void,
  ) => FramerT;
  HeaderTemplate: new (fixed: Array<[string, string | undefined]>) => Template;
  HeaderReader: new () => {
    read(m: unknown): Headers;
    bytes: Uint8Array;
    start: number;
    end: number;
  };
};

/** The frame the NATS protocol wants for one message. */
function expected(subject: string, t: Template, data: Buffer, position: number, seq: number) {
  const h = Buffer.from(t.encode(position, seq));
  return Buffer.concat([
    Buffer.from(`HPUB ${subject} ${h.length} ${h.length + data.length}\r\n`),
    h,
    data,
    Buffer.from('\r\n'),
  ]);
}

const BOUNDARIES = [0, 1, 9, 10, 99, 100, 999, 1000, 123_456_789, 2 ** 53 - 1];

test('Framer: each frame is the protocol frame of the client-encoded headers', (t) => {
  // Origins of a few lengths, so that the header length crosses 99 -> 100 and more.
  for (const origin of ['a', 'host:/dev/shm', 'x'.repeat(40), 'y'.repeat(300)]) {
    const template = new HeaderTemplate([
      ['Shmring-Origin', origin],
      ['Shmring-Source', 'src@1700000000000'],
      ['Shmring-Codec', undefined], // left out, as an unset option is
    ]);
    const sent: Buffer[] = [];
    const nc = { protocol: { sendCommand: (b: Uint8Array) => sent.push(Buffer.from(b)) } };
    const framer = new Framer(nc, 'md.ticks', template, () => t.fail('the fallback path'));
    const want: Buffer[] = [];
    let k = 0;
    for (const position of BOUNDARIES) {
      for (const seq of BOUNDARIES) {
        const data = Buffer.alloc(k++ % 90, k & 0xff);
        framer.publish(data, position, seq);
        want.push(expected('md.ticks', template, data, position, seq));
      }
    }
    // Enough frames to fill several 64 KiB slabs.
    for (let i = 0; i < 2000; i++) {
      const data = Buffer.alloc(60, i & 0xff);
      framer.publish(data, 10_000 + i, 200 + i);
      want.push(expected('md.ticks', template, data, 10_000 + i, 200 + i));
    }
    framer.send();
    t.true(sent.length > 1, 'more than one slab');
    t.true(Buffer.concat(sent).equals(Buffer.concat(want)), `origin of ${origin.length} bytes`);
  }
});

test('Framer: a client without the protocol handler gets nc.publish with the same headers', (t) => {
  const template = new HeaderTemplate([['Shmring-Origin', 'h']]);
  const calls: Array<[Buffer, Buffer]> = [];
  const framer = new Framer({}, 's', template, (data, h) => {
    calls.push([Buffer.from(data), Buffer.from((h as { encode(): Uint8Array }).encode())]);
  });
  framer.publish(Buffer.from('abc'), 100, 9);
  framer.send();
  t.deepEqual(calls, [[Buffer.from('abc'), Buffer.from(template.encode(100, 9))]]);
});

test('HeaderReader: the numbers of every block of a run, after the first one parsed in full', (t) => {
  const template = new HeaderTemplate([
    ['Shmring-Origin', 'host:/dev/shm'],
    ['Shmring-Source', 'src@1700000000000'],
    ['Shmring-Session', '1-abc'],
  ]);
  const reader = new HeaderReader();
  /** A message as the client hands it over: header and payload bytes, the header length. */
  const msg = (h: Uint8Array, data: Buffer) => ({
    _msg: { hdr: h.length },
    _rdata: new Uint8Array(Buffer.concat([h, data])),
  });
  for (const position of BOUNDARIES) {
    for (const seq of [1, 10, 2 ** 53 - 1]) {
      const data = Buffer.from(`p${position}`);
      const h = reader.read(msg(template.encode(position, seq), data));
      t.like(h, {
        origin: 'host:/dev/shm',
        source: 'src@1700000000000',
        session: '1-abc',
        position,
        seq,
        tick: false,
      });
      t.deepEqual(Buffer.from(reader.bytes.subarray(reader.start, reader.end)), data);
    }
  }
  // Another exporter's block (another session): read in full, not taken for the first one's.
  const other = new HeaderTemplate([
    ['Shmring-Origin', 'host:/dev/shm'],
    ['Shmring-Source', 'src@1700000000000'],
    ['Shmring-Session', '2-abc'],
  ]);
  t.like(reader.read(msg(other.encode(5, 6), Buffer.alloc(0))), { session: '2-abc', seq: 6 });
  t.like(reader.read(msg(template.encode(7, 8), Buffer.alloc(0))), { session: '1-abc', seq: 8 });
});
