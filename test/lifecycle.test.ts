/**
 * The lifecycle options through the TypeScript API: `recover` replaces a dead channel and never
 * one in use, `allowForeignOwner`, and `unlink` noticed by a handle still attached.
 */
import { chownSync, existsSync } from 'node:fs';
import test from 'ava';
import {
  AlreadyExistsError,
  ClosedError,
  IncompatibleSegmentError,
  open,
  PermissionDeniedError,
  unlink,
} from 'shmring';
import { channelName, shmFile, sleep, spawnFixture, until } from './helpers.js';

/** The idle fixture's options (it opens with these and subscribes). */
const small = { capacity: 4096, maxMessageSize: 64 } as const;

test('recover replaces a channel whose creator was killed with nobody attached', async (t) => {
  const name = channelName(t, 'recover');
  const creator = spawnFixture(t, 'lifecycle', ['idle', name]);
  await creator.waitFor('ready');
  creator.child.kill('SIGKILL');
  await creator.exit;
  const plain = open(name);
  t.false(plain.info().created, 'without recover a stale channel is attached');
  t.is(plain.info().creatorPid, creator.child.pid ?? -1);
  // `list()` in a test running beside this one maps every channel for a moment, and a
  // channel someone maps is alive: wait for a look when nobody does.
  await until(() => plain.stats().stale, 10_000);
  plain.close();
  // Refused (IncompatibleSegment: the old one is 4096 bytes) while such a look maps it.
  const recover = () => {
    try {
      return open<number>(name, { recover: true, capacity: 8192 });
    } catch (e) {
      if (!(e instanceof IncompatibleSegmentError)) throw e;
      return undefined;
    }
  };
  let fresh = recover();
  for (let i = 0; i < 50 && fresh === undefined; i++) {
    await sleep(20);
    fresh = recover();
  }
  if (fresh === undefined) return t.fail('recover never replaced the stale channel');
  const replaced = fresh;
  t.teardown(() => replaced.close());
  t.true(fresh.info().created, 'replaced');
  t.is(fresh.info().creatorPid, process.pid);
  t.is(fresh.info().capacity, 8192);
  t.is(fresh.stats().tail, 0);
});

test('recover never replaces a channel a live process uses, and names it', async (t) => {
  const name = channelName(t, 'inuse');
  const creator = spawnFixture(t, 'lifecycle', ['idle', name]);
  await creator.waitFor('ready');
  const user = spawnFixture(t, 'lifecycle', ['idle', name]);
  await user.waitFor('ready');
  creator.child.kill('SIGKILL');
  await creator.exit;

  const attached = open(name, { recover: true });
  t.false(attached.info().created, 'attached, not replaced');
  t.false(attached.stats().stale);
  attached.close();
  const err = t.throws(() => open(name, { recover: true, exclusive: true }), {
    instanceOf: AlreadyExistsError,
  });
  t.regex(err?.message ?? '', new RegExp(`pid ${user.child.pid} \\(subscriber\\)`));
  const bigger = t.throws(() => open(name, { recover: true, capacity: 1 << 16 }), {
    instanceOf: IncompatibleSegmentError,
  });
  t.regex(bigger?.message ?? '', /4096/);

  user.child.kill('SIGKILL');
  await user.exit;
  const fresh = open(name, { recover: true, ...small });
  t.teardown(() => fresh.close());
  t.true(fresh.info().created, 'replaced once its last user died');
});

test('unlink while attached: publish throws ClosedError, a subscription ends with it after the rest', async (t) => {
  const name = channelName(t, 'unlinked');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  const got: number[] = [];
  const ended = new Promise<unknown>((resolve) => {
    ch.messages().subscribe({ next: (v) => got.push(v), error: resolve });
  });
  ch.publish(1);
  ch.publish(2);
  unlink(name);
  t.false(existsSync(shmFile(name)));
  t.throws(() => ch.publish(3), { instanceOf: ClosedError, message: /unlinked/ });
  const err = await ended;
  t.true(err instanceof ClosedError, String(err));
  t.deepEqual(got, [1, 2]);
  // A new channel under the name is a different one.
  const again = open<number>(name, { create: true });
  t.teardown(() => again.close());
  t.true(again.info().created);
});

test('a channel of another user is refused unless allowForeignOwner', (t) => {
  if (process.getuid?.() !== 0) {
    t.log('skipped: giving a file to another uid needs root');
    t.pass();
    return;
  }
  const name = channelName(t, 'foreign');
  open(name, { create: true, ...small, mode: 0o666 }).close();
  chownSync(shmFile(name), 65534, 65534);
  const err = t.throws(() => open(name), { instanceOf: PermissionDeniedError });
  t.regex(err?.message ?? '', /uid 65534.*allowForeignOwner/);
  const ch = open<number>(name, { allowForeignOwner: true });
  t.teardown(() => ch.close());
  t.is(ch.info().capacity, 4096);
  t.true(ch.publish(1));
});
