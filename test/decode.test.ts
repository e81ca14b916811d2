/**
 * Decoding drained batches: the built-in codecs decode each message straight out of the
 * batch buffer (msgpack by offsets where that is faster, small msgpack messages through a
 * reused scratch buffer, raw by one copy), and what they return owns its bytes: values kept
 * while later batches reuse the buffer stay intact. `rawView` is the exception, by design.
 */
import test from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import { type Channel, open, rawView } from 'shmring';
import { channelName } from './helpers.js';

/** Values whose msgpack encodings run from 1 byte to ~4 KiB, across msgpackr's 140-byte line. */
function mixed(n: number): unknown[] {
  return Array.from({ length: n }, (_, i) => {
    switch (i % 5) {
      case 0:
        return i;
      case 1:
        return { i, s: 'é'.repeat(i % 300), bin: Buffer.alloc(i % 200, i & 0xff) };
      case 2:
        return ['x'.repeat((i * 13) % 4000), i, null, true];
      case 3:
        return { nested: { deep: [i, { k: 'v'.repeat(i % 150) }] } };
      default:
        return `str-${'z'.repeat((i * 7) % 180)}`;
    }
  });
}

async function viaEveryPath<T>(ch: Channel<T>, values: T[]): Promise<T[][]> {
  const rx = firstValueFrom(ch.messages().pipe(take(values.length), toArray()));
  const iterator = ch.iterate();
  const first = iterator.next(); // joins now
  ch.receiveSync(0);
  publishAll(ch, values);
  const viaRx = await rx;
  const viaIter = [(await first).value as T];
  while (viaIter.length < values.length) viaIter.push((await iterator.next()).value as T);
  await iterator.return?.();
  const viaSync: T[] = [];
  for (let i = 0; i < values.length; i++) viaSync.push(ch.receiveSync(10_000)?.value as T);
  return [viaRx, viaIter, viaSync];
}

function publishAll<T>(ch: Channel<T>, values: T[]): void {
  let done = 0;
  while (done < values.length) {
    const n = ch.publishMany(values.slice(done));
    if (n === 0) throw new Error('ring full: test values do not fit');
    done += n;
  }
}

test('msgpack: values from 1 byte to ~4 KiB decode alike through every receive path', async (t) => {
  const ch = open<unknown>(channelName(t, 'dec-msgpack'), { create: true, capacity: 1 << 22 });
  t.teardown(() => ch.close());
  const values = mixed(600);
  for (const got of await viaEveryPath(ch, values)) t.deepEqual(got, values);
});

test('raw: buffers of 0 to 4 KiB decode alike through every receive path', async (t) => {
  const ch = open<Buffer>(channelName(t, 'dec-raw'), {
    create: true,
    codec: 'raw',
    capacity: 1 << 22,
  });
  t.teardown(() => ch.close());
  const values = Array.from({ length: 400 }, (_, i) => Buffer.alloc((i * 37) % 4097, i & 0xff));
  for (const got of await viaEveryPath(ch, values)) {
    t.is(got.length, values.length);
    t.true(
      got.every((b, i) => Buffer.isBuffer(b) && b.equals(values[i] as Buffer)),
      'every buffer equal',
    );
  }
});

test('decoded values own their bytes: later batches do not change kept values', async (t) => {
  const ch = open<{ bin: Buffer; s: string }>(channelName(t, 'dec-own'), {
    create: true,
    capacity: 1 << 16,
  });
  const rawCh = open<Buffer>(channelName(t, 'dec-own-raw'), {
    create: true,
    codec: 'raw',
    capacity: 1 << 16,
  });
  t.teardown(() => {
    ch.close();
    rawCh.close();
  });
  const n = 3000; // many batches through one reused frame buffer
  const kept = firstValueFrom(ch.messages().pipe(take(n), toArray()));
  const keptRaw = firstValueFrom(rawCh.messages().pipe(take(n), toArray()));
  for (let i = 0; i < n; i++) {
    const v = { bin: Buffer.alloc(150, i & 0xff), s: String(i).repeat(50) };
    if (!ch.publish(v)) await ch.send(v);
    const b = Buffer.alloc(150, (i * 3) & 0xff);
    if (!rawCh.publish(b)) await rawCh.send(b);
  }
  const objs = await kept;
  const raws = await keptRaw;
  let intact = 0;
  for (let i = 0; i < n; i++) {
    const o = objs[i];
    const r = raws[i];
    if (
      o?.bin.equals(Buffer.alloc(150, i & 0xff)) &&
      o.s === String(i).repeat(50) &&
      r?.equals(Buffer.alloc(150, (i * 3) & 0xff))
    ) {
      intact++;
    }
  }
  t.is(intact, n);
});

test('small msgpack messages (decoded through one scratch buffer) own their bytes', async (t) => {
  // Room for all of them: the iterator and receiveSync readers read only after the last send.
  const ch = open<{ bin: Buffer; s: string; i: number }>(channelName(t, 'dec-own-small'), {
    create: true,
    capacity: 1 << 22,
  });
  t.teardown(() => ch.close());
  const n = 3000;
  const make = (i: number) => ({ bin: Buffer.alloc(i % 40, i & 0xff), s: `s${i}`, i });
  const kept = firstValueFrom(ch.messages().pipe(take(n), toArray()));
  const iterator = ch.iterate();
  const first = iterator.next(); // joins now
  ch.receiveSync(0);
  for (let i = 0; i < n; i++) {
    const v = make(i);
    if (!ch.publish(v)) await ch.send(v);
  }
  const viaRx = await kept;
  const viaIter = [(await first).value];
  while (viaIter.length < n) viaIter.push((await iterator.next()).value);
  await iterator.return?.();
  const viaSync = [];
  for (let i = 0; i < n; i++) viaSync.push(ch.receiveSync(10_000)?.value);
  for (const got of [viaRx, viaIter, viaSync])
    t.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => make(i)),
    );
});

test('rawView: exact bytes, as views of one reused buffer (no copy per message)', async (t) => {
  const ch = open<Buffer>(channelName(t, 'dec-view'), {
    create: true,
    codec: rawView(),
    capacity: 1 << 20,
  });
  t.teardown(() => ch.close());
  const values = Array.from({ length: 500 }, (_, i) => Buffer.alloc((i * 37) % 4097, i & 0xff));
  let equal = 0;
  const backing = new Set<ArrayBufferLike>();
  const done = new Promise<void>((resolve) => {
    let seen = 0;
    const sub = ch.messages().subscribe((view) => {
      if (view.equals(values[seen] as Buffer)) equal++;
      backing.add(view.buffer);
      if (++seen === values.length) {
        sub.unsubscribe();
        resolve();
      }
    });
  });
  ch.receiveSync(0);
  publishAll(ch, values);
  await done;
  t.is(equal, values.length);
  t.is(backing.size, 1, 'every view is of the one frame buffer');
  let syncEqual = 0;
  for (const v of values) if (ch.receiveSync(10_000)?.value.equals(v)) syncEqual++;
  t.is(syncEqual, values.length);
});
