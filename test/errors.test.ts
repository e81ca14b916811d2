/** Bad input gets a clear, typed error and never a crash. */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import test from 'ava';
import {
  AlreadyExistsError,
  CorruptSegmentError,
  IncompatibleSegmentError,
  InvalidArgumentError,
  InvalidNameError,
  MessageTooLargeError,
  NotFoundError,
  open,
  ShmringError,
  unlink,
} from 'shmring';
import { channelName, shmFile } from './helpers.js';

for (const bad of ['a/b', '', 'x'.repeat(201), 'has space', 'caf\u00e9', 'nul\0byte']) {
  test(`invalid name ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 8)}...(${bad.length})` : bad)} is InvalidName`, (t) => {
    const err = t.throws(() => open(bad, { create: true }), { instanceOf: InvalidNameError });
    t.is(err?.code, 'InvalidName');
    t.true(err instanceof ShmringError);
    t.throws(() => unlink(bad), { instanceOf: InvalidNameError });
  });
}

test('a 200-character name is fine', (t) => {
  const name = channelName(t, 'n').padEnd(200, 'x');
  t.teardown(() => unlink(name));
  open(name, { create: true }).close();
  t.pass();
});

test('oversize message is MessageTooLarge, and nothing is lost', async (t) => {
  const ch = open<string>(channelName(t, 'big'), { create: true, maxMessageSize: 100 });
  t.teardown(() => ch.close());
  const got: string[] = [];
  const sub = ch.messages().subscribe((v) => got.push(v));
  t.teardown(() => sub.unsubscribe());
  const err = t.throws(() => ch.publish('x'.repeat(200)), { instanceOf: MessageTooLargeError });
  t.regex(err?.message ?? '', /exceeds maxMessageSize 100/);
  await t.throwsAsync(ch.send('y'.repeat(200)), { instanceOf: MessageTooLargeError });
  t.true(ch.publish('small'));
  await new Promise((r) => setTimeout(r, 50));
  while (got.length < 1) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(got, ['small']);
});

test('opening a missing channel without create is NotFound', (t) => {
  const err = t.throws(() => open(channelName(t, 'missing')), { instanceOf: NotFoundError });
  t.is(err?.code, 'NotFound');
});

test('exclusive create of an existing name is AlreadyExists', (t) => {
  const name = channelName(t, 'excl');
  open(name, { create: true }).close();
  t.throws(() => open(name, { create: true, exclusive: true }), { instanceOf: AlreadyExistsError });
});

test('a segment full of garbage is IncompatibleSegment', (t) => {
  const name = channelName(t, 'garbage');
  const junk = randomBytes(64 * 1024);
  junk.writeUInt32LE(0xdeadbeef, 0); // never the magic, not zero
  writeFileSync(shmFile(name), junk);
  const err = t.throws(() => open(name), { instanceOf: IncompatibleSegmentError });
  t.regex(err?.message ?? '', /not a shmring segment/);
});

test('a segment truncated to 10 bytes is CorruptSegment', (t) => {
  const name = channelName(t, 'short');
  writeFileSync(shmFile(name), Buffer.alloc(10, 1));
  const err = t.throws(() => open(name), { instanceOf: CorruptSegmentError });
  t.regex(err?.message ?? '', /10 bytes/);
});

test('a real segment cut short is CorruptSegment, not a crash', (t) => {
  const name = channelName(t, 'cut');
  open(name, { create: true, capacity: 65536 }).close();
  const file = shmFile(name);
  const head = Buffer.alloc(8192);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  writeFileSync(file, head);
  t.throws(() => open(name), { instanceOf: CorruptSegmentError });
});

test('stated options that differ from the segment are IncompatibleSegment naming both', (t) => {
  const name = channelName(t, 'mismatch');
  open(name, { create: true, capacity: 65536 }).close();
  const err = t.throws(() => open(name, { capacity: 131072 }), {
    instanceOf: IncompatibleSegmentError,
  });
  t.regex(err?.message ?? '', /65536/);
  t.regex(err?.message ?? '', /131072/);
  t.is(open(name).info().capacity, 65536, 'no options: adopt the segment settings');
});

test('bad options are InvalidArgument with the value in the message', (t) => {
  const err = t.throws(() => open(channelName(t, 'badcap'), { create: true, capacity: 1000 }), {
    instanceOf: InvalidArgumentError,
  });
  t.regex(err?.message ?? '', /capacity 1000 is not a power of two/);
  t.throws(() => open(channelName(t, 'badsync'), { create: true, sync: 'nope' as never }), {
    instanceOf: InvalidArgumentError,
  });
});

test('segments are created 0600 by default', (t) => {
  const name = channelName(t, 'mode');
  open(name, { create: true }).close();
  t.is(statSync(shmFile(name)).mode & 0o777, 0o600);
});
