/** The `shmring` CLI: every command spawned as a real process, its output parsed. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import { open } from 'shmring';
import { channelName, shmFile, spawnFixture, until } from './helpers.js';

const cliPath = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `shmring ...args`; killed and reaped when the test ends. */
function start(t: ExecutionContext, args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  // 'close', not 'exit': output still in the pipes arrives after 'exit' (seen under load).
  const done = once(child, 'close').then(([code]) => ({
    code: code as number | null,
    stdout,
    stderr,
  }));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done;
    }
  });
  return { child, done };
}

/** Runs `shmring ...args` to the end, with `input` on stdin. */
function run(t: ExecutionContext, args: string[], input = ''): Promise<Run> {
  const { child, done } = start(t, args);
  child.stdin?.end(input);
  return done;
}

/** A failed command: status 1 and exactly one line on stderr. */
function assertOneLineError(t: ExecutionContext, r: Run, pattern: RegExp): void {
  t.is(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  t.is(lines.length, 1, r.stderr);
  t.regex(lines[0] ?? '', pattern);
}

const subscribers = (name: string): number => {
  const ch = open(name);
  try {
    return ch.stats().participants.filter((p) => p.role === 'subscriber').length;
  } finally {
    ch.close();
  }
};

test('--help lists every command, and every command has --help', async (t) => {
  const top = await run(t, ['--help']);
  t.is(top.code, 0);
  const commands = ['ls', 'stat', 'tail', 'pub', 'rm', 'demo', 'bench'];
  for (const c of commands) t.regex(top.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  const helps = await Promise.all(commands.map((c) => run(t, [c, '--help'])));
  for (const [i, h] of helps.entries()) {
    t.is(h.code, 0);
    t.true(h.stdout.startsWith(`Usage: shmring ${commands[i]} `), h.stdout);
  }
  const unknown = await run(t, ['frobnicate']);
  assertOneLineError(t, unknown, /unknown command/);
});

test('ls: name, kind, sync, capacity, bytes used, participants, stale (text and --json)', async (t) => {
  // Tags carry our pid first, so the prefix below matches no other test run's channels.
  const tag = `ls${process.pid}`;
  const name = channelName(t, `${tag}-live`);
  const ch = open<number>(name, { create: true, capacity: 8192, maxMessageSize: 128 });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  ch.publish(1);
  ch.publish(2);
  const dead = channelName(t, `${tag}-dead`);
  t.is((await spawnFixture(t, 'pub', [dead, '1', '1']).exit).code, 0);

  const r = await run(t, ['ls', '--json', `t-${tag}-`]);
  t.is(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as {
    name: string;
    kind: string;
    sync: string;
    capacity: number;
    bytesUsed: number;
    participants: unknown[];
    stale: boolean;
  }[];
  const live = rows.find((x) => x.name === name);
  t.like(live, { kind: 'topic', sync: 'lockfree', capacity: 8192, bytesUsed: 64, stale: false });
  t.is(live?.participants.length, 2);
  t.like(
    rows.find((x) => x.name === dead),
    { stale: true },
  );

  const text = await run(t, ['ls', `t-${tag}-`]);
  t.is(text.code, 0);
  const lines = text.stdout.trim().split('\n');
  t.regex(lines[0] ?? '', /^NAME\s+KIND\s+SYNC\s+POLICY\s+CAPACITY\s+USED\s+PARTICIPANTS\s+STALE$/);
  const liveRow = lines.find((l) => l.startsWith(`${name} `))?.split(/\s{2,}/);
  t.deepEqual(liveRow, [name, 'topic', 'lockfree', 'block', '8.0 KiB', '64 B', '2']);
  t.regex(lines.find((l) => l.startsWith(`${dead} `)) ?? '', /stale$/);
});

test('stat: header fields, participants with counters and lag; a missing channel is one line', async (t) => {
  const name = channelName(t, 'cli-stat');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  ch.receiveSync(0);
  for (let i = 0; i < 3; i++) ch.publish(i);
  t.deepEqual(ch.receiveSync(0)?.value, 0);
  const r = await run(t, ['stat', name, '--json']);
  t.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as {
    name: string;
    tail: number;
    bytesUsed: number;
    participants: { role: string; pid: number; messages: number; lag: number }[];
  };
  t.is(s.name, name);
  t.is(s.tail, 3 * 32); // 1-byte records of 32 bytes
  t.is(s.bytesUsed, 2 * 32);
  t.deepEqual(
    s.participants.map((p) => [p.role, p.pid, p.messages, p.lag]),
    [
      ['subscriber', process.pid, 1, 64],
      ['producer', process.pid, 3, 0],
    ],
  );
  const text = await run(t, ['stat', name]);
  t.is(text.code, 0);
  t.regex(text.stdout, new RegExp(`^channel\\s+${name}$`, 'm'));
  t.regex(text.stdout, /^bytes used\s+64 B \(64\)$/m);
  t.regex(text.stdout, /^SLOT\s+ROLE\s+PID\s+ALIVE\s+MESSAGES\s+LOST\s+LAG/m);
  t.regex(
    text.stdout,
    new RegExp(`^0\\s+subscriber\\s+${process.pid}\\s+yes\\s+1\\s+0\\s+64 B`, 'm'),
  );
  assertOneLineError(t, await run(t, ['stat', `${name}-missing`]), /^shmring stat: .*no channel/);
});

test('stat --watch --json prints a snapshot per interval until stopped', async (t) => {
  const name = channelName(t, 'cli-watch');
  const ch = open<number>(name, { create: true });
  t.teardown(() => ch.close());
  const { child, done } = start(t, ['stat', name, '--watch', '--json', '--interval', '50']);
  const snapshots: { tail: number }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) =>
    snapshots.push(JSON.parse(l) as { tail: number }),
  );
  await until(() => snapshots.length >= 1);
  ch.publish(1);
  await until(() => snapshots.some((s) => s.tail === 32));
  child.kill('SIGTERM');
  const r = await done;
  t.is(r.code, 0, r.stderr);
  t.true(snapshots.length >= 2);
  t.is(snapshots[0]?.tail, 0);
});

test('tail --count decodes messages as JSON lines and exits', async (t) => {
  const name = channelName(t, 'cli-tail');
  const ch = open<unknown>(name, { create: true });
  t.teardown(() => ch.close());
  const { done } = start(t, ['tail', name, '--count', '3']);
  await until(() => subscribers(name) === 1);
  ch.publish({ a: 1, s: 'x' });
  ch.publish([1, 2, 3]);
  ch.publish({ bin: Buffer.from([1, 2, 3]) });
  ch.publish('after the count');
  const r = await done;
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    [{ a: 1, s: 'x' }, [1, 2, 3], { bin: { $binary: 'AQID' } }],
  );
  t.is(subscribers(name), 0, 'tail left the channel');
  // --from-now is accepted, and the json codec reads JSON channels.
  const jsonName = channelName(t, 'cli-tail-json');
  const jch = open<unknown>(jsonName, { create: true, codec: 'json' });
  t.teardown(() => jch.close());
  const second = start(t, ['tail', jsonName, '--from-now', '-n', '1', '--codec', 'json']);
  await until(() => subscribers(jsonName) === 1);
  jch.publish({ ok: true });
  const r2 = await second.done;
  t.is(r2.code, 0, r2.stderr);
  t.deepEqual(JSON.parse(r2.stdout), { ok: true });
  assertOneLineError(t, await run(t, ['tail', `${name}-missing`]), /^shmring tail: /);
});

test('pub: one message from the argument, JSON lines from stdin, errors on one line', async (t) => {
  const name = channelName(t, 'cli-pub');
  const created = await run(t, ['pub', name, '{"hello":"world"}', '--create']);
  t.is(created.code, 0, created.stderr);
  t.is(created.stdout.trim(), `published 1 message to ${name}`);
  t.true(existsSync(shmFile(name)));
  const ch = open<unknown>(name);
  t.teardown(() => ch.close());
  const got = firstValueFrom(ch.messages().pipe(take(4), toArray()));
  const one = await run(t, ['pub', name, '[1,"two"]']);
  t.is(one.code, 0, one.stderr);
  const many = await run(t, ['pub', name], '{"n":1}\n\n{"n":2}\n"three"\n');
  t.is(many.code, 0, many.stderr);
  t.is(many.stdout.trim(), `published 3 messages to ${name}`);
  t.deepEqual(await got, [[1, 'two'], { n: 1 }, { n: 2 }, 'three']);
  assertOneLineError(
    t,
    await run(t, ['pub', name, '{oops']),
    /^shmring pub: the message is not valid JSON/,
  );
  assertOneLineError(
    t,
    await run(t, ['pub', name], '1\nnope\n'),
    /^shmring pub: line 2 is not valid JSON/,
  );
  assertOneLineError(t, await run(t, ['pub', `${name}-missing`, '1']), /^shmring pub: no channel/);
  assertOneLineError(t, await run(t, ['pub']), /missing required argument/);
});

test('rm: one channel by name; --stale removes only channels whose processes are all dead', async (t) => {
  const name = channelName(t, 'cli-rm');
  open(name, { create: true }).close();
  const r = await run(t, ['rm', name]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `removed ${name}`);
  t.false(existsSync(shmFile(name)));
  assertOneLineError(t, await run(t, ['rm', name]), /^shmring rm: .*/);
  assertOneLineError(t, await run(t, ['rm']), /^shmring rm: give either a channel name or --stale/);

  const tag = `rms${process.pid}`;
  const prefix = `t-${tag}-`;
  const live = channelName(t, `${tag}-live`);
  const liveCh = open(live, { create: true });
  t.teardown(() => liveCh.close());
  const dead = channelName(t, `${tag}-dead`);
  t.is((await spawnFixture(t, 'pub', [dead, '1', '1']).exit).code, 0);
  const stale = await run(t, ['rm', '--stale', '--prefix', prefix, '--json']);
  t.is(stale.code, 0, stale.stderr);
  t.deepEqual(JSON.parse(stale.stdout), [dead]);
  t.false(existsSync(shmFile(dead)));
  t.true(existsSync(shmFile(live)), 'a live channel stays');
  const again = await run(t, ['rm', '--stale', '--prefix', prefix]);
  t.is(again.stdout.trim(), 'nothing to remove');
});

test('demo runs the two-process demo', async (t) => {
  const r = await run(t, ['demo', '5000']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /received {2}5,000 in/);
  t.regex(r.stdout, /\b0 lost, 0 out of order/);
});

test('bench runs npm run bench where the harness exists, and says why not elsewhere', async (t) => {
  const r = await run(t, ['bench', '--dry-run', '--quick']);
  if (existsSync(`${repo}bench/run.mjs`)) {
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.trim(), 'npm run bench -- --quick');
  } else {
    assertOneLineError(t, r, /^shmring bench: the benchmark harness is not here/);
  }
});
