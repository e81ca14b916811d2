/** The TypeScript API in one process: values, wrap-around, back-pressure, close. */
import test from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import { ClosedError, type Codec, open, RingFullError, TimeoutError } from 'shmring';
import { channelName, until } from './helpers.js';

/** Buffers in, Buffers out: exact payload sizes. */
const bytes: Codec<Buffer> = {
  encode: (b) => b,
  decode: (b) => Buffer.from(b),
};

test('smoke: values round-trip through msgpack', async (t) => {
  const ch = open(channelName(t, 'smoke'), { create: true });
  t.teardown(() => ch.close());
  const values = [{ a: 1, b: 'two', c: [3] }, 'str', 42, null, true, { nested: { x: 1.5 } }];
  const got = firstValueFrom(ch.messages().pipe(take(values.length), toArray()));
  for (const v of values) t.true(ch.publish(v));
  t.deepEqual(await got, values);
});

test('wraps_with_padding: random sizes from 0 to maxMessageSize survive many laps', async (t) => {
  const maxMessageSize = 4096;
  const ch = open<Buffer>(channelName(t, 'wrap'), {
    create: true,
    capacity: 16384,
    maxMessageSize,
    codec: bytes,
  });
  t.teardown(() => ch.close());
  const n = 3000;
  let seed = 42;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const sent: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = i === 0 ? 0 : i === 1 ? maxMessageSize : rand() % (maxMessageSize + 1);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = (i + j * 7) & 0xff;
    sent.push(b);
  }
  const got = firstValueFrom(ch.messages().pipe(take(n), toArray()));
  for (const b of sent) await ch.send(b);
  const received = await got;
  t.is(received.length, n);
  let same = 0;
  for (const [i, b] of sent.entries()) if (received[i]?.equals(b)) same++;
  t.is(same, n);
  t.true(sent.reduce((s, b) => s + b.length, 0) > 10 * 16384, 'went around the ring many times');
});

test('policy block: publish returns false on a full ring and send waits for room', async (t) => {
  const ch = open<Buffer>(channelName(t, 'block'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 1000,
    codec: bytes,
  });
  t.teardown(() => ch.close());
  const got: Buffer[] = [];
  let paused = true;
  const reader = open<Buffer>(ch.name, { codec: bytes });
  t.teardown(() => reader.close());
  // A subscriber that holds the ring until we let it read.
  const first: Buffer[] = [];
  const sub = reader.messages().subscribe((b) => (paused ? first.push(b) : got.push(b)));
  t.teardown(() => sub.unsubscribe());
  let accepted = 0;
  while (ch.publish(Buffer.alloc(1000, accepted))) accepted++;
  t.true(accepted >= 3 && accepted <= 4, `a 4 KiB ring holds 3-4 records of 1 KiB (${accepted})`);
  await until(() => first.length === accepted);
  paused = false;
  await ch.send(Buffer.alloc(1000, 0xee));
  await until(() => got.length === 1);
  t.is(got[0]?.[0], 0xee);
});

test('policy fail: a full ring throws RingFullError', (t) => {
  const name = channelName(t, 'fail');
  const ch = open<Buffer>(name, {
    create: true,
    capacity: 4096,
    maxMessageSize: 1000,
    policy: 'fail',
    codec: bytes,
  });
  t.teardown(() => ch.close());
  const sub = ch.messages().subscribe(() => {});
  t.teardown(() => sub.unsubscribe());
  const err = t.throws(
    () => {
      for (let i = 0; i < 10; i++) ch.publish(Buffer.alloc(1000));
    },
    { instanceOf: RingFullError },
  );
  t.is(err?.code, 'RingFull');
});

test('close completes streams, rejects sends, and fails later calls with ClosedError', async (t) => {
  const ch = open(channelName(t, 'close'), { create: true });
  const completed = new Promise<void>((resolve, reject) =>
    ch.messages().subscribe({ complete: resolve, error: reject }),
  );
  ch.close();
  await completed;
  t.true(ch.closed);
  t.throws(() => ch.publish(1), { instanceOf: ClosedError, code: 'Closed' } as never);
  await t.throwsAsync(ch.send(1), { instanceOf: ClosedError });
  const err = await new Promise<unknown>((resolve) =>
    ch.messages().subscribe({ error: resolve, complete: () => resolve(undefined) }),
  );
  t.true(err instanceof ClosedError);
  t.throws(() => ch.info(), { instanceOf: ClosedError });
  ch.close(); // idempotent
});

test('unsubscribe releases the participant slot; several subscriptions in one process', async (t) => {
  const ch = open<number>(channelName(t, 'slots'), { create: true });
  t.teardown(() => ch.close());
  const subscribers = () => ch.stats().participants.filter((p) => p.role === 'subscriber').length;
  const a: number[] = [];
  const b: number[] = [];
  const sa = ch.messages().subscribe((v) => a.push(v));
  const sb = ch.messages().subscribe((v) => b.push(v));
  t.is(subscribers(), 2);
  ch.publish(1);
  ch.publish(2);
  await until(() => a.length === 2 && b.length === 2);
  t.deepEqual(a, [1, 2]);
  t.deepEqual(b, [1, 2]);
  sa.unsubscribe();
  t.is(subscribers(), 1);
  sb.unsubscribe();
  t.is(subscribers(), 0);
});

test('TimeoutError from send when the only subscriber never reads', async (t) => {
  const ch = open<Buffer>(channelName(t, 'sendtimeout'), {
    create: true,
    capacity: 4096,
    maxMessageSize: 1000,
    codec: bytes,
  });
  t.teardown(() => ch.close());
  // The subscriber lives on this event loop: it cannot drain while this test runs
  // synchronously, and a zero timeout gives up before yielding to it.
  const sub = ch.messages().subscribe(() => {});
  t.teardown(() => sub.unsubscribe());
  while (ch.publish(Buffer.alloc(1000))) {}
  const err = await t.throwsAsync(ch.send(Buffer.alloc(1000), { timeoutMs: 0 }), {
    instanceOf: TimeoutError,
  });
  t.is(err?.code, 'Timeout');
});
