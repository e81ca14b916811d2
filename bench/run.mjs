#!/usr/bin/env node
/**
 * `npm run bench` — shmring beside the transports people use today, measured in one run on
 * this machine: a producer process → a consumer process per transport and payload, then
 * the wake-up latency of each wait strategy (bench/wakeup.mjs), tinybench micro-benchmarks
 * of the native calls and codecs, replay, durable channels and acknowledged queues
 * (bench/replay.mjs, durable.mjs, acks.mjs), then the Rust crate across processes beside a pipe.
 * Writes bench/results/latest.json, bench/results/latest.md and docs/bench.svg.
 *
 *   node bench/run.mjs [--quick | --smoke] [--only=shmring,pipe,...] [--payloads=obj,4KiB]
 *                      [--no-wakeup] [--no-rust] [--no-micro] [--out=DIR] [--svg=FILE]
 *
 * --quick: short phases (about 1–2 minutes in all). --smoke: one transport pair and a few
 * thousand messages, then checks the shape of the JSON (exit 1 if wrong); it writes to a
 * temporary directory, not to bench/results. An unknown or malformed argument, or an
 * unknown transport or payload id, exits 2 before anything runs.
 *
 * The rooms: harness.mjs (spawning and reaping processes, cleanup, progress), transports.mjs
 * (the transports and one cell's run), report.mjs (markdown, SVG, the smoke check), lib.mjs
 * (what the role processes in peers/ share).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import {
  buildRust,
  formatMarkdown,
  gitCommit,
  here,
  installCleanup,
  killAll,
  leftoverSegments,
  prefix,
  progress,
  removeLeftovers,
  root,
  runJson,
  trackChannel,
  useUnlink,
} from './harness.mjs';
import { NO_TS, PAYLOADS, quote } from './lib.mjs';
import { checkShape, markdown, svg } from './report.mjs';
import { chooseTransports, PHASES, runCell, TRANSPORTS } from './transports.mjs';

const USAGE =
  'usage: node bench/run.mjs [--quick | --smoke] [--only=shmring,pipe,...] [--payloads=obj,4KiB]\n' +
  '                          [--no-wakeup] [--no-rust] [--no-micro] [--out=DIR] [--svg=FILE]';

installCleanup();
const args = parseArguments(process.argv.slice(2));
const smoke = args.smoke;
const quick = args.quick || smoke;
const mode = smoke ? 'smoke' : quick ? 'quick' : 'full';
const PHASE = PHASES[mode];
const node = process.execPath;

/**
 * The command line through `parseArgs` (strict: an unknown option, a value given to a flag,
 * a missing value or a positional argument is an error), with the ids of `--only` and
 * `--payloads` checked against the transports and payloads there are. On an error: the
 * message and the usage on stderr, exit 2.
 */
function parseArguments(argv) {
  const fail = (msg) => {
    console.error(`bench: ${msg}\n${USAGE}`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        smoke: { type: 'boolean', default: false },
        only: { type: 'string' },
        payloads: { type: 'string' },
        'no-wakeup': { type: 'boolean', default: false },
        'no-rust': { type: 'boolean', default: false },
        'no-micro': { type: 'boolean', default: false },
        out: { type: 'string' },
        svg: { type: 'string' },
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
  const ids = (name, known) => {
    if (values[name] === undefined) return undefined;
    const list = values[name].split(',');
    const bad = list.filter((id) => !known.includes(id));
    if (bad.length > 0)
      fail(
        `--${name}: unknown ${bad.map((id) => `'${id}'`).join(', ')} (one of ${known.join(', ')})`,
      );
    return list;
  };
  for (const name of ['out', 'svg']) {
    if (values[name] === '') fail(`--${name} needs a path`);
  }
  return {
    ...values,
    only: ids(
      'only',
      TRANSPORTS.map((t) => t.id),
    ),
    payloads: ids(
      'payloads',
      PAYLOADS.map((p) => p.id),
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Main.

function machine() {
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
    commit: gitCommit(),
  };
}

async function main() {
  if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'native'))) {
    console.error('bench: dist/ or native/ missing: run `npm run build` first');
    process.exit(2);
  }
  const shmring = await import('../dist/index.js');
  useUnlink(shmring.unlink);
  const packr = new Packr({ useRecords: false });
  const payloads = PAYLOADS.map((p) =>
    p.kind === 'object' ? { ...p, bytes: packr.pack(quote(123456, NO_TS)).length } : p,
  );
  const wantP = args.payloads;

  // shmring semaphore mode exists only once the engine has it: ask the API.
  const probe = `${prefix}probe`;
  trackChannel(probe);
  let semaphoreError;
  try {
    shmring.open(probe, { create: true, sync: 'semaphore' }).close();
  } catch (e) {
    semaphoreError = `open(name, { sync: 'semaphore' }) fails: ${e.message}`;
  }
  removeLeftovers();

  const { transports, skipped } = chooseTransports({ only: args.only, smoke, semaphoreError });
  let chosen = payloads.filter((p) => !wantP || wantP.includes(p.id));
  if (smoke) chosen = chosen.filter((p) => p.id === 'obj' || p.id === '4KiB');

  const withWakeup = !args['no-wakeup'];
  const withMicro = !smoke && !args['no-micro'];
  const withRust = !smoke && !args['no-rust'];
  const runs = (t) => chosen.filter((p) => !t.rawOnly || p.kind === 'raw');
  progress.total =
    transports.reduce((n, t) => n + runs(t).length, 0) +
    (withWakeup ? 1 : 0) +
    (withMicro ? 1 : 0) +
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
      const r = await runCell(t, p, PHASE);
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
      // wakeup.mjs knows --quick and --smoke; a full run is its default.
      [here('wakeup.mjs'), ...(mode === 'full' ? [] : [`--${mode}`]), `--prefix=${prefix}`],
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

  // Replay from `earliest` beside a subscriber that joined before, and the publish rate into
  // a channel on disk with each `flush` beside /dev/shm (bench/replay.mjs, bench/durable.mjs).
  const channels = { replay: undefined, durable: undefined, acks: undefined };
  if (withMicro) {
    progress.step('replay, durable channels and acknowledged queues');
    const r = await runJson(
      node,
      [here('replay.mjs'), '--json', ...(quick ? ['--rounds', '3', '--count', '200000'] : [])],
      'replay',
      300,
    );
    channels.replay = r.rows[0];
    if (r.error) progress.note(`replay: ${r.error}`);
    const d = await runJson(
      node,
      [here('durable.mjs'), '--json', ...(quick ? ['--rounds', '3', '--ms', '300'] : [])],
      'durable',
      300,
    );
    channels.durable = d.rows[0];
    if (d.error) progress.note(`durable: ${d.error}`);
    // Queues with and without acknowledgements, and redelivery after a death (bench/acks.mjs).
    const a = await runJson(
      node,
      [
        here('acks.mjs'),
        '--json',
        ...(quick ? ['--rounds', '2', '--count', '100000', '--kills', '5'] : []),
      ],
      'acks',
      300,
    );
    channels.acks = a.rows[0];
    if (a.error) progress.note(`acks: ${a.error}`);
    removeLeftovers();
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

  const report = { machine: info, mode, skipped, results, wakeup, micro, rust, channels };
  const outDir = smoke
    ? mkdtempSync(join(tmpdir(), 'shmring-bench-smoke-'))
    : (args.out ?? here('results'));
  mkdirSync(outDir, { recursive: true });
  // latest.json: `cells` is the array of {transport, payload, bytes, msgPerSec, …}, Node and
  // Rust alike; the machine, what was skipped and the micro-benchmarks sit beside it.
  const cells = [...results, ...rust.filter((r) => r.transport)];
  const json = { machine: info, skipped, cells, wakeup, micro, channels };
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  const md = markdown(report);
  writeFileSync(join(outDir, 'latest.md'), md);
  // The repository's formatter owns markdown layout (aligned tables): let it lay the file
  // out, so `biome check .` passes on a committed result.
  formatMarkdown(join(outDir, 'latest.md'));
  console.log(md);
  if (!smoke) {
    const svgFile = args.svg ?? join(root, 'docs', 'bench.svg');
    mkdirSync(join(svgFile, '..'), { recursive: true });
    writeFileSync(svgFile, svg(report));
    console.log(`wrote ${join(outDir, 'latest.json')}, ${join(outDir, 'latest.md')}, ${svgFile}`);
  } else {
    const problems = checkShape(JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')));
    rmSync(outDir, { recursive: true, force: true });
    const leftovers = leftoverSegments();
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
