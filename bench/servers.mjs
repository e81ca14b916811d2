/**
 * External servers some peers need (NATS core, Redis pub/sub): the Debian binary when it is
 * installed (never installed by the benchmark), started per cell on 127.0.0.1 on a free port
 * with its files in a temporary directory. The server is a child of the cell's `CellRun`
 * (killed and reaped with the cell, also on failure and signals); its directory is a tracked
 * path (removed with the cell's leftovers).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { trackPath } from './harness.mjs';

/** The full path of `bin` on PATH (or /usr/sbin, /usr/bin), or undefined. */
export function which(bin) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:`port` accepts a connection; rejects after `ms` or if `child` dies. */
async function waitPort(port, child, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited with ${child.signalCode ?? child.exitCode} before listening`);
    }
    const ok = await new Promise((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server not listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How each server is started on `port` with its files in `dir`. */
export const SERVERS = {
  nats: {
    binary: 'nats-server',
    // Core NATS only: no JetStream, so nothing is written to disk.
    args: (port) => ['-a', '127.0.0.1', '-p', String(port)],
  },
  redis: {
    binary: 'redis-server',
    // No persistence; no output-buffer limit for subscribers, so a flood is queued, not a
    // disconnect (a phase lasts seconds; the publisher's window bounds the rest).
    args: (port, dir) => [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--client-output-buffer-limit',
      'pubsub 0 0 0',
    ],
  },
};

/**
 * Starts server `kind` as a child of `run` and waits until it listens. Returns its port.
 */
export async function startServer(run, kind, timeoutMs) {
  const s = SERVERS[kind];
  const bin = which(s.binary);
  if (!bin) throw new Error(`${s.binary} is not installed`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `shmring-bench-${kind}-`));
  trackPath(dir);
  const child = run.spawn(bin, s.args(port, dir), [], {}, { service: true });
  await waitPort(port, child, timeoutMs);
  return port;
}
