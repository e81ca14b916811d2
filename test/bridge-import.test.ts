/**
 * The core importer's way into a local channel, without and with a server:
 * - its native SHA-1 of a batch is `crypto`'s, message by message, and a bad `ends` is a
 *   typed error;
 * - its delivery through a small ring that a slow reader keeps full: every message arrives
 *   once, in order, and every one's digest is in the side channel before it; a message over
 *   a batch's slab in its place; a full `fail` channel: RingFull, the rest counted lost;
 * - a NATS message larger than the local channel takes (real server, real importer):
 *   counted (`oversize`, `lost`) and skipped, the next one delivered; with
 *   `--oversize error` the importer ends with one line; the same through JetStream (acked
 *   when skipped, left unacked when it ends the importer).
 */
import { hash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import test, { type ExecutionContext } from 'ava';
import { open } from 'shmring';
import { sleep } from './helpers.js';
import { natsMissing, spawnBridge, started, startNats } from './nats.js';

// Internal to the bridge (not exported by the package): loaded from the build.
interface DeliveryT {
  push(b: Uint8Array): void;
  idle(): Promise<void>;
  close(): void;
  readonly failed: Promise<never>;
}
const dist = (f: string) => new URL(`../../dist/${f}`, import.meta.url).href;
const { Delivery } = (await import(dist('bridge/deliver.js'))) as {
  Delivery: new (
    channel: string,
    dir: string,
    forwarded: (n: number) => void,
    lost?: (n: number) => void,
  ) => DeliveryT;
};
const { LoopMarker, sideName } = (await import(dist('bridge/loop.js'))) as {
  LoopMarker: new (channel: string, dir: string) => { close(): void };
  sideName(channel: string): string;
};
const { native } = (await import(dist('native.js'))) as {
  native: { sha1Frames(buf: Buffer, ends: Uint32Array): Buffer };
};

function host(t: ExecutionContext, tag: string): string {
  const dir = mkdtempSync(`/dev/shm/bridge-${tag}-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha1 = (b: Uint8Array): Buffer => hash('sha1', b, 'buffer');

/**
 * Message `i`: its number, then `i % 251` bytes of filler (0 to 250 past the number: copied
 * byte by byte up to 128 bytes, with `set` above).
 */
function message(i: number): Buffer {
  const b = Buffer.alloc(4 + (i % 251), i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

test('sha1Frames: the digest of each message of a batch, as crypto has it', (t) => {
  const msgs = [Buffer.alloc(0), Buffer.from('abc'), Buffer.alloc(64, 7), Buffer.alloc(1000, 1)];
  const buf = Buffer.concat(msgs);
  const ends = new Uint32Array(msgs.length);
  let at = 0;
  msgs.forEach((m, i) => {
    at += m.length;
    ends[i] = at;
  });
  const d = native.sha1Frames(buf, ends);
  t.is(d.length, 20 * msgs.length);
  msgs.forEach((m, i) => {
    t.deepEqual(d.subarray(20 * i, 20 * (i + 1)), sha1(m), `message ${i}`);
  });
  t.is(native.sha1Frames(buf, new Uint32Array(0)).length, 0);
  for (const bad of [new Uint32Array([5, 3]), new Uint32Array([buf.length + 1])]) {
    const e = t.throws(() => native.sha1Frames(buf, bad));
    t.is((e as { code?: string }).code, 'InvalidArgument');
  }
});

/**
 * Channel `dst` in a new directory with its side channel, as an importer has them, both
 * joined by this test before anything is published (they see every record), and a Delivery
 * into it counting what went in and what was lost; all closed when the test ends.
 */
function setup(t: ExecutionContext, tag: string, opts: object) {
  const dir = host(t, tag);
  const ch = open<Buffer>('dst', { create: true, codec: 'raw', dir, ...opts });
  const marker = new LoopMarker('dst', dir); // creates the side channel, as the importer does
  const side = open<Buffer>(sideName('dst'), { codec: 'raw', dir });
  side.receiveSync(0);
  ch.receiveSync(0);
  const counts = { forwarded: 0, lost: 0 };
  const delivery = new Delivery(
    'dst',
    dir,
    (n) => {
      counts.forwarded += n;
    },
    (n) => {
      counts.lost += n;
    },
  );
  t.teardown(() => {
    delivery.close();
    marker.close();
    side.close();
    ch.close();
  });
  return { ch, side, delivery, counts };
}

test('Delivery through a small ring kept full: each message once, in order, its digest first', async (t) => {
  const N = 20_000;
  const { ch, side, delivery, counts } = setup(t, 'deliver', {
    capacity: 4096,
    maxMessageSize: 512,
  });
  const got: Buffer[] = [];
  const digests: Buffer[] = [];
  const take = (): void => {
    for (;;) {
      const d = side.receiveSync(0);
      if (d === undefined) break;
      digests.push(Buffer.from(d.value));
    }
    // A few at a time: the ring stays full, the delivery waits for room again and again.
    for (let k = 0; k < 7; k++) {
      const m = ch.receiveSync(0);
      if (m === undefined) break;
      got.push(Buffer.from(m.value));
      // Its digest was published before it: it is among those taken, in its place.
      const d = digests[got.length - 1];
      if (d === undefined || !d.equals(sha1(m.value))) {
        throw new Error(`message ${got.length - 1} came before its digest`);
      }
    }
  };
  // Pushed in bursts, as socket reads hand them over, while the reader is slow.
  for (let i = 0; i < N; ) {
    for (const end = Math.min(N, i + 300); i < end; i++) delivery.push(message(i));
    take();
    await sleep(0);
  }
  const deadline = Date.now() + 60_000;
  while (got.length < N && Date.now() < deadline) {
    take();
    await sleep(1);
  }
  await delivery.idle();
  t.is(got.length, N);
  t.is(counts.forwarded, N);
  t.true(
    got.every((m, i) => m.equals(message(i))),
    'every message once, in order',
  );
  t.is(digests.length, N);
});

test('Delivery: a message larger than a batch gets a batch of its own, in its place', async (t) => {
  const { ch, side, delivery } = setup(t, 'deliver-big', {
    capacity: 1 << 20,
    maxMessageSize: 256 * 1024,
  });
  const big = Buffer.alloc(200 * 1024, 7); // over the 128 KiB of a batch's slab
  const sent = [message(1), big, message(2)];
  for (const m of sent) delivery.push(m);
  await delivery.idle();
  const got = [0, 1, 2].map(() => Buffer.from(ch.receiveSync(0)?.value ?? Buffer.alloc(0)));
  t.deepEqual(got, sent);
  const digests = [0, 1, 2].map(() => Buffer.from(side.receiveSync(0)?.value ?? Buffer.alloc(0)));
  t.deepEqual(digests, sent.map(sha1));
});

test('Delivery into a full `fail` channel: it fails with RingFull, and what did not go in is counted lost', async (t) => {
  // The test's subscriber reads nothing: the ring fills.
  const { ch, delivery, counts } = setup(t, 'deliver-fail', {
    capacity: 4096,
    maxMessageSize: 512,
    policy: 'fail',
  });
  for (let i = 0; i < 200; i++) delivery.push(message(i));
  const e = await t.throwsAsync(delivery.failed);
  t.is((e as { code?: string }).code, 'RingFull');
  await delivery.idle();
  const { forwarded, lost } = counts;
  t.true(forwarded > 0 && forwarded < 200, `forwarded ${forwarded}`);
  t.is(forwarded + lost, 200);
  // What went in is the first `forwarded`, in order.
  for (let i = 0; i < forwarded; i++) t.deepEqual(ch.receiveSync(0)?.value, message(i));
  t.is(ch.receiveSync(0), undefined);
});

/**
 * A server, host B's directory with channel `dst` of 64-byte messages, what arrives there,
 * and a client of the server; all stopped and removed when the test ends.
 */
async function smallChannel(t: ExecutionContext) {
  // Never a silent pass: without a server the test fails with how to install it.
  if (natsMissing !== undefined) throw new Error(natsMissing);
  const nats = await startNats(t);
  const b = host(t, 'b');
  const ch = open<Buffer>('dst', { create: true, codec: 'raw', dir: b, maxMessageSize: 64 });
  const got: Buffer[] = [];
  const sub = ch.messages().subscribe((m) => got.push(Buffer.from(m)));
  t.teardown(() => {
    sub.unsubscribe();
    ch.close();
  });
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  return { nats, b, ch, got, nc };
}

test.serial(
  'import: a message larger than the channel takes is counted and skipped, or with --oversize error the end',
  async (t) => {
    const { nats, b, ch, got, nc } = await smallChannel(t);

    const imp = spawnBridge(t, ['import', 'big', 'dst', '--nats', nats.url, '--dir', b]);
    await started(imp);
    nc.publish('big', Buffer.alloc(65, 1)); // one byte too many
    nc.publish('big', Buffer.alloc(64, 2));
    await nc.flush();
    const end = Date.now() + 30_000;
    while (got.length < 1 && Date.now() < end) await sleep(20);
    await sleep(300);
    const r = await imp.stop();
    t.deepEqual(got, [Buffer.alloc(64, 2)]);
    t.is(r?.oversize, 1);
    t.is(r?.lost, 1);
    t.is(r?.forwarded, 1);
    t.regex(String(r?.lastEvent), /65-byte message exceeds channel "dst"'s maxMessageSize 64/);

    const strict = spawnBridge(t, [
      'import',
      'big',
      'dst',
      '--nats',
      nats.url,
      '--dir',
      b,
      '--oversize',
      'error',
    ]);
    await started(strict);
    nc.publish('big', Buffer.alloc(100));
    await nc.flush();
    t.is(await strict.exit, 1);
    t.regex(
      strict.stderr().trim(),
      /^shmring bridge import: a 100-byte message exceeds channel "dst"'s maxMessageSize 64$/,
    );
    // The channel stays usable.
    t.true(ch.publish(Buffer.from('after')));
  },
);

test.serial(
  'JetStream import: an oversize message is counted, acked and skipped, or with --oversize error left unacked and the end',
  async (t) => {
    const { nats, b, ch, got, nc } = await smallChannel(t);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BIG', subjects: ['jbig'] });
    const js = jetstream(nc);
    await js.publish('jbig', Buffer.alloc(65, 1)); // one byte too many
    await js.publish('jbig', Buffer.alloc(64, 2));
    const args = ['import', 'jbig', 'dst', '--nats', nats.url, '--dir', b, '--jetstream'];
    const opts = ['--stream', 'BIG', '--durable', 'imp'];

    const imp = spawnBridge(t, [...args, ...opts]);
    await started(imp);
    const end = Date.now() + 30_000;
    while (got.length < 1 && Date.now() < end) await sleep(20);
    await sleep(300);
    const r = await imp.stop();
    t.deepEqual(got, [Buffer.alloc(64, 2)]);
    t.like(r, { oversize: 1, lost: 1, forwarded: 1 });
    // Both acked: nothing left for the consumer.
    t.is((await jsm.consumers.info('BIG', 'imp')).num_ack_pending, 0);
    t.is((await jsm.consumers.info('BIG', 'imp')).num_pending, 0);

    await js.publish('jbig', Buffer.alloc(100));
    const strict = spawnBridge(t, [...args, ...opts, '--oversize', 'error']);
    t.is(await strict.exit, 1);
    t.regex(
      strict.stderr().trim(),
      /^shmring bridge import: a 100-byte message exceeds channel "dst"'s maxMessageSize 64$/,
    );
    // Left unacked: it is still the consumer's.
    const info = await jsm.consumers.info('BIG', 'imp');
    t.is(info.num_ack_pending + info.num_pending, 1);
    t.is(got.length, 1);
    // The channel stays usable.
    t.true(ch.publish(Buffer.from('after')));
  },
);
