#!/usr/bin/env node
/**
 * `npm run bench:peers` — the Rust core beside its strongest peers, measured in one run on
 * this machine, each figure alternating shmring and the peer (the order flips every round):
 *
 * - ping-pong latency, 64 B: iceoryx2 (crate 0.10.0, bench/core-peers/iceoryx2) and shmring
 *   (crates/shmring/examples/bench_core.rs) by iceoryx2's publish-subscribe benchmark method:
 *   two threads pinned to CPUs 0 and 1, busy polling, one-way = elapsed / (2 × round trips).
 * - throughput, 32 B: Aeron's own io.aeron.samples.EmbeddedIpcThroughput (aeron-all 1.51.0,
 *   bench/core-peers/aeron/pom.xml; messages per second as its rate reporter prints them, the
 *   first two seconds and the last partial one dropped) beside shmring SPSC (a plain and an
 *   exclusive producer) and MPSC (2 producers) by the same method (threads of one process,
 *   busy polling, 10 a poll).
 *
 * Writes bench/results/peers.json, peers.md and peers.svg (--out=DIR elsewhere).
 *
 *   node bench/core-peers.mjs [--smoke] [--rounds=N] [--trips=N] [--messages=N]
 *                             [--seconds=N] [--only=iceoryx2,aeron] [--out=DIR]
 *
 * --smoke: tiny counts, the shmring side always, a peer only if it is already built (never
 * builds or downloads one); writes to a temporary directory; exit 1 on any failure. A peer
 * that cannot be built (no network, no JDK, no mvn) is skipped and said so on stderr, in the
 * JSON (`skipped`) and in the table; it is never counted as a pass.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatMarkdown, gitCommit, installCleanup, progress, root, runJson } from './harness.mjs';
import { COLORS, esc, unit } from './report.mjs';

const USAGE =
  'usage: node bench/core-peers.mjs [--smoke] [--rounds=N] [--trips=N] [--messages=N]\n' +
  '                                 [--seconds=N] [--only=iceoryx2,aeron] [--out=DIR]';
const PEERS = ['iceoryx2', 'aeron'];
const ICEORYX2 = { version: '0.10.0', dir: join(root, 'bench', 'core-peers', 'iceoryx2') };
const AERON = { version: '1.51.0', dir: join(root, 'bench', 'core-peers', 'aeron') };
const ICEORYX2_BIN = join(ICEORYX2.dir, 'target', 'release', 'core-peers-iceoryx2');
const AERON_CP = join(AERON.dir, 'target', 'classpath.txt');
const SHM_BIN = join(root, 'target', 'release', 'examples', 'bench_core');

installCleanup();
removeIceoryx2LeftoversAtExit();
const args = parseArguments(process.argv.slice(2));
const smoke = args.smoke;

/**
 * iceoryx2 leaves its own files behind (`/dev/shm/iox2_*`, `/tmp/iceoryx2`): at exit, removes
 * those this run made (what was there before it started stays).
 */
function removeIceoryx2LeftoversAtExit() {
  const shm = () => {
    try {
      return readdirSync('/dev/shm').filter((f) => f.startsWith('iox2_'));
    } catch {
      return [];
    }
  };
  const before = new Set(shm());
  const tmpExisted = existsSync('/tmp/iceoryx2');
  process.on('exit', () => {
    for (const f of shm()) if (!before.has(f)) rmSync(join('/dev/shm', f), { force: true });
    if (!tmpExisted) rmSync('/tmp/iceoryx2', { force: true, recursive: true });
  });
}

/** Strict `parseArgs` (unknown option, stray value or positional: exit 2 with the usage). */
function parseArguments(argv) {
  const fail = (msg) => {
    console.error(`bench:peers: ${msg}\n${USAGE}`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        smoke: { type: 'boolean', default: false },
        rounds: { type: 'string' },
        trips: { type: 'string' },
        messages: { type: 'string' },
        seconds: { type: 'string' },
        only: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    fail(e.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name, dflt, min) => {
    if (values[name] === undefined) return dflt;
    if (!/^[0-9]+$/.test(values[name]) || Number(values[name]) < min)
      fail(`--${name} must be an integer >= ${min}`);
    return Number(values[name]);
  };
  const only = values.only === undefined ? PEERS : values.only.split(',');
  const bad = only.filter((p) => !PEERS.includes(p));
  if (bad.length > 0) fail(`--only: unknown ${bad.join(', ')} (one of ${PEERS.join(', ')})`);
  if (values.out === '') fail('--out needs a path');
  const s = values.smoke;
  return {
    smoke: s,
    only,
    out: values.out,
    rounds: int('rounds', s ? 1 : 3, s ? 1 : 2),
    trips: int('trips', s ? 20_000 : 1_000_000, 1),
    messages: int('messages', s ? 200_000 : 30_000_000, 1),
    seconds: int('seconds', s ? 6 : 10, 4),
  };
}

// ---------------------------------------------------------------------------------------------
// Building. Each returns undefined when ready, else why not.

function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', ...opts });
  if (r.error) return `${cmd}: ${r.error.code ?? r.error.message}`;
  if (r.status !== 0) return `${cmd} ${argv.join(' ')} failed: ${tail(r.stderr)}`;
  return undefined;
}
const tail = (s) => (s ?? '').trim().split('\n').slice(-4).join(' | ');

function buildShmring() {
  progress.step('cargo build --release --example bench_core');
  return sh('cargo', ['build', '--release', '--quiet', '-p', 'shmring', '--example', 'bench_core']);
}

function buildIceoryx2() {
  if (smoke) return existsSync(ICEORYX2_BIN) ? undefined : 'not built (smoke never builds it)';
  progress.step(`cargo build iceoryx2 ${ICEORYX2.version} (own workspace)`);
  const manifest = join(ICEORYX2.dir, 'Cargo.toml');
  const env = { ...process.env, CARGO_TARGET_DIR: join(ICEORYX2.dir, 'target') };
  return sh('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest], { env });
}

function buildAeron() {
  const java = sh('java', ['-version']);
  if (java) return `no JDK (${java})`;
  const jarsPresent = () =>
    existsSync(AERON_CP) &&
    readFileSync(AERON_CP, 'utf8')
      .trim()
      .split(':')
      .every((j) => j && existsSync(j));
  if (smoke) return jarsPresent() ? undefined : 'not resolved (smoke never downloads it)';
  progress.step(`mvn: resolve io.aeron:aeron-all:${AERON.version}`);
  const pom = join(AERON.dir, 'pom.xml');
  const mvn = sh('mvn', [
    '-q',
    '-B',
    '-f',
    pom,
    'dependency:build-classpath',
    `-Dmdep.outputFile=${AERON_CP}`,
  ]);
  if (mvn) return mvn;
  return jarsPresent() ? undefined : `mvn wrote no usable classpath to ${AERON_CP}`;
}

// ---------------------------------------------------------------------------------------------
// One measurement each: resolves { value } or { error }.

async function one(bin, argv, what, key) {
  const r = await runJson(bin, argv, what, smoke ? 50 : 240);
  if (!r.ok) return { error: r.error };
  const v = r.rows[0]?.[key];
  return Number.isFinite(v) ? { value: v } : { error: `${what}: no ${key} in its output` };
}

/**
 * Aeron's EmbeddedIpcThroughput runs until a signal and prints `Duration <ms>ms - <n> messages
 * - <b> payload bytes` about every second: SIGINT after `seconds`, then messages / duration
 * over the lines after the first two (JIT warm-up), less the last (cut by the signal).
 */
function aeronRun(seconds) {
  const cp = readFileSync(AERON_CP, 'utf8').trim();
  const dir = join('/dev/shm', `corepeers-aeron-${process.pid}`);
  const jvm = [
    '--add-opens',
    'java.base/jdk.internal.misc=ALL-UNNAMED',
    '-Dagrona.disable.bounds.checks=true',
    `-Daeron.dir=${dir}`,
    '-Daeron.dir.delete.on.start=true',
    '-Daeron.dir.delete.on.shutdown=true',
    '-Daeron.sample.messageLength=32',
    '-cp',
    cp,
    'io.aeron.samples.EmbeddedIpcThroughput',
  ];
  progress.step('aeron EmbeddedIpcThroughput 32 B');
  return new Promise((resolve) => {
    const child = spawn('java', jvm, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const killGroup = (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        // gone
      }
    };
    const onExit = () => killGroup('SIGKILL');
    process.on('exit', onExit);
    const stop = setTimeout(() => killGroup('SIGINT'), seconds * 1000);
    const hard = setTimeout(() => killGroup('SIGKILL'), (seconds + 20) * 1000);
    child.on('error', (e) => {
      err += String(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(stop);
      clearTimeout(hard);
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
      const lines = [...out.matchAll(/^Duration (\d+)ms - ([\d,]+) messages/gm)].map((m) => ({
        ms: Number(m[1]),
        n: Number(m[2].replaceAll(',', '')),
      }));
      // A short (smoke) run on a loaded machine may print only a few lines: then drop one.
      const steady = lines.length >= 4 ? lines.slice(2, -1) : lines.slice(1, -1);
      if (steady.length === 0) {
        resolve({
          error: `aeron exited ${signal ?? code} with ${lines.length} rate lines: ${tail(err)}`,
        });
        return;
      }
      const n = steady.reduce((a, l) => a + l.n, 0);
      const ms = steady.reduce((a, l) => a + l.ms, 0);
      resolve({
        value: n / (ms / 1000),
        perSecond: steady.map((l) => Math.round(l.n / (l.ms / 1000))),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Main.

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function machine() {
  const c = cpus();
  return {
    date: new Date().toISOString(),
    mode: smoke ? 'smoke' : 'full',
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    kernel: release(),
    node: process.version,
    loadavg1Start: Math.round(loadavg()[0] * 100) / 100,
    commit: gitCommit(),
  };
}

async function main() {
  const info = machine();
  const failures = [];
  const skipped = [];
  const shmErr = buildShmring();
  if (shmErr) failures.push(`shmring: ${shmErr}`);
  const peerErr = {};
  for (const [id, build] of [
    ['iceoryx2', buildIceoryx2],
    ['aeron', buildAeron],
  ]) {
    const why = args.only.includes(id) ? build() : 'not chosen (--only)';
    if (why) {
      peerErr[id] = why;
      skipped.push({ peer: id, reason: why });
      progress.note(`bench:peers: SKIPPED ${id}: ${why}`);
    }
  }
  const { trips, messages, seconds } = args;
  const figures = [
    {
      id: 'pingpong-64B',
      title: 'ping-pong one-way latency, 64 B',
      unit: 'ns',
      better: 'lower',
      peer: 'iceoryx2',
      peerLabel: `iceoryx2 ${ICEORYX2.version} (ipc service, pub-sub)`,
      shm: () =>
        one(SHM_BIN, ['pingpong', `${trips}`, '64', '0', '1'], 'shmring ping-pong', 'one_way_ns'),
      run: () =>
        one(ICEORYX2_BIN, [`${trips}`, '64', '0', '1'], 'iceoryx2 ping-pong', 'one_way_ns'),
      // The machine's floor for this method: the same pinned threads, one cache line each way.
      floor: () => one(SHM_BIN, ['floor', `${trips}`, '0', '1'], 'cache-line floor', 'one_way_ns'),
    },
    // One producer (the CAS claim any producer uses), one exclusive producer (a store per
    // claim: Channel::exclusive_producer), two producers. Aeron runs beside the first only.
    ...[
      { id: 'spsc-32B', producers: 1, title: '1 producer', extra: [] },
      { id: 'spsc-excl-32B', producers: 1, title: '1 exclusive producer', extra: ['exclusive'] },
      { id: 'mpsc2-32B', producers: 2, title: '2 producers', extra: [] },
    ].map(({ id, producers, title, extra }) => ({
      id,
      title: `throughput, 32 B, ${title}`,
      unit: 'msg/s',
      better: 'higher',
      peer: 'aeron',
      peerLabel: `Aeron ${AERON.version} EmbeddedIpcThroughput (1 publisher)`,
      reusePeer: id !== 'spsc-32B',
      shm: () =>
        one(
          SHM_BIN,
          ['throughput', `${producers}`, `${Math.ceil(messages / producers)}`, '32', ...extra],
          `shmring throughput ${id}`,
          'msg_per_sec',
        ),
      run: () => aeronRun(seconds),
    })),
  ];
  for (const f of figures) {
    f.shmring = [];
    f.peerValues = [];
    f.peerDetail = [];
    f.floorValues = [];
  }
  // Aeron's one figure serves every throughput row: run it once per round, beside SPSC.
  progress.total = args.rounds * figures.length;
  for (let round = 0; round < args.rounds && !shmErr; round++) {
    for (const f of figures) {
      const reuse = f.reusePeer === true;
      if (f.floor) {
        const r = await f.floor();
        if (r.error) failures.push(r.error);
        else f.floorValues.push(r.value);
      }
      const order = round % 2 === 0 ? ['shm', 'peer'] : ['peer', 'shm'];
      for (const side of order) {
        if (side === 'peer' && (peerErr[f.peer] || reuse)) continue;
        const r = side === 'shm' ? await f.shm() : await f.run();
        if (r.error) failures.push(r.error);
        else if (side === 'shm') f.shmring.push(r.value);
        else {
          f.peerValues.push(r.value);
          if (r.perSecond) f.peerDetail.push(r.perSecond);
        }
      }
      progress.done++;
      progress.step(`round ${round + 1}: ${f.id}`);
    }
  }
  const spsc = figures.find((f) => f.id === 'spsc-32B');
  for (const f of figures.filter((f) => f.reusePeer)) {
    f.peerValues = spsc.peerValues;
    f.peerDetail = spsc.peerDetail;
  }
  progress.clear();
  info.loadavg1End = Math.round(loadavg()[0] * 100) / 100;
  const rows = figures.map((f) => {
    const s = median(f.shmring);
    const p = median(f.peerValues);
    return {
      id: f.id,
      title: f.title,
      unit: f.unit,
      better: f.better,
      peer: f.peer,
      peerLabel: f.peerLabel,
      shmring: { values: f.shmring, median: s },
      peerResult: peerErr[f.peer]
        ? { skipped: peerErr[f.peer] }
        : { values: f.peerValues, median: p, perSecond: f.peerDetail },
      ratio: Number.isFinite(s) && Number.isFinite(p) ? s / p : null,
      ...(f.floor ? { floor: { values: f.floorValues, median: median(f.floorValues) } } : {}),
    };
  });
  const report = {
    machine: info,
    settings: { rounds: args.rounds, trips, messages, aeronSeconds: seconds },
    figures: rows,
    skipped,
    failures,
  };
  const outDir = smoke
    ? mkdtempSync(join(tmpdir(), 'shmring-peers-smoke-'))
    : (args.out ?? join(root, 'bench', 'results'));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'peers.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'peers.md'), markdown(report));
  formatMarkdown(join(outDir, 'peers.md'));
  writeFileSync(join(outDir, 'peers.svg'), svg(report));
  const shmMissing = rows.filter((r) => r.shmring.values.length !== args.rounds);
  if (shmMissing.length > 0 && failures.length === 0)
    failures.push(`no shmring figure for ${shmMissing.map((r) => r.id).join(', ')}`);
  process.stdout.write(readFileSync(join(outDir, 'peers.md'), 'utf8'));
  if (smoke) rmSync(outDir, { recursive: true, force: true });
  if (failures.length > 0) {
    console.error(`bench:peers: FAILED\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  const note = skipped.length > 0 ? `, SKIPPED ${skipped.map((s) => s.peer).join(', ')}` : '';
  console.error(
    smoke
      ? `bench:peers smoke: ok (${rows.length} shmring figures${note})`
      : `bench:peers: wrote ${join(outDir, 'peers.{json,md,svg}')}${note}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Report.

const show = (v, u) =>
  !Number.isFinite(v) ? '–' : u === 'ns' ? `${v.toFixed(0)} ns` : `${(v / 1e6).toFixed(2)} M msg/s`;

function markdown(report) {
  const m = report.machine;
  const L = [];
  L.push('# shmring beside its core peers');
  L.push('');
  L.push(
    `${m.mode} run, ${m.date.slice(0, 16).replace('T', ' ')} UTC, commit ${m.commit ?? '?'}: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}; load average ${m.loadavg1Start} at the start, ${m.loadavg1End} at the end (the machine is shared: every figure is noisy, compare within this run only).`,
  );
  const s = report.settings;
  L.push(
    `Rounds: ${s.rounds}, each figure alternating shmring and the peer (the order flips each round); medians below. Ping-pong: ${s.trips.toLocaleString('en-US')} round trips. shmring throughput: ${s.messages.toLocaleString('en-US')} messages a run; Aeron: ${s.aeronSeconds} s a run, its per-second lines after the first two.`,
  );
  L.push('');
  L.push(
    '| Figure | shmring | Peer | Peer figure | shmring / peer | Better | shmring runs | Peer runs |',
  );
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of report.figures) {
    const p = r.peerResult;
    const runs = (vs) => (vs ? vs.map((v) => show(v, r.unit)).join(', ') : '');
    L.push(
      `| ${r.title} | ${show(r.shmring.median, r.unit)} | ${r.peerLabel} | ${p.skipped ? `SKIPPED: ${p.skipped}` : show(p.median, r.unit)} | ${r.ratio === null ? '–' : `${r.ratio.toFixed(2)}×`} | ${r.better} | ${runs(r.shmring.values)} | ${runs(p.values)} |`,
    );
  }
  L.push('');
  L.push(
    'Ratio = shmring ÷ peer: above 1 is shmring slower on latency, faster on throughput. The exclusive-producer and 2-producer rows are set against the same Aeron figure (its sample has one publisher).',
  );
  for (const r of report.figures.filter((x) => x.floor)) {
    const fl = r.floor.median;
    const hops = (v) => (Number.isFinite(v) && fl > 0 ? `${(v / fl).toFixed(1)} hops` : '–');
    L.push('');
    L.push(
      `Floor of the ping-pong method on this machine: the same two pinned threads passing a counter through one cache line each way, no ring: ${show(fl, 'ns')} one-way (runs: ${r.floor.values.map((v) => show(v, 'ns')).join(', ')}). In those units shmring takes ${hops(r.shmring.median)}, ${r.peer} ${hops(r.peerResult.median)}.`,
    );
  }
  L.push('');
  for (const s of report.skipped) L.push(`- SKIPPED ${s.peer}: ${s.reason}`);
  for (const f of report.failures) L.push(`- FAILED: ${f}`);
  L.push('');
  return L.join('\n');
}

/** One panel per figure: a bar for shmring and one for its peer, on a linear scale from 0. */
function svg(report) {
  const W = 960;
  const rows = report.figures;
  const ph = 116;
  const top = 58;
  const H = top + rows.length * ph + 30;
  const x0 = 330;
  const bw = W - x0 - 150;
  const m = report.machine;
  const color = { shmring: COLORS.shmring, iceoryx2: '#1f77b4', aeron: '#2ca02c', floor: '#bbb' };
  const o = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<title>${esc('Rust core beside iceoryx2 and Aeron, one run (medians)')}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc('Rust core beside iceoryx2 and Aeron, one run (medians)')}</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${m.cpu}, ${m.cores} cores (shared, load ${m.loadavg1Start}–${m.loadavg1End}), ${m.mode} run ${m.date.slice(0, 10)}`)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * ph;
    const p = r.peerResult;
    const bars = [
      ['shmring', 'shmring (Rust API)', r.shmring.median],
      [r.peer, r.peerLabel, p.skipped ? NaN : p.median],
      ...(r.floor ? [['floor', 'floor: one cache line each way', r.floor.median]] : []),
    ];
    const max = Math.max(...bars.map((b) => b[2]).filter(Number.isFinite), 1);
    o.push(
      `<text x="20" y="${y + 14}" font-weight="600">${esc(`${r.title} (${r.better} is better)`)}</text>`,
    );
    bars.forEach(([id, label, v], k) => {
      const by = y + 24 + k * 28;
      o.push(`<text x="${x0 - 8}" y="${by + 15}" text-anchor="end">${esc(label)}</text>`);
      if (!Number.isFinite(v)) {
        o.push(
          `<text x="${x0}" y="${by + 15}" fill="#a00">${esc(id !== 'floor' && p.skipped ? `skipped: ${p.skipped}` : 'no figure')}</text>`,
        );
        return;
      }
      const w = (v / max) * bw;
      o.push(
        `<rect x="${x0}" y="${by}" width="${w.toFixed(1)}" height="20" fill="${color[id] ?? '#777'}"/>`,
      );
      const txt =
        r.unit === 'ns' ? `${v.toFixed(0)} ns` : unit(Number((v / 1e6).toFixed(2)) * 1e6, 'msg/s');
      o.push(`<text x="${(x0 + w + 6).toFixed(1)}" y="${by + 15}">${esc(txt)}</text>`);
    });
  });
  o.push(
    `<text x="20" y="${H - 10}" fill="#555">${esc('Ping-pong: two pinned threads, busy polling, one-way = round trip / 2. Throughput: threads of one process, busy polling; Aeron\u2019s own sample.')}</text>`,
  );
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

main().catch((e) => {
  console.error(`bench:peers: ${e.stack ?? e}`);
  process.exit(1);
});
