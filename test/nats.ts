/**
 * What the bridge tests need of NATS: a `nats-server` of their own (127.0.0.1, a free port,
 * JetStream in a temporary store) that they can restart, bridge processes started through
 * the CLI, and the counters those print. Everything is killed and removed when the test
 * ends, pass or fail. Without `nats-server` on the PATH the tests fail saying how to
 * install it (never a silent pass).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { sleep } from './helpers.js';

const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));

/** Why NATS tests cannot run here, or undefined. */
export const natsMissing: string | undefined =
  spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).status === 0
    ? undefined
    : 'nats-server is not installed: apt-get update && apt-get install -y nats-server (see README "Bridging to NATS")';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}

/** A nats-server of the test's own. */
export interface Nats {
  url: string;
  port: number;
  /** Kills it (SIGKILL) and starts it again on the same port and store. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `nats-server -js` on a free port with a temporary store (and `config` if given). */
export async function startNats(t: ExecutionContext, config?: string): Promise<Nats> {
  if (natsMissing !== undefined) throw new Error(natsMissing);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'shmring-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'js')];
  if (config !== undefined) {
    writeFileSync(join(dir, 'nats.conf'), config);
    args.push('-c', join(dir, 'nats.conf'));
  }
  let child: ChildProcess | undefined;
  const up = async () => {
    child = spawn('nats-server', args, { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (await reachable(port)) return;
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
      await sleep(25);
    }
    throw new Error('nats-server did not start listening in 5 s');
  };
  const down = async () => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill('SIGKILL');
    await exited;
  };
  t.teardown(async () => {
    await down();
    rmSync(dir, { recursive: true, force: true });
  });
  await up();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async restart(downMs = 300) {
      await down();
      await sleep(downMs);
      await up();
    },
    stop: down,
  };
}

/** A bridge process (`shmring bridge ...`) and the JSON counter lines it printed. */
export interface BridgeProc {
  child: ChildProcess;
  reports: Record<string, unknown>[];
  /** Whether it printed `ready` (connected and set up). */
  ready: () => boolean;
  stderr: () => string;
  /** Resolves with the exit status (`null` when a signal ended it: see `signal()`). */
  exit: Promise<number | null>;
  /** The signal that ended it, if one did. */
  signal: () => NodeJS.Signals | null;
  /** SIGTERM, then its last report. */
  stop(): Promise<Record<string, unknown> | undefined>;
  kill9(): Promise<void>;
}

/**
 * Starts `shmring bridge <args> --json --report-ms 200` (with `env` added to the
 * environment); killed when the test ends.
 */
export function spawnBridge(
  t: ExecutionContext,
  args: string[],
  env?: Record<string, string>,
): BridgeProc {
  const child = spawn(process.execPath, [cli, 'bridge', ...args, '--json', '--report-ms', '200'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const reports: Record<string, unknown>[] = [];
  let err = '';
  let ready = false;
  if (child.stdout === null) throw new Error('no stdout pipe');
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') ready = true;
  });
  if (child.stderr === null) throw new Error('no stderr pipe');
  createInterface({ input: child.stderr }).on('line', (line) => {
    if (line.startsWith('{')) reports.push(JSON.parse(line) as Record<string, unknown>);
    else err += `${line}\n`;
  });
  const exit = once(child, 'close').then(([code]) => code as number | null);
  const alive = () => child.exitCode === null && child.signalCode === null;
  t.teardown(async () => {
    if (alive()) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  return {
    child,
    reports,
    ready: () => ready,
    signal: () => child.signalCode,
    stderr: () => err,
    exit,
    async stop() {
      if (alive()) child.kill('SIGTERM');
      await exit;
      return reports.at(-1);
    },
    async kill9() {
      if (alive()) child.kill('SIGKILL');
      await exit;
    },
  };
}

/** Waits until the bridge printed `ready` (it is connected and set up). */
export async function started(b: BridgeProc, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!b.ready()) {
    if (b.child.exitCode !== null) throw new Error(`bridge exited: ${b.stderr().trim()}`);
    if (Date.now() > end) throw new Error(`bridge did not start: ${b.stderr().trim()}`);
    await sleep(20);
  }
}

/** Runs `shmring bridge <args>` to its end (for errors): exit status and stderr. */
export function runBridgeCli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'bridge', ...args, '--report-ms', '0'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

/** Runs `shmring <args>` to its end: exit status, stdout and stderr. */
export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
