/**
 * Small edges: the CLI with entries in /dev/shm that are not segments (symbolic links,
 * sockets, FIFOs), `recover` never replacing a file shmring cannot prove it made, many
 * concurrent sends, and the binding called the ways JS allows: handles of another kind or
 * thread, detached buffers, a codec failing mid-`publishMany`, `rawView` backing stores,
 * timeouts too large for the clock, and a `publishMany` ends array changed by another thread.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { lstatSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import test, { type ExecutionContext } from 'ava';
import { type Codec, open, rawView, ShmringError } from 'shmring';
import {
  channelName,
  nodesByMajor,
  type Run,
  runToEnd,
  shmFile,
  sleep,
  spawnFixture,
} from './helpers.js';

const cliPath = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));
const nativePath = fileURLToPath(
  new URL('../../native/shmring.linux-x64-gnu.node', import.meta.url),
);

/** The addon itself, for calls the TypeScript API never makes. */
interface Native {
  NativeChannel: {
    open(
      name: string,
      o?: object,
    ): {
      handle(): number;
      subscribeSync(wait?: string): { handle(): number; close(): void };
      close(): void;
    };
  };
  publish(handle: number, payload: Buffer): boolean;
  publishRange(handle: number, buf: Buffer, start: number, end: number): boolean;
  publishAt(handle: number, buf: unknown, end: number): boolean;
  publishMany(handle: number, buf: Buffer, ends: Uint32Array): number;
  recv(handle: number, buf: Buffer, timeoutMs: number | undefined): number;
}
const native = createRequire(import.meta.url)(nativePath) as Native;

/** Runs `shmring ...args` to the end with `input` on stdin; killed when the test ends. */
const cli = (t: ExecutionContext, args: string[], input = ''): Promise<Run> =>
  runToEnd(t, process.execPath, [cliPath, ...args], input);

/** A name in /dev/shm under shmring's prefix, removed when the test ends. */
function entry(t: ExecutionContext, tag: string): { name: string; path: string } {
  const name = channelName(t, tag);
  const path = shmFile(name);
  t.teardown(() => rmSync(path, { force: true }));
  return { name, path };
}

const exists = (path: string): boolean => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

/** A symbolic link, a listening Unix socket and a FIFO under shmring names. */
async function oddEntries(t: ExecutionContext, tag: string) {
  const link = entry(t, `${tag}-link`);
  symlinkSync('/nonexistent/target', link.path);
  const sock = entry(t, `${tag}-sock`);
  const server = createServer();
  server.listen(sock.path);
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const fifo = entry(t, `${tag}-fifo`);
  execFileSync('mkfifo', [fifo.path]);
  return { link, sock, fifo };
}

test('ls reports a symlink, a socket and a FIFO as such; rm removes each', async (t) => {
  const tag = `odd${process.pid}`;
  const { link, sock, fifo } = await oddEntries(t, tag);
  const ls = await cli(t, ['ls', `t-${tag}-`]);
  t.is(ls.code, 0, ls.stderr);
  const row = (n: string) => ls.stdout.split('\n').find((l) => l.startsWith(`${n} `)) ?? '';
  t.regex(row(link.name), /symbolic link/);
  t.regex(row(sock.name), /socket/);
  t.regex(row(fifo.name), /FIFO/);
  t.notRegex(ls.stdout, /creator died/);
  for (const e of [link, sock, fifo]) {
    const rm = await cli(t, ['rm', e.name]);
    t.is(rm.code, 0, `${e.name}: ${rm.stderr}`);
    t.false(exists(e.path), `${e.name} removed`);
  }
  t.true(exists('/tmp') && !exists('/nonexistent/target'), 'the link target was not touched');
});

test('ls: error rows do not stretch the KIND column', async (t) => {
  const tag = `wide${process.pid}`;
  const name = channelName(t, `${tag}-ok`);
  const ch = open(name, { create: true, capacity: 4096 });
  t.teardown(() => ch.close());
  await oddEntries(t, tag);
  const ls = await cli(t, ['ls', `t-${tag}-`]);
  t.is(ls.code, 0, ls.stderr);
  const [head = ''] = ls.stdout.split('\n');
  // KIND is as wide as its longest value ('queue'/'topic') plus the two-space gap.
  t.is(head.indexOf('SYNC') - head.indexOf('KIND'), 'topic'.length + 2, head);
  const okRow = ls.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
  t.is(okRow.indexOf('lockfree'), head.indexOf('SYNC'));
});

test('pub from stdin failing at line 2 says that line 1 went out', async (t) => {
  const name = channelName(t, 'pub-partial');
  const r = await cli(t, ['pub', name, '--create'], '{"a":1}\n{broken\n{"c":3}\n');
  t.is(r.code, 1);
  t.regex(r.stderr, /line 2/);
  t.regex(r.stderr, /1 message .*published/);
  // Exactly the first line's record is in the ring.
  const ref = open(channelName(t, 'pub-ref'), { create: true });
  ref.publish({ a: 1 });
  const ch = open(name);
  t.is(ch.stats().tail, ref.stats().tail);
  ch.close();
  ref.close();
});

test("rm: a name starting with '-' is told to come after --, and then it works", async (t) => {
  const name = `-${channelName(t, 'dash')}`;
  t.teardown(() => rmSync(shmFile(name), { force: true }));
  open(name, { create: true, capacity: 4096 }).close();
  const bad = await cli(t, ['rm', name]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /--/);
  t.regex(bad.stderr, new RegExp(`rm -- ${name}`));
  t.true(exists(shmFile(name)));
  const good = await cli(t, ['rm', '--', name]);
  t.is(good.code, 0, good.stderr);
  t.false(exists(shmFile(name)));
});

test('recover never replaces a FIFO, a socket, a symlink or a file shmring did not make', async (t) => {
  const tag = `rec${process.pid}`;
  const { link, sock, fifo } = await oddEntries(t, tag);
  const empty = entry(t, `${tag}-empty`);
  writeFileSync(empty.path, '');
  const zeros = entry(t, `${tag}-zeros`);
  writeFileSync(zeros.path, Buffer.alloc(64 * 1024));
  // Older than the second a creator's empty file is given: judged on what it is, not its age.
  await sleep(1200);
  const before = new Map(
    [link, sock, fifo, empty, zeros].map((e) => [e.name, lstatSync(e.path).ino]),
  );
  for (const e of [link, sock, fifo, empty, zeros]) {
    const err = t.throws(() => open(e.name, { recover: true, capacity: 4096 }), undefined, e.name);
    t.true(err instanceof ShmringError, `${e.name}: ${err}`);
    // Not a file at all: IncompatibleSegment; a file that never became ready (and carries no
    // creation mark): CorruptSegment, as a plain open says of it.
    const want = e === empty || e === zeros ? 'CorruptSegment' : 'IncompatibleSegment';
    t.is((err as ShmringError | undefined)?.code, want, `${e.name}: ${err?.message}`);
    t.is(lstatSync(e.path).ino, before.get(e.name) as number, `${e.name} left as it was`);
  }
  t.true(lstatSync(fifo.path).isFIFO());
  t.is(statSync(empty.path).size, 0);
});

test('11 and more concurrent sends print no MaxListenersExceededWarning', async (t) => {
  // In a child of its own: the warning is printed once per process, and to stderr.
  const name = channelName(t, 'many-sends');
  const script = `
    import { open } from ${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)};
    process.on('warning', (w) => console.log('warning ' + w.name));
    const ch = open(${JSON.stringify(name)}, { create: true, capacity: 4096, maxMessageSize: 64 });
    ch.receiveSync(0);
    while (ch.publish(0)) {}
    const signal = new AbortController().signal;
    const sends = Array.from({ length: 40 }, (_, i) => ch.send(i + 1, i % 2 ? { signal } : {}));
    let got = 0;
    const drain = () => {
      for (let m = ch.receiveSync(0); m !== undefined; m = ch.receiveSync(0)) if (m.value !== 0) got++;
      if (got < 40) setTimeout(drain, 5);
    };
    drain();
    await Promise.all(sends);
    await new Promise((r) => setTimeout(r, 50));
    ch.close();
    console.log('sent ' + got);`;
  const nodes = [...nodesByMajor()];
  t.true(
    nodes.some(([major]) => major === 20),
    'a Node 20 (where it warned) is here',
  );
  for (const [major, bin] of nodes) {
    t.is(await sendsIn(t, bin, script), 'sent 40', `Node ${major}`);
  }
});

/** Runs the module `script` with the node `bin`; resolves its stdout. */
async function sendsIn(t: ExecutionContext, bin: string, script: string): Promise<string> {
  const r = await runToEnd(t, bin, ['--input-type=module', '-e', script]);
  t.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** Runs `body` (CommonJS, `native` and `workerData` in scope) in a fresh worker thread. */
async function inWorker(body: string, data: object): Promise<unknown> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const native = require(workerData.nativePath);
     parentPort.postMessage((() => { ${body} })());`,
    { eval: true, workerData: { nativePath, ...data } },
  );
  try {
    const [result] = await once(worker, 'message');
    return result;
  } finally {
    await worker.terminate();
  }
}

test('a handle of another kind or another thread finds nothing', async (t) => {
  // Fresh threads, whose tables start empty: where the old handles (index 0, generation 0
  // in every table) collided.
  const name = channelName(t, 'h-kind');
  const kind = await inWorker(
    `const ch = native.NativeChannel.open(workerData.name, { create: true, capacity: 4096 });
     const sub = ch.subscribeSync();
     let r;
     try { r = 'published: ' + native.publish(sub.handle(), Buffer.from([1])); } catch (e) { r = e.code; }
     sub.close();
     ch.close();
     return r;`,
    { name },
  );
  t.regex(String(kind), /^(Closed|InvalidArgument)$/, 'a subscription handle passed to publish');
  const first = channelName(t, 'h-first');
  const handle = await inWorker(
    `const ch = native.NativeChannel.open(workerData.name, { create: true, capacity: 4096 });
     const h = ch.handle();
     ch.close();
     return h;`,
    { name: first },
  );
  const other = channelName(t, 'h-other');
  const thread = await inWorker(
    `const ch = native.NativeChannel.open(workerData.name, { create: true, capacity: 4096 });
     let r;
     try { r = 'published: ' + native.publish(workerData.handle, Buffer.from([1])); } catch (e) { r = e.code; }
     ch.close();
     return r;`,
    { name: other, handle },
  );
  t.regex(String(thread), /^(Closed|InvalidArgument)$/, "another thread's handle");
  // The main thread's own handles still work, and a closed one finds nothing.
  const ch = native.NativeChannel.open(channelName(t, 'h-main'), { create: true, capacity: 4096 });
  const h = ch.handle();
  t.true(native.publish(h, Buffer.from([1])));
  // Numbers that are no handle: a fraction of one, negative, not finite, past 2^53.
  for (const bad of [
    h + 0.5,
    h - 0.25,
    -h,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    2 ** 60,
  ]) {
    const e = t.throws(() => native.publish(bad, Buffer.from([1])));
    t.is((e as { code?: string } | undefined)?.code, 'Closed', String(bad));
  }
  ch.close();
  const e = t.throws(() => native.publish(h, Buffer.from([1])));
  t.is((e as { code?: string } | undefined)?.code, 'Closed');
});

test('a detached buffer is refused with InvalidArgument; an empty one is a message', async (t) => {
  const ch = open<Buffer>(channelName(t, 'detached'), { create: true, codec: 'raw' });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  const detached = (): Buffer => {
    const b = Buffer.from(new ArrayBuffer(16));
    structuredClone(b.buffer, { transfer: [b.buffer as ArrayBuffer] });
    return b;
  };
  for (const call of [() => ch.publish(detached()), () => ch.publishMany([detached()])]) {
    const e = t.throws(call);
    t.is((e as ShmringError | undefined)?.code, 'InvalidArgument');
    t.regex(e?.message ?? '', /detached/);
  }
  const e = await t.throwsAsync(ch.send(detached()));
  t.is((e as ShmringError | undefined)?.code, 'InvalidArgument');
  // The native publish refuses it too (a detached view reads as length 0 there).
  const nat = native.NativeChannel.open(ch.name);
  t.teardown(() => nat.close());
  const direct = t.throws(() => native.publish(nat.handle(), detached()));
  t.is((direct as { code?: string } | undefined)?.code, 'InvalidArgument');
  t.is(ch.receiveSync(0), undefined, 'nothing was published');
  t.true(ch.publish(Buffer.alloc(0)));
  t.is(ch.receiveSync(0)?.value.length, 0, 'a real empty message goes through');
});

test('a codec throwing mid-publishMany: the error says how many went in, and they did', (t) => {
  const picky: Codec<number> = {
    encode: (n) => {
      if (n === 13) throw new RangeError('unlucky');
      return Buffer.from([n]);
    },
    decode: (b) => b[0] ?? -1,
  };
  const ch = open<number>(channelName(t, 'many-throw'), { create: true, codec: picky });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  const e = t.throws(() => ch.publishMany([1, 2, 3, 13, 4]));
  t.true(e instanceof ShmringError);
  t.is((e as ShmringError).code, 'InvalidArgument');
  t.is((e as ShmringError).published, 3);
  t.true((e as Error).cause instanceof RangeError);
  const got: number[] = [];
  for (let m = ch.receiveSync(0); m !== undefined; m = ch.receiveSync(0)) got.push(m.value);
  t.deepEqual(got, [1, 2, 3]);
  // A retry from `published` duplicates nothing.
  const rest = [13, 4].slice(1);
  t.is(ch.publishMany(rest), 1);
  t.deepEqual(ch.receiveSync(0)?.value, 4);
});

test('policy fail: a RingFull part-way through publishMany says how many went in, and they did', (t) => {
  const ch = open<string>(channelName(t, 'many-full'), {
    create: true,
    policy: 'fail',
    capacity: 4096,
    maxMessageSize: 200,
  });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  const values = Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(50, '.'));
  const e = t.throws(() => ch.publishMany(values));
  t.is((e as ShmringError | undefined)?.code, 'RingFull');
  const published = (e as ShmringError | undefined)?.published;
  t.true(published !== undefined && published > 0 && published < 100, String(published));
  const got: string[] = [];
  for (let m = ch.receiveSync(0); m !== undefined; m = ch.receiveSync(0)) got.push(m.value);
  t.deepEqual(got, values.slice(0, published));
});

test('policy fail: the native publishMany error carries its count as a number `published`, as many as arrived', (t) => {
  const ch = native.NativeChannel.open(channelName(t, 'many-full-native'), {
    create: true,
    policy: 'fail',
    capacity: 4096,
    maxMessageSize: 200,
  });
  const sub = ch.subscribeSync();
  t.teardown(() => {
    sub.close();
    ch.close();
  });
  const size = 50;
  const count = 100;
  const buf = Buffer.alloc(size * count, 7);
  const ends = Uint32Array.from({ length: count }, (_, i) => (i + 1) * size);
  const e = t.throws(() => native.publishMany(ch.handle(), buf, ends)) as
    | (Error & { code?: unknown; published?: unknown })
    | undefined;
  t.is(e?.code, 'RingFull');
  const published = e?.published;
  if (typeof published !== 'number') return void t.fail(`published is ${typeof published}`);
  t.true(published > 0 && published < count, String(published));
  t.true(e?.message.includes(`after ${published} messages`), e?.message);
  // The ring is full now: the next batch fails at its first message, and says 0.
  const again = t.throws(() => native.publishMany(ch.handle(), buf, ends)) as
    | { code?: unknown; published?: unknown }
    | undefined;
  t.is(again?.code, 'RingFull');
  t.is(again?.published, 0);
  const one = Buffer.alloc(4 + 200);
  let got = 0;
  while (native.recv(sub.handle(), one, 0) >= 0) got++;
  t.is(got, published, 'as many arrived as the error says');
  // The handle is checked before the batch: that error publishes nothing and has no count.
  const closedErr = t.throws(() => native.publishMany(-1, buf, ends)) as
    | { code?: unknown; published?: unknown }
    | undefined;
  t.is(closedErr?.code, 'Closed');
  t.false('published' in (closedErr ?? {}));
});

test('publishRange publishes the bytes of its range; a range outside the buffer is InvalidArgument and publishes nothing', (t) => {
  const name = channelName(t, 'publish-range');
  const ch = native.NativeChannel.open(name, { create: true, capacity: 4096, maxMessageSize: 64 });
  const sub = ch.subscribeSync();
  t.teardown(() => {
    sub.close();
    ch.close();
  });
  const buf = Buffer.from('..hello..');
  for (const [start, end] of [
    [5, 3],
    [0, 10],
    [10, 12],
    [2, 2 ** 32 + 7],
    [2 ** 32 + 2, 7],
    [2, 6.5],
    [Number.NaN, 7],
    [-1, 7],
  ] as const) {
    const e = t.throws(() => native.publishRange(ch.handle(), buf, start, end)) as
      | { code?: unknown }
      | undefined;
    t.is(e?.code, 'InvalidArgument', `${start}..${end}`);
  }
  t.true(native.publishRange(ch.handle(), buf, 2, 7));
  t.true(native.publishRange(ch.handle(), buf, 4, 4), 'an empty range is an empty message');
  const one = Buffer.alloc(4 + 64);
  t.is(native.recv(sub.handle(), one, 0), 5);
  t.is(one.subarray(4, 9).toString(), 'hello');
  t.is(native.recv(sub.handle(), one, 0), 0);
  t.is(native.recv(sub.handle(), one, 0), -1, 'nothing else went in');
});

test('publishAt publishes an ArrayBuffer from byte 0; anything else is InvalidArgument and publishes nothing', (t) => {
  const name = channelName(t, 'publish-at');
  const ch = native.NativeChannel.open(name, { create: true, capacity: 4096, maxMessageSize: 64 });
  const sub = ch.subscribeSync();
  t.teardown(() => {
    sub.close();
    ch.close();
  });
  const ab = new ArrayBuffer(8);
  Buffer.from(ab).write('hello...');
  const detached = new ArrayBuffer(8);
  structuredClone(detached, { transfer: [detached] });
  for (const [buf, end, why] of [
    [ab, 9, 'an end past the buffer'],
    [ab, -1, 'a negative end'],
    [ab, 2 ** 32 + 5, 'an end that would wrap to 5'],
    [ab, 5.9, 'a fraction'],
    [ab, Number.NaN, 'NaN'],
    [Buffer.from(ab), 5, 'a Buffer, not an ArrayBuffer'],
    [detached, 0, 'a detached ArrayBuffer'],
    [null, 0, 'null'],
  ] as const) {
    const e = t.throws(() => native.publishAt(ch.handle(), buf, end), undefined, why) as
      | { code?: unknown; message?: unknown }
      | undefined;
    t.is(e?.code, 'InvalidArgument', why);
  }
  const closed = t.throws(() => native.publishAt(-1, ab, 5)) as { code?: unknown } | undefined;
  t.is(closed?.code, 'Closed');
  t.true(native.publishAt(ch.handle(), ab, 5));
  t.true(native.publishAt(ch.handle(), ab, 0), 'an empty message');
  const one = Buffer.alloc(4 + 64);
  t.is(native.recv(sub.handle(), one, 0), 5);
  t.is(one.subarray(4, 9).toString(), 'hello');
  t.is(native.recv(sub.handle(), one, 0), 0);
  t.is(native.recv(sub.handle(), one, 0), -1, 'nothing else went in');
});

test('rawView: each subscription has its own zero-filled backing store holding only its frames', async (t) => {
  const name = channelName(t, 'rawview-store');
  const ch = open<Buffer>(name, {
    create: true,
    codec: rawView(),
    capacity: 4096,
    maxMessageSize: 100,
  });
  t.teardown(() => ch.close());
  // Something else in this process that Node's shared Buffer pool would hand out next to us.
  const secret = Buffer.from('secret of another Buffer');
  ch.receiveSync(0);
  ch.publish(Buffer.from([1, 2, 3]));
  const view = ch.receiveSync(1000)?.value as Buffer;
  t.deepEqual([...view], [1, 2, 3]);
  const store = Buffer.from(view.buffer);
  // A receiveSync frame: 16 bytes (length, flags, position), then the payload.
  t.is(store.byteLength, 100 + 16, 'one frame of the largest message, no more');
  t.false(store.includes(secret), 'no unrelated Buffer in it');
  t.true(
    store.subarray(16 + 3).every((b) => b === 0),
    'zero beyond its one frame',
  );
  // messages(): a store of its own as well (not shared with receiveSync's).
  const seen = new Promise<Buffer>((resolve) => {
    const sub = ch.messages().subscribe((v) => {
      resolve(Buffer.from(v.buffer));
      sub.unsubscribe();
    });
  });
  ch.publish(Buffer.from([9]));
  const batch = await seen;
  t.not(batch.byteLength, store.byteLength);
  t.true(
    batch.subarray(5).every((b) => b === 0),
    'zero beyond its frames',
  );
});

test('timeouts too large for the clock wait forever; none can panic or abort', async (t) => {
  const p = spawnFixture(t, 'timeouts', [channelName(t, 'huge-timeouts')]);
  const r = await p.exit;
  t.is(r.signal, null, 'not killed by an abort');
  t.is(r.code, 0);
  const json = r.json as { ok: string[]; failed: string[] } | undefined;
  t.deepEqual(json?.failed, []);
  t.is(json?.ok.length, 12);
});

test("publishMany's ends array is read once: another thread changing it is a typed error or a publish, never a panic", async (t) => {
  const name = channelName(t, 'ends-race');
  // A full ring (a subscriber that reads nothing): each call then publishes nothing and
  // returns at once, after reading the first frame's end, however long `ends` is.
  const ch = native.NativeChannel.open(name, { create: true, capacity: 4096 });
  const sub = ch.subscribeSync();
  t.teardown(() => {
    sub.close();
    ch.close();
  });
  while (native.publish(ch.handle(), Buffer.alloc(100))) {}
  // Long, so that validating it takes a while: the old two passes read ends[0] far apart.
  const sab = new SharedArrayBuffer(4 * 65_536);
  const ends = new Uint32Array(sab);
  const flags = new Int32Array(new SharedArrayBuffer(8)); // [stop, started]
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const ends = new Uint32Array(workerData.sab);
     const flags = new Int32Array(workerData.flags);
     Atomics.store(flags, 1, 1);
     // Each value held for a few microseconds, about as long as a validation pass takes.
     for (let v = 4; Atomics.load(flags, 0) === 0; v = v === 4 ? 1 << 30 : 4) {
       for (let k = 0; k < 500; k++) Atomics.store(ends, 0, v);
     }`,
    { eval: true, workerData: { sab, flags: flags.buffer } },
  );
  t.teardown(async () => {
    Atomics.store(flags, 0, 1);
    await worker.terminate();
  });
  while (Atomics.load(flags, 1) === 0) await sleep(5);
  const buf = Buffer.alloc(8, 1);
  ends.fill(8, 1);
  const codes = new Map<string, number>();
  const rounds = process.env.CI ? 2000 : 5000;
  for (let i = 0; i < rounds; i++) {
    let code = 'ok';
    try {
      native.publishMany(ch.handle(), buf, ends);
    } catch (e) {
      code = `${(e as { code?: string }).code}: ${(e as Error).message.slice(0, 40)}`;
    }
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  const panics = [...codes].filter(
    ([c]) => !c.startsWith('ok') && !c.startsWith('InvalidArgument'),
  );
  t.deepEqual(panics, [], JSON.stringify([...codes]));
  t.log(JSON.stringify([...codes]));
});
