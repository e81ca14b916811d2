/**
 * The benchmark harness's process side: spawning role processes and JSON-printing children
 * and reaping them, the cleanup of everything a run creates (channels, /dev/shm segments,
 * socket paths), and the progress line on stderr.
 *
 * Every child is spawned in a process group of its own (`detached`), so a kill reaches the
 * whole group (sh pipelines, forked peers). `installCleanup()` makes sure that, whatever
 * happens (an exception, a signal, a normal exit), every live child is killed and every
 * tracked channel and path removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root, and a file under bench/. */
export const root = fileURLToPath(new URL('..', import.meta.url));
export const here = (f) => join(root, 'bench', f);

/** Names of this run's channels and /dev/shm segments start with this. */
export const prefix = `bench-${process.pid}-`;

// ---------------------------------------------------------------------------------------------
// Cleanup: every child is killed and reaped, every channel and socket path removed, whatever
// happens.

const live = new Set();
const channels = new Set();
const paths = new Set();
let unlinkChannel;

/** Channels and paths removed by the next `removeLeftovers()` (and at exit). */
export function trackChannel(name) {
  channels.add(name);
}
export function trackPath(path) {
  paths.add(path);
}

/** How a tracked channel is unlinked: the library's `unlink`, once it is loaded. */
export function useUnlink(fn) {
  unlinkChannel = fn;
}

/** SIGKILLs the process group of every live child. */
export function killAll() {
  for (const c of live) killGroup(c);
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL'); // its whole process group (sh pipelines, forked peers)
  } catch {
    // already gone
  }
}

/** Unlinks every tracked channel, removes this run's segments and every tracked path. */
export function removeLeftovers() {
  for (const name of channels) {
    try {
      unlinkChannel?.(name);
    } catch {
      // never created, or already removed
    }
  }
  channels.clear();
  for (const f of leftoverSegments()) rmSync(join('/dev/shm', f), { force: true });
  for (const p of paths) rmSync(p, { force: true, recursive: true });
  paths.clear();
}

/** This run's segment files still in /dev/shm. */
export function leftoverSegments() {
  return safeReaddir('/dev/shm').filter((f) => f.startsWith(`shmring.${prefix}`));
}

function safeReaddir(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Cleans up at exit and on SIGINT, SIGTERM and SIGHUP (exit 130). */
export function installCleanup() {
  process.on('exit', () => {
    killAll();
    removeLeftovers();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      progress.clear();
      console.error(`bench: ${sig}, stopping`);
      process.exit(130);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Progress: one line, rewritten in place on a terminal.

export const progress = {
  total: 1,
  done: 0,
  tty: process.stderr.isTTY,
  last: '',
  step(what) {
    const width = 24;
    const filled = Math.round((this.done / this.total) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const line = `${bar} ${this.done}/${this.total} ${what}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
    this.last = line;
  },
  note(msg) {
    this.clear();
    process.stderr.write(`${msg}\n`);
  },
  clear() {
    if (this.tty && this.last) process.stderr.write('\r\x1b[K');
    this.last = '';
  },
};

// ---------------------------------------------------------------------------------------------
// One cell: a set of role processes and their control sockets.

export class CellRun {
  children = [];
  services = [];
  roles = new Map();
  stderr = '';

  /**
   * Spawns `cmd args` with one control socket per role in `ctl` (fds 3, 4, …). A `service`
   * (a server the roles use) is not waited for by `finish`, only killed by `reap`.
   */
  spawn(cmd, args, ctl, env, { service = false } = {}) {
    const child = spawn(cmd, args, {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'ignore', service ? 'ignore' : 'pipe', ...ctl.map(() => 'pipe')],
      env: { ...process.env, ...env },
    });
    live.add(child);
    (service ? this.services : this.children).push(child);
    const exited = once(child, 'exit').then(([code, signal]) => {
      live.delete(child);
      return { code, signal };
    });
    child.exited = exited;
    child.stderr?.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    ctl.forEach((role, i) => {
      const stream = child.stdio[3 + i];
      const r = { stream, events: [], waiters: [], dead: undefined };
      this.roles.set(role, r);
      createInterface({ input: stream }).on('line', (line) => {
        let ev;
        try {
          ev = JSON.parse(line);
        } catch {
          return;
        }
        r.events.push(ev);
        for (const w of [...r.waiters]) w();
      });
      exited.then(({ code, signal }) => {
        r.dead = `${role} exited with ${signal ?? code}`;
        for (const w of [...r.waiters]) w();
      });
    });
    return child;
  }

  /** Resolves the next event `name` of `role`; rejects on its 'error' event or its death. */
  event(role, name, timeoutMs) {
    const r = this.roles.get(role);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new Error(`${role}: no '${name}' in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const check = () => {
        const i = r.events.findIndex((e) => e.event === name || e.event === 'error');
        if (i >= 0) {
          const [ev] = r.events.splice(i, 1);
          if (ev.event === 'error') finish(new Error(`${role}: ${ev.message}`));
          else finish(undefined, ev);
        } else if (r.dead !== undefined) {
          finish(new Error(`${r.dead} before '${name}'`));
        }
      };
      const finish = (err, ev) => {
        clearTimeout(timer);
        r.waiters.splice(r.waiters.indexOf(check), 1);
        if (err) reject(err);
        else resolve(ev);
      };
      r.waiters.push(check);
      check();
    });
  }

  go(role) {
    this.roles.get(role).stream.write('go\n');
  }

  /** Waits up to `ms` for every child to exit, then kills what is left; always reaps. */
  async finish(ms) {
    const all = Promise.all(this.children.map((c) => c.exited));
    const timer = setTimeout(() => {
      for (const c of this.children) killGroup(c);
    }, ms);
    await all;
    clearTimeout(timer);
  }

  /** Kills every live child, waits until each of this cell's has exited, then cleans up. */
  async reap() {
    killAll();
    await Promise.all([...this.children, ...this.services].map((c) => c.exited));
    removeLeftovers();
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-benchmarks and the Rust benchmark run as child processes that print JSON.

/**
 * Runs `cmd args`, its last stderr line on the progress line as `what: …`, killed after
 * `timeoutS`. Resolves { ok, rows (the JSON lines of its stdout), error }.
 */
export function runJson(cmd, args, what, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
      const lines = String(d).trim().split('\n');
      progress.step(`${what}: ${lines[lines.length - 1].slice(0, 60)}`);
    });
    const timer = setTimeout(() => {
      err += `\ntimed out after ${timeoutS} s`;
      killGroup(child);
    }, timeoutS * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      const rows = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      resolve({
        ok: code === 0,
        rows,
        error:
          code === 0
            ? undefined
            : `${what} exited with ${signal ?? code}: ${err.trim().split('\n').slice(-3).join(' | ')}`,
      });
    });
  });
}

/** Builds the Rust benchmark: { bin } or { error }. */
export function buildRust() {
  progress.step('cargo build --release --example bench_xproc');
  const r = spawnSync(
    'cargo',
    ['build', '--release', '--quiet', '-p', 'shmring', '--example', 'bench_xproc'],
    { cwd: root, encoding: 'utf8' },
  );
  if (r.status !== 0)
    return {
      error: `cargo build failed: ${(r.stderr ?? '').trim().split('\n').slice(-5).join(' | ')}`,
    };
  return { bin: join(root, 'target', 'release', 'examples', 'bench_xproc') };
}

/** The short hash of HEAD, or undefined outside a git checkout. */
export function gitCommit() {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : undefined;
}

/** Lays a markdown file out with the repository's formatter (aligned tables); best effort. */
export function formatMarkdown(file) {
  spawnSync(join(root, 'node_modules', '.bin', 'biome'), ['format', '--write', file], {
    cwd: root,
    stdio: 'ignore',
  });
}
