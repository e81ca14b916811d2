/**
 * The RxJS contract of `messages()` (after rxjs `fromEventPattern`): cold, one participant
 * slot per subscription, released on unsubscribe (also during registration), errors down the
 * error path, several subscriptions per process, `share()` as users expect.
 */
import test from 'ava';
import {
  firstValueFrom,
  map,
  type Observable,
  type Observer,
  Subscriber,
  Subscription,
  share,
  take,
  toArray,
} from 'rxjs';
import {
  BusyError,
  ClosedError,
  type Codec,
  CorruptSegmentError,
  open,
  ShmringError,
} from 'shmring';
import { channelName, until } from './helpers.js';

const subscribers = (ch: { stats(): { participants: { role: string }[] } }): number =>
  ch.stats().participants.filter((p) => p.role === 'subscriber').length;

test('cold: nothing is taken until subscribe, and each subscription owns one slot', async (t) => {
  const ch = open<number>(channelName(t, 'cold'), { create: true });
  t.teardown(() => ch.close());
  const stream = ch.messages();
  t.is(subscribers(ch), 0, 'creating the observable takes no slot');
  const a = stream.subscribe();
  const b = stream.subscribe();
  t.is(subscribers(ch), 2);
  a.unsubscribe();
  t.is(subscribers(ch), 1);
  b.unsubscribe();
  t.is(subscribers(ch), 0);
});

test('cold: a later subscriber sees only what is published after it subscribed', async (t) => {
  const ch = open<number>(channelName(t, 'late'), { create: true });
  t.teardown(() => ch.close());
  const early: number[] = [];
  const s1 = ch.messages().subscribe((v) => early.push(v));
  t.teardown(() => s1.unsubscribe());
  ch.publish(1);
  const late = firstValueFrom(ch.messages().pipe(take(1)));
  ch.publish(2);
  t.is(await late, 2);
  await until(() => early.length === 2);
  t.deepEqual(early, [1, 2]);
});

test('unsubscribe during registration: take(0) and a closed subscriber take no slot', (t) => {
  const ch = open<number>(channelName(t, 'reg'), { create: true });
  t.teardown(() => ch.close());
  ch.messages().pipe(take(0)).subscribe();
  t.is(subscribers(ch), 0);
  // A subscriber that is already unsubscribed when the subscribe function runs.
  const closed = new Subscriber<number>();
  closed.unsubscribe();
  ch.messages().subscribe(closed);
  t.is(subscribers(ch), 0);
  // Unsubscribed by its parent subscription in the same tick as the subscribe.
  const parent = new Subscription();
  parent.add(ch.messages().subscribe());
  t.is(subscribers(ch), 1);
  parent.unsubscribe();
  t.is(subscribers(ch), 0);
});

test('unsubscribe from inside next(), mid-batch: no more values, slot released', async (t) => {
  const ch = open<number>(channelName(t, 'midbatch'), { create: true });
  t.teardown(() => ch.close());
  const got: number[] = [];
  let sub: Subscription | undefined;
  const stopped = new Promise<void>((resolve) => {
    sub = ch.messages().subscribe((v) => {
      got.push(v);
      if (v === 2) {
        sub?.unsubscribe();
        resolve();
      }
    });
  });
  for (let i = 0; i < 10; i++) ch.publish(i); // one burst, drained as one batch
  await stopped;
  await new Promise((r) => setImmediate(r));
  t.deepEqual(got, [0, 1, 2]);
  t.is(subscribers(ch), 0);
  // take(n) does the same through the operator chain.
  const three = firstValueFrom(ch.messages().pipe(take(3), toArray()));
  for (let i = 0; i < 10; i++) ch.publish(i);
  t.deepEqual(await three, [0, 1, 2]);
  t.is(subscribers(ch), 0);
});

test('errors go down the error path: closed channel, full participant table', async (t) => {
  const name = channelName(t, 'errpath');
  const ch = open<number>(name, { create: true, maxParticipants: 2 });
  const errorOf = (o: Observable<number>) =>
    new Promise<unknown>((resolve) => {
      o.subscribe({ error: resolve, complete: () => resolve('completed') });
    });
  const a = ch.messages().subscribe();
  const b = ch.messages().subscribe();
  t.teardown(() => {
    a.unsubscribe();
    b.unsubscribe();
  });
  // No throw from subscribe(): the error arrives through the observer.
  const full = await errorOf(ch.messages());
  t.true(full instanceof BusyError, String(full));
  t.is(subscribers(ch), 2);
  ch.close();
  const closed = await errorOf(ch.messages());
  t.true(closed instanceof ClosedError);
});

test('a value the codec cannot decode errors the stream and releases its slot', async (t) => {
  const name = channelName(t, 'decodeerr');
  const picky: Codec<number> = {
    encode: (n) => Buffer.from([n]),
    decode: (b) => {
      if (b[0] === 13) throw new RangeError('unlucky');
      return b[0] ?? -1;
    },
  };
  const ch = open<number>(name, { create: true, codec: picky });
  t.teardown(() => ch.close());
  const got: number[] = [];
  const err = new Promise<unknown>((resolve) =>
    ch.messages().subscribe({ next: (v) => got.push(v), error: resolve }),
  );
  ch.publish(1);
  ch.publish(13);
  ch.publish(2);
  const e = await err;
  // A CorruptSegment naming the message, with the codec's own error as its cause.
  t.true(e instanceof CorruptSegmentError, String(e));
  t.true((e as Error).cause instanceof RangeError);
  t.regex((e as Error).message, /1-byte message.*unlucky/);
  t.deepEqual(got, [1]);
  t.is(subscribers(ch), 0);
});

test('an error thrown by an operator downstream tears the subscription down', async (t) => {
  const ch = open<number>(channelName(t, 'operr'), { create: true });
  t.teardown(() => ch.close());
  const err = new Promise<unknown>((resolve) =>
    ch
      .messages()
      .pipe(
        map((v) => {
          if (v === 2) throw new Error('boom');
          return v;
        }),
      )
      .subscribe({ error: resolve }),
  );
  ch.publish(1);
  ch.publish(2);
  ch.publish(3);
  t.is(((await err) as Error).message, 'boom');
  t.is(subscribers(ch), 0);
  t.false((await err) instanceof ShmringError);
});

test('several subscriptions in one process each get every message', async (t) => {
  const ch = open<number>(channelName(t, 'several'), { create: true });
  t.teardown(() => ch.close());
  const n = 2000;
  const all = Promise.all(
    [0, 1, 2, 3].map(() => firstValueFrom(ch.messages().pipe(take(n), toArray()))),
  );
  t.is(subscribers(ch), 4);
  for (let i = 0; i < n; i++) if (!ch.publish(i)) await ch.send(i);
  const results = await all;
  for (const r of results) t.deepEqual(r, [...Array(n).keys()]);
  t.is(subscribers(ch), 0);
});

test('share(): one slot for many observers, released when the last one leaves', async (t) => {
  const ch = open<number>(channelName(t, 'share'), { create: true });
  t.teardown(() => ch.close());
  const shared = ch.messages().pipe(share());
  const a: number[] = [];
  const b: number[] = [];
  const sa = shared.subscribe((v) => a.push(v));
  const sb = shared.subscribe((v) => b.push(v));
  t.is(subscribers(ch), 1, 'one slot for both observers');
  ch.publish(1);
  ch.publish(2);
  await until(() => a.length === 2 && b.length === 2);
  t.deepEqual(a, [1, 2]);
  t.deepEqual(b, [1, 2]);
  sa.unsubscribe();
  t.is(subscribers(ch), 1, 'still one observer');
  sb.unsubscribe();
  t.is(subscribers(ch), 0, 'refCount: the last unsubscribe releases the slot');
  // Subscribing again starts a fresh shared subscription (and slot).
  const c = firstValueFrom(shared.pipe(take(1)));
  t.is(subscribers(ch), 1);
  ch.publish(3);
  t.is(await c, 3);
  t.is(subscribers(ch), 0);
});

test('close() completes every open messages() subscription', async (t) => {
  const ch = open<number>(channelName(t, 'closeall'), { create: true });
  const completions: Promise<void>[] = [];
  for (let i = 0; i < 3; i++) {
    completions.push(
      new Promise<void>((resolve, reject) => {
        const o: Partial<Observer<number>> = { complete: resolve, error: reject };
        ch.messages().subscribe(o);
      }),
    );
  }
  ch.close();
  await Promise.all(completions);
  t.pass();
});
