#!/usr/bin/env node
/**
 * `npm run bench` — shmring beside the transports people use today, measured in one run on
 * this machine: a producer process → a consumer process per transport and payload, then
 * the wake-up latency of each wait strategy (bench/wakeup.mjs), tinybench micro-benchmarks
 * of the native calls and codecs, then the Rust crate across processes beside a pipe.
 * Writes bench/results/latest.json, bench/results/latest.md and docs/bench.svg.
 *
 *   node bench/run.mjs [--quick | --smoke] [--only=shmring,pipe,...] [--payloads=obj,4KiB]
 *                      [--no-wakeup] [--no-rust] [--no-micro] [--out=DIR] [--svg=FILE]
 *
 * --quick: short phases (about 1–2 minutes in all). --smoke: one transport pair and a few
 * thousand messages, then checks the shape of the JSON (exit 1 if wrong); it writes to a
 * temporary directory, not to bench/results.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { NO_TS, PAYLOADS, quote } from './lib.mjs';
import { markdown, svg } from './report.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const here = (f) => join(root, 'bench', f);
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const smoke = flag('smoke');
const quick = flag('quick') || smoke;
const mode = smoke ? 'smoke' : quick ? 'quick' : 'full';

// ---------------------------------------------------------------------------------------------
// Cleanup: every child is killed and reaped, every channel and socket path removed, whatever
// happens.

const live = new Set();
const channels = new Set();
const paths = new Set();
let shmring;

function killAll() {
  for (const c of live) {
    try {
      process.kill(-c.pid, 'SIGKILL'); // its whole process group (sh pipelines, forked peers)
    } catch {
      // already gone
    }
  }
}

function removeLeftovers() {
  for (const name of channels) {
    try {
      shmring?.unlink(name);
    } catch {
      // never created, or already removed
    }
  }
  channels.clear();
  const prefix = `shmring.bench-${process.pid}-`;
  for (const f of safeReaddir('/dev/shm')) {
    if (f.startsWith(prefix)) rmSync(join('/dev/shm', f), { force: true });
  }
  for (const p of paths) rmSync(p, { force: true, recursive: true });
  paths.clear();
}

function safeReaddir(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

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

// ---------------------------------------------------------------------------------------------
// Progress: one line, rewritten in place on a terminal.

const progress = {
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

class CellRun {
  children = [];
  roles = new Map();
  stderr = '';

  /** Spawns `cmd args` with one control socket per role in `ctl` (fds 3, 4, …). */
  spawn(cmd, args, ctl, env) {
    const child = spawn(cmd, args, {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', ...ctl.map(() => 'pipe')],
      env: { ...process.env, ...env },
    });
    live.add(child);
    this.children.push(child);
    const exited = once(child, 'exit').then(([code, signal]) => {
      live.delete(child);
      return { code, signal };
    });
    child.exited = exited;
    child.stderr.on('data', (d) => {
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
      for (const c of this.children) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }, ms);
    await all;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Transports.

const node = process.execPath;
const peer = (f) => here(`peers/${f}`);

/** Consumer first (it must be listening or subscribed), then the producer. */
const separate = (file) => async (run, env, t) => {
  run.spawn(node, [peer(file), 'consumer'], ['consumer'], env);
  await run.event('consumer', 'ready', t);
  run.spawn(node, [peer(file), 'producer'], ['producer'], env);
  await run.event('producer', 'ready', t);
};

const TRANSPORTS = [
  {
    id: 'shmring',
    label: 'shmring lock-free',
    sync: 'lockfree',
    launch: separate('shmring.mjs'),
  },
  {
    id: 'shmring-many',
    label: 'shmring lock-free, publishMany',
    sync: 'lockfree',
    batch: 64,
    launch: separate('shmring.mjs'),
  },
  {
    id: 'shmring-recv',
    label: 'shmring lock-free, receiveSync',
    sync: 'lockfree',
    batch: 64,
    receive: 'sync',
    launch: separate('shmring.mjs'),
  },
  {
    id: 'shmring-view',
    label: 'shmring lock-free, rawView',
    sync: 'lockfree',
    view: true,
    rawOnly: true, // rawView() is a codec for bytes
    launch: separate('shmring.mjs'),
  },
  {
    id: 'shmring-sem',
    label: 'shmring semaphore',
    sync: 'semaphore',
    launch: separate('shmring.mjs'),
  },
  {
    id: 'pipe',
    label: 'pipe',
    async launch(run, env, t) {
      // A real pipe(2) from the shell: Node's own stdio 'pipe' is a socketpair.
      const script =
        'BENCH_CTRL_FD=3 "$1" "$2" producer 4<&- | BENCH_CTRL_FD=4 "$1" "$2" consumer 3<&-';
      run.spawn(
        '/bin/sh',
        ['-c', script, 'sh', node, peer('pipe.mjs')],
        ['producer', 'consumer'],
        env,
      );
      await Promise.all([run.event('consumer', 'ready', t), run.event('producer', 'ready', t)]);
    },
  },
  { id: 'uds', label: 'Unix socket', launch: separate('uds.mjs') },
  {
    id: 'ipc',
    label: 'child_process IPC',
    async launch(run, env, t) {
      run.spawn(node, [peer('ipc.mjs'), 'producer'], ['producer', 'consumer'], env);
      await Promise.all([run.event('consumer', 'ready', t), run.event('producer', 'ready', t)]);
    },
  },
  { id: 'zeromq', label: 'ZeroMQ ipc', launch: separate('zeromq.mjs') },
];

/** Servers we would compare with if installed; never installed by the benchmark. */
const EXTERNAL = [
  { id: 'nats', label: 'NATS core', binary: 'nats-server' },
  { id: 'redis', label: 'Redis pub/sub', binary: 'redis-server' },
];

function which(bin) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Phases and sizes.

const PHASE = {
  full: { warmup: 0.3, seconds: 1.5, latencyBudgetS: 0.6, latencyMax: 4000, timeoutS: 60 },
  quick: { warmup: 0.15, seconds: 0.3, latencyBudgetS: 0.12, latencyMax: 500, timeoutS: 30 },
  smoke: { warmup: 0.02, seconds: 0.05, latencyBudgetS: 0.02, latencyMax: 200, timeoutS: 30 },
}[mode];

/** Ring settings per payload: the defaults (1 MiB ring) up to 4 KiB, 16 MiB above. */
function ringFor(bytes) {
  if (bytes <= 4096) return { capacity: 1 << 20, maxMessageSize: 65536 };
  return { capacity: 16 << 20, maxMessageSize: Math.max(65536, bytes + 64) };
}

function cellConfig(t, p, n) {
  // Paced latency sends: a gap that even a slow transport clears (≥ 100 µs, 10 ms per MiB),
  // so that latency is not queueing.
  const gapUs = Math.max(100, Math.round(p.bytes / 100));
  const latencyCount = Math.max(
    20,
    Math.min(PHASE.latencyMax, Math.floor((PHASE.latencyBudgetS * 1e6) / gapUs)),
  );
  const tag = `${process.pid}-${n}`;
  return {
    channel: `bench-${tag}`,
    path: join(tmpdir(), `shmring-bench-${tag}.sock`),
    sync: t.sync,
    ...ringFor(p.bytes),
    kind: p.kind,
    bytes: p.bytes,
    warmup: PHASE.warmup,
    seconds: PHASE.seconds,
    latencyCount,
    latencySkip: Math.ceil(latencyCount / 10),
    gapUs,
    // Batches only for small payloads: 64 large values gain nothing and hold 64× the memory.
    batch: t.batch !== undefined && p.bytes <= 4096 ? t.batch : 1,
    receive: t.receive,
    view: t.view === true,
  };
}

let cellNo = 0;

async function runCell(t, p) {
  const cfg = cellConfig(t, p, cellNo++);
  channels.add(cfg.channel);
  paths.add(cfg.path);
  const run = new CellRun();
  const env = { BENCH_CFG: JSON.stringify(cfg), BENCH_CTRL_FD: '3' };
  const ms = PHASE.timeoutS * 1000;
  const base = {
    transport: t.label,
    transportId: t.id,
    payload: p.label,
    payloadId: p.id,
    bytes: p.bytes,
  };
  try {
    await t.launch(run, env, 15_000);
    run.go('producer');
    await run.event('consumer', 'warm', ms);
    run.go('producer');
    const [produced, thr] = await Promise.all([
      run.event('producer', 'produced', ms),
      run.event('consumer', 'throughput', ms),
    ]);
    run.go('producer');
    const lat = await run.event('consumer', 'latency', ms);
    run.go('producer'); // it may exit now
    await run.finish(5000);
    const seconds = (thr.end - produced.start) / 1e9;
    const msgPerSec = thr.received / seconds;
    return {
      ...base,
      msgPerSec,
      mbPerSec: (msgPerSec * p.bytes) / 1e6,
      p50us: lat.p50us,
      p99us: lat.p99us,
      p999us: lat.p999us,
      cpuSec: produced.cpuSec + thr.cpuSec,
      seconds,
      sent: produced.sent,
      received: thr.received,
      lost: thr.lost,
      outOfOrder: thr.outOfOrder,
      latencySamples: lat.n,
      gapUs: cfg.gapUs,
      ...(t.sync ? { capacity: cfg.capacity } : {}),
    };
  } catch (e) {
    const tail = run.stderr.trim().split('\n').slice(-3).join(' | ');
    return { ...base, error: `${e.message}${tail ? ` (stderr: ${tail})` : ''}` };
  } finally {
    killAll();
    await Promise.all(run.children.map((c) => c.exited));
    removeLeftovers();
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-benchmarks and the Rust benchmark run as child processes that print JSON.

function runJson(cmd, args, what, timeoutS) {
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
      process.kill(-child.pid, 'SIGKILL');
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

function buildRust() {
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

// ---------------------------------------------------------------------------------------------
// Main.

function machine() {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  const c = cpus();
  return {
    date: new Date().toISOString(),
    mode,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    // Other work on the machine skews every figure: say how busy it was when we started.
    loadavg1: Math.round(loadavg()[0] * 100) / 100,
    commit: git.status === 0 ? git.stdout.trim() : undefined,
  };
}

async function main() {
  if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'native'))) {
    console.error('bench: dist/ or native/ missing: run `npm run build` first');
    process.exit(2);
  }
  shmring = await import('../dist/index.js');
  const packr = new Packr({ useRecords: false });
  const payloads = PAYLOADS.map((p) =>
    p.kind === 'object' ? { ...p, bytes: packr.pack(quote(123456, NO_TS)).length } : p,
  );
  const wantT = option('only')?.split(',');
  const wantP = option('payloads')?.split(',');
  const skipped = [];

  // shmring semaphore mode exists only once the engine has it: ask the API.
  const probe = `bench-${process.pid}-probe`;
  channels.add(probe);
  let semaphore;
  try {
    shmring.open(probe, { create: true, sync: 'semaphore' }).close();
  } catch (e) {
    semaphore = `open(name, { sync: 'semaphore' }) fails: ${e.message}`;
  }
  removeLeftovers();

  let transports = TRANSPORTS.filter((t) => !wantT || wantT.includes(t.id));
  let chosen = payloads.filter((p) => !wantP || wantP.includes(p.id));
  if (smoke) {
    transports = transports.filter((t) => t.id === 'shmring-many' || t.id === 'uds');
    chosen = chosen.filter((p) => p.id === 'obj' || p.id === '4KiB');
  }
  if (semaphore !== undefined && transports.some((t) => t.id === 'shmring-sem')) {
    skipped.push({ transport: 'shmring semaphore', reason: semaphore });
    transports = transports.filter((t) => t.id !== 'shmring-sem');
  }
  for (const x of EXTERNAL) {
    if (wantT && !wantT.includes(x.id)) continue;
    const bin = which(x.binary);
    skipped.push({
      transport: x.label,
      reason: bin
        ? `${x.binary} is installed at ${bin}, but this harness has no ${x.label} peer yet`
        : `${x.binary} is not installed (apt-get install ${x.binary === 'nats-server' ? 'nats-server' : 'redis-server'} to include it)`,
    });
  }

  const withWakeup = !flag('no-wakeup');
  const withMicro = !smoke && !flag('no-micro');
  const withRust = !smoke && !flag('no-rust');
  const runs = (t) => chosen.filter((p) => !t.rawOnly || p.kind === 'raw');
  progress.total =
    transports.reduce((n, t) => n + runs(t).length, 0) +
    (withWakeup ? 1 : 0) +
    (withMicro ? 1 : 0) +
    (withRust ? 1 : 0);
  const info = machine();
  progress.note(
    `shmring bench (${mode}): ${info.cpu}, ${info.cores} cores, Node ${info.node}, Linux ${info.kernel}`,
  );
  for (const s of skipped) progress.note(`skipped: ${s.transport}: ${s.reason}`);

  const results = [];
  for (const p of chosen) {
    for (const t of transports) {
      if (!runs(t).includes(p)) continue;
      progress.step(`${t.label} · ${p.label}`);
      const r = await runCell(t, p);
      results.push(r);
      progress.done++;
      if (r.error) progress.note(`  ${t.label} · ${p.label}: FAILED: ${r.error}`);
    }
  }

  let wakeup = [];
  if (withWakeup) {
    progress.step('wake-up latency by wait strategy');
    // Its channels carry our prefix, so removeLeftovers() finds any it left behind.
    const w = await runJson(
      node,
      [here('wakeup.mjs'), `--${mode}`, `--prefix=bench-${process.pid}-`],
      'wake-up',
      300,
    );
    wakeup = w.rows;
    if (w.error) progress.note(`wake-up latency: ${w.error}`);
    for (const r of wakeup.filter((x) => x.error)) {
      progress.note(`  wake-up ${r.receive} · ${r.wait}: FAILED: ${r.error}`);
    }
    removeLeftovers();
    progress.done++;
  }

  let micro = [];
  if (withMicro) {
    progress.step('tinybench micro-benchmarks');
    const m = await runJson(node, [here('micro.mjs'), ...(quick ? ['--quick'] : [])], 'micro', 300);
    micro = m.rows;
    if (m.error) progress.note(`micro-benchmarks: ${m.error}`);
    progress.done++;
  }

  let rust = [];
  if (withRust) {
    const b = buildRust();
    if (b.error) {
      progress.note(`rust: ${b.error}`);
      skipped.push({ transport: 'Rust crate', reason: b.error });
    } else {
      const r = await runJson(b.bin, quick ? ['--quick'] : [], 'rust', 300);
      rust = r.rows;
      if (r.error) progress.note(`rust: ${r.error}`);
    }
    progress.done++;
  }
  // The run takes minutes on a machine others may share: say how busy it was at the end too.
  info.loadavgEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  progress.step('done');
  progress.clear();

  const report = { machine: info, mode, skipped, results, wakeup, micro, rust };
  const outDir = smoke
    ? mkdtempSync(join(tmpdir(), 'shmring-bench-smoke-'))
    : (option('out') ?? here('results'));
  mkdirSync(outDir, { recursive: true });
  // latest.json: `cells` is the array of {transport, payload, bytes, msgPerSec, …}, Node and
  // Rust alike; the machine, what was skipped and the micro-benchmarks sit beside it.
  const cells = [...results, ...rust.filter((r) => r.transport)];
  const json = { machine: info, skipped, cells, wakeup, micro };
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  const md = markdown(report);
  writeFileSync(join(outDir, 'latest.md'), md);
  // The repository's formatter owns markdown layout (aligned tables): let it lay the file
  // out, so `biome check .` passes on a committed result.
  spawnSync(
    join(root, 'node_modules', '.bin', 'biome'),
    ['format', '--write', join(outDir, 'latest.md')],
    {
      cwd: root,
      stdio: 'ignore',
    },
  );
  console.log(md);
  if (!smoke) {
    const svgFile = option('svg') ?? join(root, 'docs', 'bench.svg');
    mkdirSync(join(svgFile, '..'), { recursive: true });
    writeFileSync(svgFile, svg(report));
    console.log(`wrote ${join(outDir, 'latest.json')}, ${join(outDir, 'latest.md')}, ${svgFile}`);
  } else {
    const problems = checkShape(join(outDir, 'latest.json'));
    rmSync(outDir, { recursive: true, force: true });
    const leftovers = safeReaddir('/dev/shm').filter((f) =>
      f.startsWith(`shmring.bench-${process.pid}-`),
    );
    if (leftovers.length) problems.push(`left in /dev/shm: ${leftovers.join(', ')}`);
    if (problems.length) {
      console.error(`bench smoke: FAILED\n  ${problems.join('\n  ')}`);
      process.exitCode = 1;
    } else {
      console.log(
        `bench smoke: ok (${results.length} cells, JSON shape checked, nothing left behind)`,
      );
    }
  }
}

/**
 * The smoke check: every cell has the issue's fields, as finite numbers, and no error; the
 * wake-up benchmark has a row per receive path and wait strategy with its percentiles.
 */
function checkShape(file) {
  const problems = [];
  const data = JSON.parse(String(spawnSync('cat', [file]).stdout));
  const cells = data.cells;
  if (!Array.isArray(cells) || cells.length === 0) return ['latest.json has no cells'];
  if (typeof data.machine?.cpu !== 'string') problems.push('machine info missing');
  const wakeup = data.wakeup ?? [];
  if (wakeup.length !== 7) problems.push(`${wakeup.length} wake-up rows, not 7`);
  for (const w of wakeup) {
    if (w.error) problems.push(`wake-up ${w.receive} · ${w.wait}: ${w.error}`);
    else if (![w.p50us, w.p99us, w.consumerCores].every(Number.isFinite) || !(w.n > 0))
      problems.push(`wake-up ${w.receive} · ${w.wait}: ${JSON.stringify(w)}`);
  }
  for (const c of cells) {
    if (c.error) {
      problems.push(`${c.transport} · ${c.payload}: ${c.error}`);
      continue;
    }
    for (const k of ['msgPerSec', 'mbPerSec', 'p50us', 'p99us', 'p999us', 'cpuSec', 'bytes']) {
      if (typeof c[k] !== 'number' || !Number.isFinite(c[k]))
        problems.push(`${c.transport} · ${c.payload}: ${k} = ${c[k]}`);
    }
    for (const k of ['transport', 'payload']) {
      if (typeof c[k] !== 'string') problems.push(`cell without ${k}`);
    }
    if (c.lost !== 0 || c.outOfOrder !== 0 || c.received !== c.sent) {
      problems.push(
        `${c.transport} · ${c.payload}: sent ${c.sent}, received ${c.received}, lost ${c.lost}, out of order ${c.outOfOrder}`,
      );
    }
  }
  return problems;
}

try {
  await main();
} catch (e) {
  progress.clear();
  console.error(`bench: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  killAll();
  removeLeftovers();
}
