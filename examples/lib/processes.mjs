/**
 * What every example's orchestrator needs: start service processes, wait for the line that
 * says they joined a channel, collect their JSON result line, and clean up (kill what is
 * still running, unlink the channels) however the run ends.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { unlink } from 'shmring';

/**
 * The command line every example takes: `--count N` (how much to move) and `--json` (print
 * a last line with the outcome as JSON, for the smoke test), plus `extra` options.
 */
export function options(defaults, extra = {}) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...extra,
    },
  });
  const count = Number(values.count ?? defaults.count);
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new Error(`--count must be a whole number >= 1, not ${values.count}`);
  }
  return { ...values, count };
}

/** `1234567` → `1,234,567`. */
export const fmt = (n, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Keeps track of the processes and channels of one run. `cleanup()` (also run on SIGINT,
 * SIGTERM and exit) SIGKILLs every child still running and unlinks every channel.
 */
export class Run {
  children = new Set();
  channels = new Set();

  constructor() {
    const stop = (signal) => {
      this.cleanup();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.once('exit', () => this.cleanup());
  }

  /** A channel name unique to this run (`<prefix>-<pid>-<what>`), unlinked by cleanup. */
  channel(prefix, what) {
    const name = `${prefix}-${process.pid}-${what}`;
    this.channels.add(name);
    return name;
  }

  /**
   * Starts `command args` with stdout piped. `ready` resolves when the child prints `readyLine`
   * (at once if none is given), `result` with the last JSON line it printed once it exited
   * (it rejects if the child failed). `onLine` sees every other line. `stdin: 'pipe'` gives
   * the child a stdin pipe (`child.stdin`).
   */
  start(command, args, { readyLine, onLine = (line) => console.log(line), label, stdin } = {}) {
    const child = spawn(command, args, { stdio: [stdin ?? 'ignore', 'pipe', 'inherit'] });
    const name = label ?? args[0] ?? command;
    this.children.add(child);
    let last;
    let readyResolve;
    const ready = new Promise((resolve) => {
      readyResolve = resolve;
    });
    if (readyLine === undefined) readyResolve();
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === readyLine) readyResolve();
      else if (line.startsWith('{')) last = JSON.parse(line);
      else onLine(line);
    });
    const result = once(child, 'exit').then(([code, signal]) => {
      this.children.delete(child);
      if (code !== 0 || last === undefined) {
        throw new Error(`${name} exited with ${signal ?? `status ${code}`} and no result`);
      }
      return last;
    });
    // A child that dies before it is ready must not leave the caller waiting forever.
    const readyOrDead = Promise.race([
      ready,
      result.then(
        () => {
          throw new Error(`${name} exited before it was ready`);
        },
        (e) => {
          throw e;
        },
      ),
    ]);
    readyOrDead.catch(() => {});
    result.catch(() => {});
    return { child, ready: readyLine === undefined ? ready : readyOrDead, result };
  }

  /** Starts `node script args` with this process's Node. */
  node(script, args, opts = {}) {
    return this.start(process.execPath, [script, ...args.map(String)], {
      label: script.split('/').pop(),
      ...opts,
    });
  }

  cleanup() {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const name of this.channels) {
      try {
        unlink(name);
      } catch {
        // never created, or already gone
      }
    }
    this.channels.clear();
  }
}

/** Sends every value, as many per native call as fit (`publishMany`), waiting for room. */
export async function publishAll(channel, values) {
  const done = channel.publishMany(values);
  for (let i = done; i < values.length; i++) await channel.send(values[i]);
}

/** Path of a file next to `importMetaUrl` (an example's own `import.meta.url`). */
export const beside = (importMetaUrl, file) => new URL(file, importMetaUrl).pathname;
