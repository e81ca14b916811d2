/** The API: codecs, async iteration, AbortSignal, publishMany, receiveSync, list(). */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import test from 'ava';
import { decode as msgpackDecode } from 'msgpackr';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  ClosedError,
  type Codec,
  InvalidArgumentError,
  list,
  MessageTooLargeError,
  open,
  unlinkIfStale,
} from 'shmring';
import { channelName, spawnFixture, until } from './helpers.js';

const subscribers = (ch: { stats(): { participants: { role: string }[] } }): number =>
  ch.stats().participants.filter((p) => p.role === 'subscriber').length;

test('codec msgpack (default) writes plain msgpack any decoder reads', async (t) => {
  const name = channelName(t, 'mp');
  const ch = open<{ a: number; b: string }>(name, { create: true });
  t.teardown(() => ch.close());
  // A raw reader on the same channel sees the bytes: standard msgpack maps, no records.
  const rawReader = open<Buffer>(name, { codec: 'raw' });
  t.teardown(() => rawReader.close());
  const got = firstValueFrom(rawReader.messages().pipe(take(2), toArray()));
  ch.publish({ a: 1, b: 'x' });
  ch.publish({ a: 2, b: 'y' });
  const frames = await got;
  t.deepEqual(
    frames.map((f) => msgpackDecode(f)),
    [
      { a: 1, b: 'x' },
      { a: 2, b: 'y' },
    ],
  );
  const type = frames[0]?.[0] ?? 0;
  t.true(
    (type >= 0x80 && type <= 0x8f) || type === 0xde,
    `a msgpack map, not a msgpackr record extension (type byte ${type.toString(16)})`,
  );
});

test('codec json round-trips and refuses what JSON cannot hold', async (t) => {
  const name = channelName(t, 'json');
  const ch = open<unknown>(name, { create: true, codec: 'json' });
  t.teardown(() => ch.close());
  const raw = open<Buffer>(name, { codec: 'raw' });
  t.teardown(() => raw.close());
  const values = [{ a: [1, 2] }, 'text', 3.5, null, true];
  const got = firstValueFrom(ch.messages().pipe(take(values.length), toArray()));
  const bytes = firstValueFrom(raw.messages().pipe(take(1)));
  for (const v of values) t.true(ch.publish(v));
  t.deepEqual(await got, values);
  t.is((await bytes).toString(), '{"a":[1,2]}');
  t.throws(() => ch.publish(undefined), { instanceOf: InvalidArgumentError });
});

test('codec raw: Buffers in, Buffers out, exact bytes', async (t) => {
  const ch = open<Buffer>(channelName(t, 'raw'), { create: true, codec: 'raw' });
  t.teardown(() => ch.close());
  const sent = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(1000, 7)];
  const got = firstValueFrom(ch.messages().pipe(take(sent.length), toArray()));
  for (const b of sent) ch.publish(b);
  ch.publish(new Uint8Array([9, 9]) as Buffer);
  const received = await got;
  t.true(received.every((b) => Buffer.isBuffer(b)));
  t.deepEqual(
    received.map((b) => b.toString('hex')),
    sent.map((b) => b.toString('hex')),
  );
  t.throws(() => ch.publish('not bytes' as unknown as Buffer), {
    instanceOf: InvalidArgumentError,
  });
});

test('a user Codec<T> is used both ways, and a bad codec option is InvalidArgument', async (t) => {
  const name = channelName(t, 'usercodec');
  const upper: Codec<string> = {
    encode: (s) => Buffer.from(s.toUpperCase()),
    decode: (b) => `<${Buffer.from(b).toString()}>`,
  };
  const ch = open<string>(name, { create: true, codec: upper });
  t.teardown(() => ch.close());
  const got = firstValueFrom(ch.messages().pipe(take(2), toArray()));
  ch.publish('a');
  ch.publish('bc');
  t.deepEqual(await got, ['<A>', '<BC>']);
  t.throws(() => open(name, { codec: 'yaml' as 'json' }), { instanceOf: InvalidArgumentError });
});

test('for await iterates the same stream, and break releases the slot', async (t) => {
  const ch = open<number>(channelName(t, 'iter'), { create: true });
  t.teardown(() => ch.close());
  const got: number[] = [];
  const it = ch[Symbol.asyncIterator]();
  const first = it.next(); // joins now
  t.is(subscribers(ch), 1);
  for (let i = 0; i < 5; i++) ch.publish(i);
  const r = await first;
  got.push(r.value as number);
  for await (const v of { [Symbol.asyncIterator]: () => it }) {
    got.push(v);
    if (v === 3) break;
  }
  t.deepEqual(got, [0, 1, 2, 3]);
  t.is(subscribers(ch), 0, 'break released the slot');
  t.deepEqual(await it.next(), { value: undefined, done: true });
});

test('for await over the channel itself, with values arriving while it waits', async (t) => {
  const ch = open<number>(channelName(t, 'iter2'), { create: true });
  t.teardown(() => ch.close());
  const got: number[] = [];
  const loop = (async () => {
    for await (const v of ch) {
      got.push(v);
      if (got.length === 300) break;
    }
  })();
  await until(() => subscribers(ch) === 1);
  for (let i = 0; i < 300; i++) if (!ch.publish(i)) await ch.send(i);
  await loop;
  t.deepEqual(got, [...Array(300).keys()]);
  t.is(subscribers(ch), 0);
});

test('an iterator holds publishers back instead of buffering without bound', async (t) => {
  const ch = open<number>(channelName(t, 'iterbp'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 64,
  });
  t.teardown(() => ch.close());
  const it = ch.iterate();
  const first = it.next();
  let n = 0;
  while (ch.publish(n)) n++;
  t.is((await first).value, 0);
  // The iterator pulled one batch; the ring, refilled behind it, stays full while the loop
  // does not pull, however long the event loop runs.
  while (ch.publish(-1)) {}
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.false(ch.publish(-2), 'nothing drained the ring in the background');
  let pulled = 0;
  while (pulled < n) {
    await it.next();
    pulled++;
  }
  t.true(ch.publish(-3), 'pulling made room');
  await it.return?.();
  t.is(subscribers(ch), 0);
});

test('AbortSignal ends iteration: next() rejects with the reason and the slot is freed', async (t) => {
  const ch = open<number>(channelName(t, 'iterabort'), { create: true });
  t.teardown(() => ch.close());
  const ac = new AbortController();
  const it = ch.iterate({ signal: ac.signal });
  const pending = it.next();
  t.is(subscribers(ch), 1);
  const reason = new Error('enough');
  ac.abort(reason);
  const err = await t.throwsAsync(pending);
  t.is(err, reason);
  t.is(subscribers(ch), 0);
  t.deepEqual(await it.next(), { value: undefined, done: true });
  // An already aborted signal: the first next() rejects and no slot is taken.
  const it2 = ch.iterate({ signal: AbortSignal.abort(reason) });
  t.is(await t.throwsAsync(it2.next()), reason);
  t.is(subscribers(ch), 0);
});

test('close() completes iterators', async (t) => {
  const ch = open<number>(channelName(t, 'iterclose'), { create: true });
  const it = ch.iterate();
  const pending = it.next();
  ch.close();
  t.deepEqual(await pending, { value: undefined, done: true });
  await t.throwsAsync(ch.iterate().next(), { instanceOf: ClosedError });
});

test('AbortSignal on send: a waiting send rejects with the reason and publishes nothing', async (t) => {
  const ch = open<number>(channelName(t, 'sendabort'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 64,
  });
  t.teardown(() => ch.close());
  ch.receiveSync(0); // a subscriber that reads only when told to: the ring fills
  let n = 0;
  while (ch.publish(n)) n++;
  const ac = new AbortController();
  const waiting = ch.send(-1, { signal: ac.signal });
  const queued = ch.send(-2, { signal: ac.signal }); // behind the first
  const reason = new Error('cancelled');
  ac.abort(reason);
  t.is(await t.throwsAsync(waiting), reason);
  t.is(await t.throwsAsync(queued), reason);
  await t.throwsAsync(ch.send(-3, { signal: ac.signal }), { is: reason });
  // Drain everything: the aborted values never went in.
  const got: number[] = [];
  for (let m = ch.receiveSync(0); m !== undefined; m = ch.receiveSync(0)) got.push(m.value);
  t.deepEqual(got, [...Array(n).keys()]);
  t.true(ch.publish(99), 'publish works again once aborted sends are gone');
});

test('close() rejects waiting sends with ClosedError at once', async (t) => {
  const ch = open<number>(channelName(t, 'sendclose'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 64,
  });
  ch.receiveSync(0);
  while (ch.publish(0)) {}
  const a = ch.send(1);
  const b = ch.send(2);
  ch.close();
  await t.throwsAsync(a, { instanceOf: ClosedError });
  await t.throwsAsync(b, { instanceOf: ClosedError });
});

test('publishMany publishes in one call, in order, and says how many fit', async (t) => {
  const ch = open<{ i: number; s: string }>(channelName(t, 'many'), {
    create: true,
    capacity: 65536,
  });
  t.teardown(() => ch.close());
  const reader = open<{ i: number; s: string }>(ch.name);
  t.teardown(() => reader.close());
  reader.receiveSync(0);
  const values = Array.from({ length: 5000 }, (_, i) => ({ i, s: 'x'.repeat(i % 50) }));
  const done = ch.publishMany(values);
  t.true(done > 100 && done < values.length, `a 64 KiB ring takes part of the batch (${done})`);
  const got: number[] = [];
  for (let m = reader.receiveSync(0); m !== undefined; m = reader.receiveSync(0))
    got.push(m.value.i);
  t.deepEqual(got, [...Array(done).keys()]);
  // The rest, in as many calls as it takes while we read.
  let at = done;
  while (at < values.length) {
    at += ch.publishMany(values.slice(at));
    for (let m = reader.receiveSync(0); m !== undefined; m = reader.receiveSync(0))
      got.push(m.value.i);
  }
  t.deepEqual(got, [...Array(values.length).keys()]);
  t.is(ch.publishMany([]), 0);
});

test('publishMany: an oversize value is MessageTooLarge after the ones before it', async (t) => {
  const ch = open<string>(channelName(t, 'manybig'), { create: true, maxMessageSize: 100 });
  t.teardown(() => ch.close());
  const got = firstValueFrom(ch.messages().pipe(take(2), toArray()));
  const err = t.throws(() => ch.publishMany(['a', 'b', 'x'.repeat(200), 'c']), {
    instanceOf: MessageTooLargeError,
  });
  t.regex(err?.message ?? '', /after 2 messages/);
  t.deepEqual(await got, ['a', 'b']);
});

test('publishMany: messages of every size around the hand-copy limit and past the codec buffer, each whole', (t) => {
  const ch = open<string>(channelName(t, 'manysizes'), { create: true, capacity: 1 << 20 });
  t.teardown(() => ch.close());
  t.is(ch.receiveSync(0), undefined);
  // Encoded sizes around 128 bytes (a str8/str16 header of 2 or 3 bytes), then ones past the
  // codec's 8 KiB buffer (it grows mid-batch) and past the 64 KiB batch (it grows too), then
  // small ones again (copied from the new buffer into the new batch).
  const lengths = [
    0, 1, 100, 123, 124, 125, 126, 127, 128, 200, 255, 256, 8000, 20_000, 30_000, 30_000, 3, 125,
    126,
  ];
  const values = lengths.map((n, i) => String.fromCharCode(97 + (i % 26)).repeat(n));
  t.is(ch.publishMany(values), values.length);
  const got: string[] = [];
  for (let m = ch.receiveSync(0); m !== undefined; m = ch.receiveSync(0)) got.push(m.value);
  t.deepEqual(got, values);
});

test('publishMany: an oversize value is the error publish gives for it', (t) => {
  const ch = open<string>(channelName(t, 'manybig2'), { create: true, maxMessageSize: 100 });
  t.teardown(() => ch.close());
  const one = t.throws(() => ch.publish('x'.repeat(200)), { instanceOf: MessageTooLargeError });
  const many = t.throws(() => ch.publishMany(['x'.repeat(200)]), {
    instanceOf: MessageTooLargeError,
  });
  t.is(many?.message, one?.message);
  t.is(many?.published, 0);
});

test('receiveSync: values, undefined on timeout, argument checks, close releases', (t) => {
  const ch = open<unknown>(channelName(t, 'rsync'), { create: true });
  t.teardown(() => ch.close());
  t.is(ch.receiveSync(0), undefined, 'joins; nothing there yet');
  t.is(subscribers(ch), 1);
  ch.publish(null);
  ch.publish({ x: 1 });
  t.deepEqual(ch.receiveSync(0)?.value, null);
  t.deepEqual(ch.receiveSync(1000)?.value, { x: 1 });
  t.is(ch.receiveSync(20), undefined);
  t.throws(() => ch.receiveSync(-1), { instanceOf: InvalidArgumentError });
  t.throws(() => ch.receiveSync(Number.NaN), { instanceOf: InvalidArgumentError });
  ch.close();
  t.throws(() => ch.receiveSync(0), { instanceOf: ClosedError });
});

test('receiveSync in a worker thread blocks that thread only', async (t) => {
  const name = channelName(t, 'worker');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  const worker = new Worker(fileURLToPath(new URL('./fixtures/worker.js', import.meta.url)), {
    workerData: { name, count: 1000 },
  });
  t.teardown(() => worker.terminate());
  const result = new Promise<{ sum: number; count: number }>((resolve, reject) => {
    worker.on('message', (m: { ready?: boolean; sum: number; count: number }) => {
      if (!m.ready) resolve(m);
    });
    worker.on('error', reject);
  });
  await new Promise<void>((resolve) =>
    worker.once('message', (m: { ready?: boolean }) => m.ready && resolve()),
  );
  for (let i = 0; i < 1000; i++) if (!ch.publish(i)) await ch.send(i);
  const r = await result;
  t.is(r.count, 1000);
  t.is(r.sum, (999 * 1000) / 2);
});

test('list() reports channels with settings, bytes used, participants and staleness', async (t) => {
  const name = channelName(t, 'list');
  const ch = open<number>(name, { create: true, capacity: 8192, maxMessageSize: 128 });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  ch.publish(1);
  ch.publish(2);
  const mine = list().find((l) => l.name === name);
  t.truthy(mine?.summary);
  const s = mine?.summary;
  t.is(s?.kind, 'topic');
  t.is(s?.sync, 'lockfree');
  t.is(s?.capacity, 8192);
  t.is(s?.maxMessageSize, 128);
  t.is(s?.creatorPid, process.pid);
  t.true(s?.creatorAlive);
  t.false(s?.stale);
  t.is(s?.bytesUsed, 2 * 32, 'two unread 1-byte records of 32 bytes each');
  t.deepEqual(
    s?.participants.map((p) => [p.role, p.pid, p.lag]),
    [
      ['subscriber', process.pid, 64],
      ['producer', process.pid, 0],
    ],
  );
  t.false(unlinkIfStale(name), 'a live channel is kept');
  // A channel made by a process that has exited is stale, and unlinkIfStale removes it.
  const dead = channelName(t, 'stale');
  const p = spawnFixture(t, 'pub', [dead, '1', '1']);
  t.is((await p.exit).code, 0);
  const stale = list().find((l) => l.name === dead)?.summary;
  t.true(stale?.stale);
  t.false(stale?.creatorAlive);
  t.true(unlinkIfStale(dead));
  t.false(
    list().some((l) => l.name === dead),
    'gone',
  );
});

test('kind, sync and policy pass through: a semaphore-mode queue splits messages between consumers', async (t) => {
  const name = channelName(t, 'queue');
  const ch = open<number>(name, { create: true, kind: 'queue', sync: 'semaphore' });
  t.teardown(() => ch.close());
  t.like(ch.info(), { kind: 'queue', sync: 'semaphore' });
  const a: number[] = [];
  const b: number[] = [];
  const sa = ch.messages().subscribe((v) => a.push(v));
  const sb = ch.messages().subscribe((v) => b.push(v));
  t.teardown(() => {
    sa.unsubscribe();
    sb.unsubscribe();
  });
  t.deepEqual(
    ch.stats().participants.map((p) => p.role),
    ['consumer', 'consumer'],
  );
  const n = 2000;
  for (let i = 0; i < n; i++) if (!ch.publish(i)) await ch.send(i);
  await until(() => a.length + b.length === n);
  t.deepEqual(
    [...a, ...b].sort((x, y) => x - y),
    [...Array(n).keys()],
    'each message delivered exactly once',
  );
  t.is(list().find((l) => l.name === name)?.summary?.kind, 'queue');
});
