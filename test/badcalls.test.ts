/**
 * Every careless or hostile call the API allows gets a {@link ShmringError} with a stable
 * `code` (never a TypeError, a napi conversion error, a codec's own error or a stack
 * overflow), and costs nothing already committed: a message published before the bad call
 * still arrives after it, and the bad call published nothing.
 */
import test, { type ExecutionContext } from 'ava';
import { unpack } from 'msgpackr';
import { isObservable, type Observable } from 'rxjs';
import { type Channel, type ErrorCode, open, ShmringError, unlink, unlinkIfStale } from 'shmring';
import { channelName } from './helpers.js';

/** The calls below are wrong on purpose: they go through `any`. */
// biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed calls
type Any = any;

interface Handles {
  name: string;
  /** msgpack publisher (the default codec). */
  mp: Channel<Any>;
  /** json and raw publishers on the same segment (the codec is not stored in it). */
  js: Channel<Any>;
  raw: Channel<Any>;
}

const circular = (): unknown => {
  const o: { self?: unknown } = {};
  o.self = o;
  return o;
};

const detached = (): Uint8Array => {
  const ab = new ArrayBuffer(8);
  const view = new Uint8Array(ab);
  structuredClone(ab, { transfer: [ab] });
  return view;
};

/** Every bad call, with the code it must fail with. */
const table: { what: string; code: ErrorCode; call: (h: Handles) => unknown }[] = [
  // open / unlink: wrong-typed options and names
  {
    what: "open capacity '4096'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { capacity: '4096' } as Any),
  },
  {
    what: 'open policy null',
    code: 'InvalidArgument',
    call: (h) => open(h.name, { policy: null } as Any),
  },
  {
    what: "open create 'yes'",
    code: 'InvalidArgument',
    call: (h) => open(`${h.name}-x`, { create: 'yes' } as Any),
  },
  {
    what: 'open exclusive 1',
    code: 'InvalidArgument',
    call: (h) => open(h.name, { exclusive: 1 } as Any),
  },
  {
    what: "open recover 'true'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { recover: 'true' } as Any),
  },
  {
    what: 'open allowForeignOwner 0',
    code: 'InvalidArgument',
    call: (h) => open(h.name, { allowForeignOwner: 0 } as Any),
  },
  {
    what: "open kind 'fanout'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { kind: 'fanout' } as Any),
  },
  { what: 'open sync 7', code: 'InvalidArgument', call: (h) => open(h.name, { sync: 7 } as Any) },
  {
    what: 'open maxMessageSize NaN',
    code: 'InvalidArgument',
    call: (h) => open(h.name, { maxMessageSize: Number.NaN }),
  },
  {
    what: "open maxParticipants '8'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { maxParticipants: '8' } as Any),
  },
  {
    what: "open mode 'rw'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { mode: 'rw' } as Any),
  },
  { what: 'open mode -1', code: 'InvalidArgument', call: (h) => open(h.name, { mode: -1 }) },
  { what: 'open mode 0.5', code: 'InvalidArgument', call: (h) => open(h.name, { mode: 0.5 }) },
  {
    what: 'open mode 0o1600 (the sticky bit)',
    code: 'InvalidArgument',
    call: (h) => open(h.name, { mode: 0o1600 }),
  },
  { what: 'open codec 5', code: 'InvalidArgument', call: (h) => open(h.name, { codec: 5 } as Any) },
  {
    what: "open wait 'fast'",
    code: 'InvalidArgument',
    call: (h) => open(h.name, { wait: 'fast' } as Any),
  },
  { what: "open options 'yes'", code: 'InvalidArgument', call: (h) => open(h.name, 'yes' as Any) },
  { what: 'open name 5', code: 'InvalidName', call: () => open(5 as Any) },
  { what: 'unlink(5)', code: 'InvalidName', call: () => unlink(5 as Any) },
  { what: 'unlink()', code: 'InvalidName', call: () => (unlink as Any)() },
  { what: 'unlinkIfStale(null)', code: 'InvalidName', call: () => unlinkIfStale(null as Any) },
  // values the codec cannot encode
  { what: 'json BigInt', code: 'InvalidArgument', call: (h) => h.js.publish(10n) },
  { what: 'json circular', code: 'InvalidArgument', call: (h) => h.js.publish(circular()) },
  { what: 'json undefined', code: 'InvalidArgument', call: (h) => h.js.publish(undefined) },
  { what: 'msgpack circular', code: 'InvalidArgument', call: (h) => h.mp.publish(circular()) },
  { what: 'msgpack Symbol', code: 'InvalidArgument', call: (h) => h.mp.publish(Symbol('s')) },
  {
    what: 'msgpack Symbol field',
    code: 'InvalidArgument',
    call: (h) => h.mp.publish({ s: Symbol('s') }),
  },
  { what: 'msgpack BigInt 2^70', code: 'InvalidArgument', call: (h) => h.mp.publish(2n ** 70n) },
  { what: 'msgpack function', code: 'InvalidArgument', call: (h) => h.mp.publish(() => 1) },
  { what: 'msgpack method', code: 'InvalidArgument', call: (h) => h.mp.publish({ a: 1, f() {} }) },
  { what: 'raw string', code: 'InvalidArgument', call: (h) => h.raw.publish('abc') },
  { what: 'raw detached', code: 'InvalidArgument', call: (h) => h.raw.publish(detached()) },
  { what: 'send json BigInt', code: 'InvalidArgument', call: (h) => h.js.send(10n) },
  { what: 'send msgpack circular', code: 'InvalidArgument', call: (h) => h.mp.send(circular()) },
  { what: 'send raw detached', code: 'InvalidArgument', call: (h) => h.raw.send(detached()) },
  {
    what: 'publishMany json BigInt',
    code: 'InvalidArgument',
    call: (h) => h.js.publishMany([10n]),
  },
  { what: 'publishMany 5', code: 'InvalidArgument', call: (h) => h.mp.publishMany(5 as Any) },
  { what: 'publishMany null', code: 'InvalidArgument', call: (h) => h.mp.publishMany(null as Any) },
  // send options
  {
    what: 'send signal {}',
    code: 'InvalidArgument',
    call: (h) => h.mp.send(1, { signal: {} } as Any),
  },
  {
    what: "send signal 'x'",
    code: 'InvalidArgument',
    call: (h) => h.mp.send(1, { signal: 'x' } as Any),
  },
  {
    what: 'send timeoutMs NaN',
    code: 'InvalidArgument',
    call: (h) => h.mp.send(1, { timeoutMs: Number.NaN }),
  },
  {
    what: "send timeoutMs 'abc'",
    code: 'InvalidArgument',
    call: (h) => h.mp.send(1, { timeoutMs: 'abc' } as Any),
  },
  {
    what: 'send timeoutMs -1',
    code: 'InvalidArgument',
    call: (h) => h.mp.send(1, { timeoutMs: -1 }),
  },
  { what: 'send options 5', code: 'InvalidArgument', call: (h) => h.mp.send(1, 5 as Any) },
  // receive options
  {
    what: "receiveSync 'abc'",
    code: 'InvalidArgument',
    call: (h) => h.mp.receiveSync('abc' as Any),
  },
  { what: 'receiveSync NaN', code: 'InvalidArgument', call: (h) => h.mp.receiveSync(Number.NaN) },
  { what: 'receiveSync -5', code: 'InvalidArgument', call: (h) => h.mp.receiveSync(-5) },
  {
    what: "receiveSync wait 'x'",
    code: 'InvalidArgument',
    call: (h) => h.mp.receiveSync(0, { wait: 'x' } as Any),
  },
  {
    what: 'receiveSync onLost 5',
    code: 'InvalidArgument',
    call: (h) => h.mp.receiveSync(0, { onLost: 5 } as Any),
  },
  {
    what: "receiveSync options 'x'",
    code: 'InvalidArgument',
    call: (h) => h.mp.receiveSync(0, 'x' as Any),
  },
  {
    what: "messages wait 'x'",
    code: 'InvalidArgument',
    call: (h) => h.mp.messages({ wait: 'x' } as Any),
  },
  {
    what: 'messages onLost {}',
    code: 'InvalidArgument',
    call: (h) => h.mp.messages({ onLost: {} } as Any),
  },
  { what: 'messages options 7', code: 'InvalidArgument', call: (h) => h.mp.messages(7 as Any) },
  {
    what: 'iterate signal {}',
    code: 'InvalidArgument',
    call: (h) => h.mp.iterate({ signal: {} } as Any),
  },
  {
    what: "iterate wait 'x'",
    code: 'InvalidArgument',
    call: (h) => h.mp.iterate({ wait: 'x' } as Any),
  },
  {
    what: 'iterate onLost 1',
    code: 'InvalidArgument',
    call: (h) => h.mp.iterate({ onLost: 1 } as Any),
  },
];

/**
 * What a call did: thrown at once, rejected, or (an Observable or iterator) failed once
 * used; `undefined` if it did not fail at all.
 */
async function failure(f: () => unknown): Promise<unknown> {
  let r: unknown;
  try {
    r = f();
  } catch (e) {
    return e;
  }
  try {
    if (r instanceof Promise) await r;
    else if (isObservable(r)) {
      await new Promise<void>((resolve, reject) => {
        const sub = (r as Observable<unknown>).subscribe({ error: reject, complete: resolve });
        setTimeout(() => {
          sub.unsubscribe();
          resolve();
        }, 50);
      });
    } else if (r !== null && typeof r === 'object' && Symbol.asyncIterator in r) {
      const it = r as AsyncIterableIterator<unknown>;
      const first = it.next();
      const timer = new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.race([first, timer]);
      await it.return?.();
      await first;
    }
  } catch (e) {
    return e;
  }
  return undefined;
}

function handles(t: ExecutionContext, tag: string): Handles & { rx: Channel<Any> } {
  const name = channelName(t, tag);
  const mp = open<Any>(name, { create: true, capacity: 1 << 16, maxMessageSize: 1024 });
  const js = open<Any>(name, { codec: 'json' });
  const raw = open<Any>(name, { codec: 'raw' });
  const rx = open<Any>(name, { codec: 'raw' });
  t.teardown(() => {
    for (const c of [mp, js, raw, rx]) c.close();
  });
  rx.receiveSync(0); // join before anything is published
  return { name, mp, js, raw, rx };
}

test('every bad call is a ShmringError with its code, and loses nothing committed', async (t) => {
  const h = handles(t, 'bad');
  const wrong: string[] = [];
  for (const [i, row] of table.entries()) {
    const marker = Buffer.from(`marker-${i}`);
    h.raw.publish(marker);
    const e = await failure(() => row.call(h));
    if (!(e instanceof ShmringError) || e.code !== row.code) {
      const got =
        e instanceof Error
          ? `${e.constructor.name} ${(e as { code?: unknown }).code}: ${e.message}`
          : String(e);
      wrong.push(`${row.what}: wanted ${row.code}, got ${got}`);
    } else if (!/\S/.test(e.message)) {
      wrong.push(`${row.what}: empty message`);
    }
    // The marker still arrives, and the bad call published nothing after it.
    const got = h.rx.receiveSync(5000)?.value as Buffer | undefined;
    if (got === undefined || !got.equals(marker)) wrong.push(`${row.what}: marker lost`);
    const extra = h.rx.receiveSync(0);
    if (extra !== undefined)
      wrong.push(`${row.what}: published ${JSON.stringify(String(extra.value))}`);
  }
  // The codecs work as before after refusing values (msgpackr's buffer is not left broken).
  const after = { after: [1, 'two', { three: 3 }] };
  h.mp.publish(after);
  h.js.publish(after);
  t.deepEqual(unpack(h.rx.receiveSync(5000)?.value as Buffer), after);
  t.deepEqual(JSON.parse(String(h.rx.receiveSync(5000)?.value)), after);
  t.deepEqual(wrong, [], `${wrong.length} of ${table.length} bad calls misbehaved`);
  t.log(`${table.length} bad calls, ${wrong.length} wrong`);
});

test('error messages name the option and the value', async (t) => {
  const name = channelName(t, 'bad-msg');
  const cases: [() => unknown, RegExp][] = [
    [() => open(name, { capacity: '4096' } as Any), /capacity.*'4096'|capacity.*"4096"/],
    [() => open(name, { policy: null } as Any), /policy.*null/],
    [() => open(name, { create: 'yes' } as Any), /create.*"yes"|create.*'yes'/],
    [() => unlink(5 as Any), /name.*5|number/],
  ];
  for (const [f, re] of cases) {
    const e = await failure(f);
    t.true(e instanceof ShmringError, String(e));
    t.regex((e as Error).message, re);
  }
});

test('null options mean no options', (t) => {
  const h = handles(t, 'bad-null');
  const again = open<Any>(h.name, null as Any);
  t.teardown(() => again.close());
  t.true(again.publish(1));
  t.deepEqual(h.rx.receiveSync(5000)?.value, Buffer.from([1]));
  t.notThrows(() =>
    h.mp
      .messages(null as Any)
      .subscribe()
      .unsubscribe(),
  );
  t.notThrows(() => h.mp.iterate(null as Any).return?.());
  t.is(h.mp.receiveSync(0, null as Any), undefined);
  return h.mp.send(2, null as Any);
});

/** Values a subscriber cannot decode: a codec mismatch, or a hostile process's records. */
const undecodable: { what: string; codec: 'msgpack' | 'json'; bytes: Buffer }[] = [
  { what: 'empty record, msgpack', codec: 'msgpack', bytes: Buffer.alloc(0) },
  { what: 'empty record, json', codec: 'json', bytes: Buffer.alloc(0) },
  { what: '250 bytes 0xc1, msgpack', codec: 'msgpack', bytes: Buffer.alloc(250, 0xc1) },
  { what: 'truncated map, msgpack', codec: 'msgpack', bytes: Buffer.from([0x82, 0xa1]) },
  { what: 'msgpack read as json', codec: 'json', bytes: Buffer.from([0x81, 0xa1, 0x61, 0x01]) },
  { what: 'json read as msgpack', codec: 'msgpack', bytes: Buffer.from('{"a":1}') },
];

test('a message the codec cannot decode is CorruptSegment on every receive path; later messages still arrive', async (t) => {
  const wrong: string[] = [];
  for (const [i, u] of undecodable.entries()) {
    const name = channelName(t, `bad-dec${i}`);
    const raw = open<Buffer>(name, { create: true, codec: 'raw', capacity: 1 << 16 });
    const rx = open<unknown>(name, { codec: u.codec });
    t.teardown(() => {
      raw.close();
      rx.close();
    });
    const good = u.codec === 'json' ? Buffer.from('"ok"') : Buffer.from([0xa2, 0x6f, 0x6b]);
    const errors: unknown[] = [];
    const seen: unknown[] = [];
    const stream = new Promise<void>((resolve) => {
      rx.messages().subscribe({
        next: (v) => seen.push(v),
        error: (e) => {
          errors.push(e);
          resolve();
        },
      });
    });
    const it = rx.iterate();
    const first = it.next();
    rx.receiveSync(0);
    raw.publish(good);
    raw.publish(u.bytes);
    raw.publish(good);
    // receiveSync: the good one, the bad one throws, the next good one still comes.
    const sync: unknown[] = [];
    for (let k = 0; k < 3; k++) {
      try {
        sync.push(rx.receiveSync(5000)?.value);
      } catch (e) {
        errors.push(e);
        sync.push('error');
      }
    }
    if (JSON.stringify(sync) !== JSON.stringify(['ok', 'error', 'ok']))
      wrong.push(`${u.what}: receiveSync gave ${JSON.stringify(sync)}`);
    await stream;
    if (JSON.stringify(seen) !== '["ok"]')
      wrong.push(`${u.what}: messages() gave ${JSON.stringify(seen)}`);
    const one = await first;
    if (one.value !== 'ok') wrong.push(`${u.what}: iterate gave ${JSON.stringify(one)}`);
    try {
      const two = await it.next();
      wrong.push(`${u.what}: iterate decoded ${JSON.stringify(two)}`);
    } catch (e) {
      errors.push(e);
    }
    if (errors.length !== 3) wrong.push(`${u.what}: ${errors.length} errors, not 3`);
    for (const e of errors) {
      if (!(e instanceof ShmringError) || e.code !== 'CorruptSegment')
        wrong.push(`${u.what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
  }
  t.deepEqual(wrong, []);
});
