/**
 * Channels in any directory (`open(name, { dir, flush })`, `list/unlink/unlinkIfStale({ dir })`,
 * the CLI's `--dir` and `SHMRING_DIR`), with real processes. Every test works in a fresh
 * directory under `os.tmpdir()` (a disk filesystem here), removed when it ends, pass or fail.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import {
  CorruptSegmentError,
  IncompatibleSegmentError,
  InvalidArgumentError,
  list,
  NotFoundError,
  open,
  unlink,
  unlinkIfStale,
} from 'shmring';
import { runToEnd, shmFile, spawnFixture, until } from './helpers.js';

const cliPath = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

let serial = 0;
const uniqueName = (tag: string): string => `t-${tag}-${process.pid}-${serial++}`;

/** A fresh directory under the temp dir, removed with its contents when the test ends. */
function tempDir(t: ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'shmring-dirs-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const segment = (dir: string, name: string): string => join(dir, `shmring.${name}`);

for (const [flush, count] of [
  ['os', 10_000],
  ['publish', 500],
  ['10', 10_000],
] as const) {
  test(`a durable queue keeps ${count} messages of an exited producer for a new consumer process (flush ${flush})`, async (t) => {
    const dir = tempDir(t);
    const name = uniqueName('durable');
    const prod = await spawnFixture(t, 'dirqueue', ['produce', name, dir, String(count), flush])
      .exit;
    t.is(prod.code, 0);
    t.deepEqual(prod.json, { published: count });
    t.true(existsSync(segment(dir, name)));
    t.false(existsSync(shmFile(name)));
    const listed = list({ dir });
    t.is(listed.length, 1);
    t.is(listed[0]?.name, name);
    t.true(listed[0]?.summary?.stale);
    t.true((listed[0]?.summary?.bytesUsed ?? 0) > 0);
    const cons = await spawnFixture(t, 'dirqueue', ['consume', name, dir, String(count)]).exit;
    t.is(cons.code, 0);
    t.deepEqual(cons.json, { received: count, inOrder: true, extra: false });
    unlink(name, { dir });
    t.false(existsSync(segment(dir, name)));
  });
}

test('a durable topic: 10,000 messages of an exited producer replayed from earliest by a new process', async (t) => {
  const dir = tempDir(t);
  const name = uniqueName('topic');
  const prod = await spawnFixture(t, 'dirqueue', ['topic', name, dir, '10000']).exit;
  t.deepEqual(prod.json, { published: 10_000 });
  const replay = await spawnFixture(t, 'dirqueue', ['replay', name, dir, '10000']).exit;
  t.is(replay.code, 0);
  t.deepEqual(replay.json, { received: 10_000, inOrder: true, extra: false });
  unlink(name, { dir });
});

test('a semaphore-mode durable queue with its mutex left locked by a dead thread still works', async (t) => {
  const dir = tempDir(t);
  const name = uniqueName('mutex');
  t.is(
    (await spawnFixture(t, 'dirqueue', ['produce', name, dir, '3', 'os', 'semaphore']).exit).code,
    0,
  );
  // glibc's mutex word (the owner's tid) and owner, at the header's mutex (6 cache lines in):
  // a tid that no longer exists, as after a reboot.
  const gone = spawn('true');
  await once(gone, 'close');
  const word = Buffer.alloc(4);
  word.writeUInt32LE(gone.pid ?? 1);
  const fd = openSync(segment(dir, name), 'r+');
  try {
    writeSync(fd, word, 0, 4, 6 * 128);
    writeSync(fd, word, 0, 4, 6 * 128 + 8);
  } finally {
    closeSync(fd);
  }
  const more = await spawnFixture(t, 'dirqueue', [
    'produce',
    name,
    dir,
    '3',
    'os',
    'semaphore',
    '3',
  ]).exit;
  t.is(more.code, 0);
  const cons = await spawnFixture(t, 'dirqueue', ['consume', name, dir, '6']).exit;
  t.deepEqual(cons.json, { received: 6, inOrder: true, extra: false });
});

test('open, list, unlink and unlinkIfStale in a directory; ch.info().dir; ch.unlink()', (t) => {
  const dir = tempDir(t);
  const a = uniqueName('cat-a');
  const b = uniqueName('cat-b');
  const ch = open<number>(a, { create: true, dir, capacity: 4096 });
  t.is(ch.info().dir, dir);
  ch.close();
  open(b, { create: true, dir, capacity: 4096, flush: 'publish' }).close();
  t.deepEqual(
    list({ dir }).map((l) => l.name),
    [a, b].sort(),
  );
  t.false(list().some((l) => l.name === a));
  t.throws(() => unlink(a), { instanceOf: NotFoundError });
  // Created by this (live) process: not stale.
  t.false(unlinkIfStale(a, { dir }));
  unlink(a, { dir });
  t.false(existsSync(segment(dir, a)));
  const again = open(b, { dir, flush: 5 });
  again.close();
  again.unlink();
  t.false(existsSync(segment(dir, b)));
  t.deepEqual(list({ dir }), []);
});

test('bad directories and flush settings are typed errors naming the path', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'plain');
  writeFileSync(file, 'x');
  const name = uniqueName('baddir');
  const cases: [unknown, new (...a: never[]) => Error, string][] = [
    ['relative/dir', InvalidArgumentError, 'relative/dir'],
    ['', InvalidArgumentError, 'dir'],
    [42, InvalidArgumentError, '42'],
    [join(dir, 'missing'), NotFoundError, join(dir, 'missing')],
    [file, InvalidArgumentError, file],
    [join(file, 'below'), InvalidArgumentError, join(file, 'below')],
  ];
  for (const [bad, cls, shown] of cases) {
    const o = { dir: bad } as { dir: string };
    for (const f of [
      () => open(name, { create: true, ...o }),
      () => list(o),
      () => unlink(name, o),
      () => unlinkIfStale(name, o),
    ]) {
      const e = t.throws(f, { instanceOf: cls });
      t.true(e?.message.includes(shown), `${e?.message} names ${shown}`);
    }
  }
  for (const flush of [0, -1, 1.5, 3_600_001, Number.NaN, 'sometimes', null]) {
    t.throws(() => open(name, { create: true, dir, flush: flush as number }), {
      instanceOf: InvalidArgumentError,
      message: /flush/,
    });
  }
  t.throws(() => open(name, { dir }), { instanceOf: NotFoundError, message: new RegExp(dir) });
});

test('files of another layout version, truncated or damaged: IncompatibleSegment, CorruptSegment', (t) => {
  const dir = tempDir(t);
  const make = (tag: string): string => {
    const n = uniqueName(tag);
    open(n, { create: true, dir, capacity: 1 << 16 }).close();
    return n;
  };
  const old = make('old');
  const v = Buffer.alloc(4);
  v.writeUInt32LE(1);
  const fd = openSync(segment(dir, old), 'r+');
  writeSync(fd, v, 0, 4, 8); // the layout version word
  closeSync(fd);
  t.throws(() => open(old, { dir }), { instanceOf: IncompatibleSegmentError });
  const short = make('short');
  truncateSync(segment(dir, short), statSync(segment(dir, short)).size / 2);
  t.throws(() => open(short, { dir }), { instanceOf: CorruptSegmentError });
  t.is(list({ dir }).find((l) => l.name === short)?.error?.code, 'CorruptSegment');
  // Truncated under an open handle: its first publish checks the file and throws, never a
  // SIGBUS (a producer busy publishing while the file shrinks is the window docs/LAYOUT.md
  // describes).
  const live = make('live');
  const ch = open<number>(live, { dir });
  truncateSync(segment(dir, live), 4096);
  t.throws(() => ch.publish(1), { instanceOf: CorruptSegmentError });
  ch.close();
});

test('a directory this process may not write to is PermissionDenied (a child as uid 65534)', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('NOT RUN: needs root to run a child as another user');
    t.pass();
    return;
  }
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const script = `import { open } from 'shmring';
try { open('x', { create: true, dir: ${JSON.stringify(dir)} }); console.log('opened'); }
catch (e) { console.log(JSON.stringify({ code: e.code, named: e.message.includes(${JSON.stringify(dir)}) })); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repo,
    uid: 65534,
    gid: 65534,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const [code] = await once(child, 'close');
  t.is(code, 0);
  t.deepEqual(JSON.parse(out), { code: 'PermissionDenied', named: true });
  t.false(existsSync(segment(dir, 'x')));
});

/** `shmring ...args`, with `env` added, run to its end. */
async function cli(
  t: ExecutionContext,
  args: string[],
  input = '',
  env: Record<string, string> = {},
) {
  if (Object.keys(env).length === 0)
    return runToEnd(t, process.execPath, [cliPath, ...args], input);
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const [code] = await once(child, 'close');
  return { code: code as number | null, stdout, stderr };
}

test('CLI --dir: pub, tail, ls, stat and rm in a directory; SHMRING_DIR is the default', async (t) => {
  const dir = tempDir(t);
  const name = uniqueName('cli');
  const made = await cli(t, [
    'pub',
    name,
    '{"n":0}',
    '--create',
    '--dir',
    dir,
    '--flush',
    'publish',
  ]);
  t.is(made.code, 0, made.stderr);
  t.true(existsSync(segment(dir, name)));
  t.false(existsSync(shmFile(name)));
  const tail = spawn(process.execPath, [cliPath, 'tail', name, '-n', '2', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (tail.exitCode === null && tail.signalCode === null) tail.kill('SIGKILL');
  });
  // Listened for at once: tail may exit while the publishing command below still runs.
  const tailClosed = once(tail, 'close');
  let tailed = '';
  tail.stdout.on('data', (d) => {
    tailed += d;
  });
  // Once tail has joined (it holds a subscriber slot), publish two values.
  const subscribed = (): boolean => {
    const ch = open(name, { dir });
    try {
      return ch.stats().participants.some((p) => p.role === 'subscriber');
    } finally {
      ch.close();
    }
  };
  await until(subscribed);
  const pub = await cli(t, ['pub', name, '--dir', dir], '{"n":1}\n{"n":2}\n');
  t.is(pub.code, 0, pub.stderr);
  const [tailCode] = await tailClosed;
  t.is(tailCode, 0);
  t.deepEqual(
    tailed
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    [{ n: 1 }, { n: 2 }],
  );
  const ls = await cli(t, ['ls', '--json', '--dir', dir]);
  t.is(ls.code, 0, ls.stderr);
  t.deepEqual(
    (JSON.parse(ls.stdout) as { name: string }[]).map((l) => l.name),
    [name],
  );
  const viaEnv = await cli(t, ['ls', '--json'], '', { SHMRING_DIR: dir });
  t.deepEqual(
    (JSON.parse(viaEnv.stdout) as { name: string }[]).map((l) => l.name),
    [name],
  );
  const stat = await cli(t, ['stat', name, '--json', '--dir', dir]);
  t.is(stat.code, 0, stat.stderr);
  const s = JSON.parse(stat.stdout) as { name: string; dir: string; tail: number };
  t.is(s.dir, dir);
  t.true(s.tail > 0);
  const notHere = await cli(t, ['stat', name]);
  t.is(notHere.code, 1);
  const rm = await cli(t, ['rm', name, '--dir', dir]);
  t.is(rm.code, 0, rm.stderr);
  t.false(existsSync(segment(dir, name)));
  const bad = await cli(t, ['ls', '--dir', join(dir, 'missing')]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /does not exist/);
});
