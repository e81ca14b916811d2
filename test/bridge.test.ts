/**
 * The NATS bridge with a real nats-server and real processes: A→NATS→B from two producer
 * processes (core and JetStream), the exporter killed -9 and restarted and the server
 * restarted (JetStream: nothing lost or duplicated), the JetStream importer killed -9
 * between its local publish and its ack (each message once), an ack the server never got
 * (its redelivery, later, dropped), a server restart and a slow
 * consumer under core (the loss counted exactly), a server with a small `max_pending` that
 * stalls the core exporter (it reconnects; every message received or counted), bridges both ways (no echo), `stat`
 * showing the exporter's lag, and bad input (`--oversize count|error` too). Under CI (env
 * `CI`) the counts are smaller; `npm run test:bridge` runs them in full.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import test, { type ExecutionContext } from 'ava';
import { type Channel, open } from 'shmring';
import { sleep, spawnFixture } from './helpers.js';
import {
  freePort,
  natsMissing,
  runBridgeCli,
  runCli,
  spawnBridge,
  started,
  startNats,
} from './nats.js';

const FULL = process.env.CI === undefined || process.env.BRIDGE_FULL !== undefined;
/** Messages per test: 100,000 from two producers in full, 10,000 under CI. */
const TOTAL = FULL ? 100_000 : 10_000;

test.beforeEach((t) => {
  // Never a silent pass: without a server every test here fails with how to install it.
  if (natsMissing !== undefined) t.fail(natsMissing);
});

/** A "host": a channel directory of its own (tmpfs), removed when the test ends. */
function host(t: ExecutionContext, tag: string): string {
  const dir = mkdtempSync(`/dev/shm/bridge-${tag}-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Counts what arrives on a channel per producer: in order, gaps, duplicates. */
class Receiver {
  readonly next = new Map<number, number>();
  total = 0;
  gaps = 0;
  dups = 0;
  /** Each distinct (producer, index) received. */
  readonly distinct = new Set<number>();
  readonly ch: Channel<Buffer>;
  constructor(t: ExecutionContext, name: string, dir: string) {
    this.ch = open<Buffer>(name, { create: true, codec: 'raw', dir, capacity: 1 << 22 });
    const sub = this.ch.messages().subscribe((m) => {
      const p = m.readUInt32LE(0);
      const i = m.readUInt32LE(4);
      this.distinct.add(p * 2 ** 32 + i);
      const want = this.next.get(p) ?? 0;
      if (i < want) this.dups += 1;
      else {
        this.gaps += i - want;
        this.next.set(p, i + 1);
      }
      this.total += 1;
    });
    t.teardown(() => {
      sub.unsubscribe();
      this.ch.close();
    });
  }
}

async function until(
  what: string | (() => string),
  cond: () => boolean,
  ms = 90_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(25);
  }
}

/** Two producer processes of `TOTAL / 2` messages each into `name` in `dir`. */
function producers(t: ExecutionContext, name: string, dir: string) {
  return [1, 2].map((id) =>
    spawnFixture(t, 'bridge-pub', [name, dir, String(id), String(TOTAL / 2)]),
  );
}

/** Starts an exporter of channel `src` in `dir` to `subject` (`extra`: more flags). */
async function exportSrc(
  t: ExecutionContext,
  url: string,
  subject: string,
  dir: string,
  extra: string[],
) {
  const exp = spawnBridge(t, [
    'export',
    'src',
    '--nats',
    url,
    '--subject',
    subject,
    '--dir',
    dir,
    ...extra,
  ]);
  await started(exp);
  return exp;
}

async function aToB(t: ExecutionContext, jetstream: boolean): Promise<void> {
  const nats = await startNats(t);
  const [a, b] = [host(t, 'a'), host(t, 'b')];
  const js = jetstream ? ['--jetstream', '--stream', 'AB'] : [];
  open('src', { create: true, codec: 'raw', dir: a }).close();
  const rx = new Receiver(t, 'dst', b);
  const imp = spawnBridge(t, ['import', 'ab', 'dst', '--nats', nats.url, '--dir', b, ...js]);
  await started(imp);
  const exp = await exportSrc(t, nats.url, 'ab', a, js);
  const ps = producers(t, 'src', a);
  await Promise.all(ps.map((p) => p.exit));
  await until(`${TOTAL} messages at B`, () => rx.total >= TOTAL);
  await sleep(300);
  const e = await exp.stop();
  const i = await imp.stop();
  t.is(rx.total, TOTAL);
  t.is(rx.gaps, 0);
  t.is(rx.dups, 0);
  t.is(rx.next.get(1), TOTAL / 2);
  t.is(rx.next.get(2), TOTAL / 2);
  t.is(e?.forwarded, TOTAL);
  t.is(i?.forwarded, TOTAL);
  t.is(i?.lost, 0);
}

test.serial('core: A→NATS→B, two producers, every message in each producer order', (t) =>
  aToB(t, false),
);

test.serial('JetStream: A→NATS→B, two producers, every message in each producer order', (t) =>
  aToB(t, true),
);

test.serial(
  'JetStream: exporter kill -9 ten times, then a server restart: 0 lost, 0 duplicated',
  async (t) => {
    const nats = await startNats(t);
    const [a, b] = [host(t, 'a'), host(t, 'b')];
    const js = ['--jetstream', '--stream', 'KILL'];
    open('src', { create: true, codec: 'raw', dir: a }).close();
    const rx = new Receiver(t, 'dst', b);
    const imp = spawnBridge(t, [
      'import',
      'k',
      'dst',
      '--nats',
      nats.url,
      '--dir',
      b,
      ...js,
      '--durable',
      'imp',
    ]);
    await started(imp);
    const exportArgs = ['export', 'src', '--nats', nats.url, '--subject', 'k', '--dir', a, ...js];
    let exp = spawnBridge(t, exportArgs);
    await started(exp);
    const ps = producers(t, 'src', a);
    for (let k = 0; k < 10; k++) {
      const seen = rx.total;
      await until('progress before a kill', () => rx.total > seen || rx.total >= TOTAL);
      await sleep(50 + 20 * k);
      await exp.kill9();
      exp = spawnBridge(t, exportArgs);
      await started(exp);
    }
    const seen = rx.total;
    await until('progress before the server restart', () => rx.total > seen || rx.total >= TOTAL);
    await nats.restart(500);
    await Promise.all(ps.map((p) => p.exit));
    await until(`${TOTAL} messages at B`, () => rx.total >= TOTAL);
    await sleep(1000); // anything duplicated would arrive now
    const e = await exp.stop();
    await imp.stop();
    t.log(`exporter's last run: ${JSON.stringify(e)}`);
    t.is(rx.total, TOTAL);
    t.is(rx.gaps, 0, 'lost');
    t.is(rx.dups, 0, 'duplicated');
  },
);

test.serial('core: a server restart mid-stream: the loss is counted exactly', async (t) => {
  const nats = await startNats(t);
  const [a, b] = [host(t, 'a'), host(t, 'b')];
  open('src', { create: true, codec: 'raw', dir: a }).close();
  const rx = new Receiver(t, 'dst', b);
  const imp = spawnBridge(t, ['import', 'c', 'dst', '--nats', nats.url, '--dir', b]);
  await started(imp);
  const exp = spawnBridge(t, ['export', 'src', '--nats', nats.url, '--subject', 'c', '--dir', a]);
  await started(exp);
  const ps = producers(t, 'src', a);
  await until(
    () => `a quarter at B: ${rx.total}`,
    () => rx.total >= TOTAL / 4,
  );
  await nats.restart(300);
  await Promise.all(ps.map((p) => p.exit));
  const lost = () => Number(imp.reports.at(-1)?.lost ?? 0);
  await until(
    () =>
      `every message received or counted lost: ${rx.total} + ${lost()}; ${JSON.stringify(imp.reports.at(-1))} ${JSON.stringify(exp.reports.at(-1))}`,
    () => rx.total + lost() >= TOTAL,
  );
  await sleep(500);
  const e = await exp.stop();
  const i = await imp.stop();
  t.log(`received ${rx.total}, lost ${i?.lost}, reconnects ${i?.reconnects}/${e?.reconnects}`);
  t.is(rx.dups, 0);
  t.is(rx.total + Number(i?.lost), TOTAL);
  // What B misses: the holes in each producer's sequence, and what is missing at its end.
  const missing = rx.gaps + [1, 2].reduce((n, p) => n + TOTAL / 2 - (rx.next.get(p) ?? 0), 0);
  t.is(missing, Number(i?.lost), 'the importer counts exactly what B misses');
  t.true(Number(i?.reconnects) >= 1 && Number(e?.reconnects) >= 1);
});

test.serial('bridges both ways between A and B on one subject: no echo', async (t) => {
  const nats = await startNats(t);
  const [a, b] = [host(t, 'a'), host(t, 'b')];
  const rxA = new Receiver(t, 'ch', a);
  const rxB = new Receiver(t, 'ch', b);
  const bridges = [
    spawnBridge(t, ['import', 'both', 'ch', '--nats', nats.url, '--dir', a]),
    spawnBridge(t, ['import', 'both', 'ch', '--nats', nats.url, '--dir', b]),
    spawnBridge(t, ['export', 'ch', '--nats', nats.url, '--subject', 'both', '--dir', a]),
    spawnBridge(t, ['export', 'ch', '--nats', nats.url, '--subject', 'both', '--dir', b]),
  ];
  for (const br of bridges) await started(br);
  const n = FULL ? 20_000 : 2_000;
  const pa = spawnFixture(t, 'bridge-pub', ['ch', a, '1', String(n)]);
  const pb = spawnFixture(t, 'bridge-pub', ['ch', b, '2', String(n)]);
  await Promise.all([pa.exit, pb.exit]);
  await until('both sides have both streams', () => rxA.total >= 2 * n && rxB.total >= 2 * n);
  await sleep(1000); // an echo would arrive now
  const [, , ea, eb] = await Promise.all(bridges.map((br) => br.stop()));
  for (const rx of [rxA, rxB]) {
    t.is(rx.total, 2 * n);
    t.is(rx.dups, 0);
    t.is(rx.gaps, 0);
  }
  // Each exporter skipped exactly what its importer brought in.
  t.is(ea?.skipped, n);
  t.is(eb?.skipped, n);
  t.is(ea?.forwarded, n);
  t.is(eb?.forwarded, n);
});

test.serial('bad input: a clear one-line error or a counted event', async (t) => {
  const a = host(t, 'a');
  open('src', { create: true, codec: 'raw', dir: a }).close();
  const oneLine = (r: { status: number | null; stderr: string }, re: RegExp) => {
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, re);
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  const dead = `nats://127.0.0.1:${await freePort()}`;
  oneLine(
    runBridgeCli(['export', 'src', '--nats', dead, '--subject', 'x', '--dir', a]),
    /^shmring bridge export: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/,
  );
  oneLine(
    runBridgeCli(['export', 'src', '--nats', dead, '--subject', 'a..b', '--dir', a]),
    /invalid subject "a\.\.b"/,
  );
  oneLine(
    runBridgeCli(['export', 'src', '--nats', dead, '--subject', 'a.*', '--dir', a]),
    /invalid subject "a\.\*"/,
  );
  const nats = await startNats(t, 'max_payload: 2048\n');
  oneLine(
    runBridgeCli([
      'export',
      'src',
      '--nats',
      nats.url,
      '--subject',
      'x',
      '--dir',
      a,
      '--jetstream',
      '--stream',
      'NOPE',
      '--no-create',
    ]),
    /JetStream stream NOPE does not exist \(--no-create\)/,
  );
  oneLine(
    runBridgeCli(['export', 'missing', '--nats', nats.url, '--subject', 'x', '--dir', a]),
    /missing/,
  );
  const locked = await startNats(t, 'authorization { user: bridge, password: secret }\n');
  oneLine(
    runBridgeCli(['export', 'src', '--nats', locked.url, '--subject', 'x', '--dir', a]),
    /^shmring bridge export: cannot connect to NATS at .*: .*(authorization|Authorization)/,
  );
  // A message over the server's max_payload is counted and skipped; the bridge goes on.
  const b = host(t, 'b');
  const rx = new Receiver(t, 'dst', b);
  const imp = spawnBridge(t, ['import', 'big', 'dst', '--nats', nats.url, '--dir', b]);
  await started(imp);
  const exp = spawnBridge(t, ['export', 'src', '--nats', nats.url, '--subject', 'big', '--dir', a]);
  await started(exp);
  const ch = open<Buffer>('src', { codec: 'raw', dir: a });
  const msg = (i: number, size: number) => {
    const m = Buffer.alloc(size);
    m.writeUInt32LE(1, 0);
    m.writeUInt32LE(i, 4);
    return m;
  };
  // Near the limit: the payload and the headers (about 110 bytes and the origin, and the two
  // numbers) within max_payload pass; the server would close a connection over it.
  const near = 2048 - 80 - (110 + `${hostname()}:${a}`.length) - 20;
  ch.publish(msg(0, 64));
  ch.publish(msg(1, 4000));
  ch.publish(msg(2, near));
  ch.close();
  await until('the two small ones at B', () => rx.total >= 2);
  const e = await exp.stop();
  await imp.stop();
  t.is(rx.total, 2);
  t.is(e?.reconnects, 0);
  t.is(e?.oversize, 1);
  t.is(e?.lost, 1);
  t.is(e?.forwarded, 2);
  // With --oversize error the same message ends the bridge: one line, exit status 1.
  const strict = spawnBridge(t, [
    'export',
    'src',
    '--nats',
    nats.url,
    '--subject',
    'big',
    '--dir',
    a,
    '--oversize',
    'error',
  ]);
  await started(strict);
  const ch2 = open<Buffer>('src', { codec: 'raw', dir: a });
  ch2.publish(msg(3, 64));
  ch2.publish(msg(4, 4000));
  ch2.close();
  t.is(await strict.exit, 1);
  t.is(strict.stderr().trim().split('\n').length, 1, strict.stderr());
  t.regex(
    strict.stderr(),
    /^shmring bridge export: a 4000-byte message at position \d+ exceeds the server's max_payload 2048\n$/,
  );
  t.is(strict.reports.at(-1)?.oversize, 1);
});

test.serial(
  'JetStream: the importer killed -9 between its local publish and its ack: B sees every message once',
  async (t) => {
    const nats = await startNats(t);
    const [a, b] = [host(t, 'a'), host(t, 'b')];
    const js = ['--jetstream', '--stream', 'IMPKILL'];
    open('src', { create: true, codec: 'raw', dir: a }).close();
    const rx = new Receiver(t, 'dst', b);
    const importArgs = ['import', 'ik', 'dst', '--nats', nats.url, '--dir', b, ...js];
    const die = TOTAL / 4;
    // The test hook: SIGKILL right after the die-th local publish, before its ack.
    let imp = spawnBridge(t, importArgs, { SHMRING_BRIDGE_TEST_DIE_AFTER_PUBLISH: String(die) });
    await started(imp);
    const exp = await exportSrc(t, nats.url, 'ik', a, js);
    const ps = producers(t, 'src', a);
    await imp.exit;
    t.is(imp.signal(), 'SIGKILL');
    t.is(rx.total, die, 'B has what the killed importer published');
    imp = spawnBridge(t, importArgs);
    await started(imp);
    await Promise.all(ps.map((p) => p.exit));
    await until(
      () =>
        `${TOTAL} messages at B: ${rx.total}; ${JSON.stringify(imp.reports.at(-1))} ${imp.stderr()}`,
      () => rx.total >= TOTAL,
    );
    await sleep(1000); // a duplicate would arrive now
    await exp.stop();
    const i = await imp.stop();
    t.log(`restarted importer: ${JSON.stringify(i)}`);
    // Each message once; not in order across the kill: what the killed importer held comes
    // again only after the consumer's ack wait, while newer messages flow.
    t.is(rx.total, TOTAL);
    t.is(rx.distinct.size, TOTAL, 'each message once');
    t.is(rx.next.get(1), TOTAL / 2);
    t.is(rx.next.get(2), TOTAL / 2);
    t.true(Number(i?.duplicates) >= 1, 'the unacked message came again and was dropped');
    t.is(Number(i?.forwarded) + Number(i?.duplicates) >= TOTAL - die, true);
  },
);

test.serial(
  'JetStream: an ack the server never got: the redelivery, later, is dropped (each message once)',
  async (t) => {
    const nats = await startNats(t);
    const [a, b] = [host(t, 'a'), host(t, 'b')];
    // The importer's consumer made beforehand with a short ack wait (the importer keeps it).
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'LOSTACK', subjects: ['la'] });
      await jsm.consumers.add('LOSTACK', {
        durable_name: 'imp',
        ack_policy: AckPolicy.Explicit,
        filter_subject: 'la',
        ack_wait: 2_000_000_000,
      });
    } finally {
      await nc.close();
    }
    open('src', { create: true, codec: 'raw', dir: a }).close();
    const rx = new Receiver(t, 'dst', b);
    const js = ['--jetstream', '--stream', 'LOSTACK'];
    const skip = 50;
    const imp = spawnBridge(
      t,
      ['import', 'la', 'dst', '--nats', nats.url, '--dir', b, ...js, '--durable', 'imp'],
      { SHMRING_BRIDGE_TEST_SKIP_ACK: String(skip) },
    );
    await started(imp);
    const exp = await exportSrc(t, nats.url, 'la', a, js);
    const ps = producers(t, 'src', a);
    await Promise.all(ps.map((p) => p.exit));
    await until(`${TOTAL} messages at B`, () => rx.total >= TOTAL);
    await until(
      () => `the redelivery of sequence ${skip}: ${JSON.stringify(imp.reports.at(-1))}`,
      () => Number(imp.reports.at(-1)?.duplicates) >= 1,
    );
    await exp.stop();
    const i = await imp.stop();
    t.is(rx.total, TOTAL);
    t.is(rx.distinct.size, TOTAL, 'each message once');
    t.is(rx.dups, 0);
    t.is(rx.gaps, 0);
    t.is(Number(i?.duplicates), 1);
    t.is(Number(i?.forwarded), TOTAL);
  },
);

test.serial('core: a slow consumer: what B misses is what the importer counts lost', async (t) => {
  // A short write deadline: the server cuts off a client that stops reading.
  const nats = await startNats(t, 'write_deadline: "500ms"\n');
  const [a, b] = [host(t, 'a'), host(t, 'b')];
  open('src', {
    create: true,
    codec: 'raw',
    dir: a,
    capacity: 1 << 24,
    maxMessageSize: 4096,
  }).close();
  const rx = new Receiver(t, 'dst', b);
  const imp = spawnBridge(t, ['import', 'slow', 'dst', '--nats', nats.url, '--dir', b]);
  await started(imp);
  const exp = spawnBridge(t, [
    'export',
    'src',
    '--nats',
    nats.url,
    '--subject',
    'slow',
    '--dir',
    a,
  ]);
  await started(exp);
  const n = TOTAL;
  const size = 1024;
  const ch = open<Buffer>('src', { codec: 'raw', dir: a });
  t.teardown(() => ch.close());
  const publish = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const m = Buffer.alloc(size);
      m.writeUInt32LE(1, 0);
      m.writeUInt32LE(i, 4);
      if (!ch.publish(m)) await ch.send(m);
      if ((i & 255) === 0) await sleep(0);
    }
  };
  const lost = () => Number(imp.reports.at(-1)?.lost ?? 0);
  await publish(0, n / 10);
  await until(
    () => `the first tenth at B: ${rx.total} + ${lost()}`,
    () => rx.total + lost() >= n / 10,
    30_000,
  );
  // The importer stops reading (SIGSTOP): the server drops it as a slow consumer.
  imp.child.kill('SIGSTOP');
  try {
    await publish(n / 10, n);
    await sleep(1500);
  } finally {
    imp.child.kill('SIGCONT');
  }
  await until(
    () =>
      `every message received or counted lost: ${rx.total} + ${lost()}; ${JSON.stringify(imp.reports.at(-1))} ${JSON.stringify(exp.reports.at(-1))}`,
    () => rx.total + lost() >= n,
    30_000,
  );
  await sleep(1500); // the exporter's tick (once a second) counts losses at the end
  await exp.stop();
  const i = await imp.stop();
  t.log(`received ${rx.total}, lost ${i?.lost}, reconnects ${i?.reconnects}, ${i?.lastEvent}`);
  t.true(Number(i?.lost) > 0, 'the server dropped something');
  t.is(rx.dups, 0);
  const missing = rx.gaps + (n - (rx.next.get(1) ?? 0));
  t.is(missing, Number(i?.lost), 'the importer counts exactly what B misses');
  t.is(rx.total + Number(i?.lost), n);
});

test.serial(
  'core: a server with a small max_pending stalls the exporter: it reconnects, every message accounted',
  async (t) => {
    // With a subscriber's pending bytes over half of max_pending, nats-server holds the
    // publisher's read loop in short stalls and flushes the subscriber only after that read:
    // the exporter's flush went unanswered for minutes. Now it gives up after 5 s, reconnects
    // and halves its flush window; messages of the old connection may then arrive late.
    const nats = await startNats(t, 'max_pending: 65536\nmax_payload: 65536\n');
    const [a, b] = [host(t, 'a'), host(t, 'b')];
    open('src', { create: true, codec: 'raw', dir: a, capacity: 1 << 22 }).close();
    const rx = new Receiver(t, 'dst', b);
    const imp = spawnBridge(t, ['import', 'mp', 'dst', '--nats', nats.url, '--dir', b]);
    await started(imp);
    const exp = spawnBridge(t, [
      'export',
      'src',
      '--nats',
      nats.url,
      '--subject',
      'mp',
      '--dir',
      a,
    ]);
    await started(exp);
    const ps = producers(t, 'src', a);
    await Promise.all(ps.map((p) => p.exit));
    const lost = () => Number(imp.reports.at(-1)?.lost ?? 0);
    const accounted = () => {
      const e = exp.reports.at(-1);
      return Number(e?.forwarded ?? 0) + Number(e?.lost ?? 0);
    };
    await until(
      () =>
        `every message received or counted lost: ${rx.total} + ${lost()}; ${JSON.stringify(imp.reports.at(-1))} ${JSON.stringify(exp.reports.at(-1))}`,
      () => rx.total + lost() >= TOTAL && accounted() >= TOTAL,
      60_000,
    );
    await sleep(1500); // the exporter's tick (once a second) counts losses at the end
    const e = await exp.stop();
    const i = await imp.stop();
    t.log(
      `received ${rx.total}, importer lost ${i?.lost}; exporter forwarded ${e?.forwarded}, lost ${e?.lost}, reconnects ${e?.reconnects}, ${e?.lastEvent}`,
    );
    // Across the reconnect a producer's order is not kept (late ones come after newer ones).
    t.is(rx.distinct.size, rx.total, 'no message twice');
    t.is(rx.total + Number(i?.lost), TOTAL, 'received at B + counted lost = published');
    t.is(TOTAL - rx.distinct.size, Number(i?.lost), 'the importer counts exactly what B misses');
    t.is(Number(e?.forwarded) + Number(e?.lost), TOTAL, 'the exporter accounts for each message');
    t.is(e?.connected, true);
  },
);

test.serial("stat --json shows the exporter's named subscriber and its lag", async (t) => {
  const nats = await startNats(t);
  const a = host(t, 'a');
  const ch = open<Buffer>('src', { create: true, codec: 'raw', dir: a });
  t.teardown(() => ch.close());
  const args = ['export', 'src', '--nats', nats.url, '--subject', 'st.x', '--dir', a];
  const exp = spawnBridge(t, [...args, '--jetstream']);
  await started(exp);
  const stat = () => {
    const r = runCli(['stat', 'src', '--dir', a, '--json']);
    t.is(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      participants: { role: string; name?: string; lag: number; alive: boolean; pid: number }[];
    };
    return s.participants.find((p) => p.name === 'bridge-st_x');
  };
  for (let i = 0; i < 10; i++) ch.publish(Buffer.alloc(64, i));
  await until('10 forwarded', () => Number(exp.reports.at(-1)?.forwarded) >= 10);
  await sleep(300);
  const live = stat();
  t.is(live?.role, 'subscriber');
  t.is(live?.pid, exp.child.pid);
  t.is(live?.lag, 0);
  // Killed, the exporter stays a named subscriber: what comes meanwhile is its lag.
  await exp.kill9();
  for (let i = 0; i < 5; i++) ch.publish(Buffer.alloc(64, i));
  const away = stat();
  t.is(away?.alive, false);
  t.is(away?.lag, 5 * (24 + 64)); // 5 records: 24-byte header + 64 bytes each
  // A new exporter catches up.
  const again = spawnBridge(t, [...args, '--jetstream']);
  await started(again);
  await until('the 5 forwarded', () => Number(again.reports.at(-1)?.forwarded) >= 5);
  await sleep(300);
  t.is(stat()?.lag, 0);
  await again.stop();
});

test.serial('core import of plain NATS messages: headers in any order or none', async (t) => {
  const nats = await startNats(t);
  const b = host(t, 'b');
  const rx = new Receiver(t, 'dst', b);
  const imp = spawnBridge(t, ['import', 'plain', 'dst', '--nats', nats.url, '--dir', b]);
  await started(imp);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const msg = (i: number) => {
    const m = Buffer.alloc(16);
    m.writeUInt32LE(7, 0);
    m.writeUInt32LE(i, 4);
    return m;
  };
  // No headers at all; then a session whose headers come in another order and case, with
  // seq 1, 2, 4 (one missing); then one whose Shmring-Origin is the importer's own.
  nc.publish('plain', msg(0));
  const seqs = [1, 2, 4];
  for (const [k, seq] of seqs.entries()) {
    const h = headers();
    h.set('shmring-seq', String(seq));
    h.set('X-Other', 'y');
    h.set('Shmring-Session', 'other-order');
    nc.publish('plain', msg(k + 1), { headers: h });
  }
  await nc.flush();
  await until('4 messages at B', () => rx.total >= 4);
  await sleep(300);
  const i = await imp.stop();
  t.is(rx.total, 4);
  t.is(rx.gaps, 0);
  t.is(i?.forwarded, 4);
  t.is(i?.lost, 1, 'seq 3 is missing');
});
