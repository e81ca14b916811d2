/**
 * Smoke tests of examples/: each example's orchestrator runs as `npm run example:<name>`
 * would run it, with small counts and `--json`, and its outcome (not its speed) is checked.
 * Each runs in its own process group, which is SIGKILLed when the test ends, so no service
 * process outlives a failed test; channels named after the orchestrator's pid are unlinked.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { list, unlink } from 'shmring';
import { natsMissing } from './nats.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const scripts: Record<string, string> = JSON.parse(
  readFileSync(join(repo, 'package.json'), 'utf8'),
).scripts;

/** Channels whose name carries `pid` (the examples name theirs `<example>-<pid>-<what>`). */
const channelsOf = (pid: number): string[] =>
  list()
    .map((l) => l.name)
    .filter((n) => n.includes(`-${pid}-`));

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  json: Record<string, unknown> & { ok: boolean };
  /** Channels of this run still in /dev/shm after it exited. */
  leftovers: string[];
  /** It ran past `timeoutMs` and its process group was SIGKILLed. */
  timedOut: boolean;
}

/** How long an example may run by default before it is killed and its test fails. */
const EXAMPLE_MS = 240_000;

/**
 * Runs `node examples/<script> ...args --json` and resolves with its last JSON line. A run
 * still going after `timeoutMs` (default {@link EXAMPLE_MS}) is SIGKILLed with its process
 * group: a hung example fails its test (`timedOut`, no exit code 0), it does not stall the
 * suite (ava's own inactivity timeout once did not end one).
 */
async function runExample(
  t: ExecutionContext,
  script: string,
  args: string[],
  { timeoutMs = EXAMPLE_MS }: { timeoutMs?: number } = {},
): Promise<Outcome> {
  const child = spawn(process.execPath, [join(repo, 'examples', script), ...args, '--json'], {
    cwd: repo,
    detached: true, // its own process group: the services it starts go with it
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${script}`);
  const exited = once(child, 'exit');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the whole group is gone already
    }
  }, timeoutMs);
  t.teardown(async () => {
    clearTimeout(timer);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the whole group is gone already
    }
    if (child.exitCode === null && child.signalCode === null) await exited;
    for (const name of channelsOf(pid)) {
      try {
        unlink(name);
      } catch {
        // removed meanwhile
      }
    }
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  if (timedOut) t.log(`${script} still running after ${timeoutMs} ms: killed`);
  if (stderr.trim() !== '') t.log(`${script} stderr: ${stderr.trim()}`);
  const last = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (code !== 0) t.log(stdout);
  return {
    code,
    signal,
    stdout,
    json: last === undefined ? { ok: false } : JSON.parse(last),
    leftovers: channelsOf(pid),
    timedOut,
  };
}

/** The Rust halves, built in the dev profile (`cargo test` has usually built them already). */
const rustBuilt = (async () => {
  await promisify(execFile)(
    'cargo',
    ['build', '--quiet', '-p', 'shmring', '--example', 'rust_to_node', '--example', 'node_to_rust'],
    { cwd: repo },
  );
  return (name: string) => join(repo, 'target', 'debug', 'examples', name);
})();
rustBuilt.catch(() => {});

test('every example has its npm script', (t) => {
  const expected: Record<string, string> = {
    ticker: 'examples/ticker/index.mjs',
    'work-queue': 'examples/work-queue/index.mjs',
    frames: 'examples/frames/index.mjs',
    'rust-to-node': 'examples/rust-node/rust-to-node.mjs',
    'node-to-rust': 'examples/rust-node/node-to-rust.mjs',
    'pipe-vs-shm': 'examples/pipe-vs-shm/index.mjs',
    'two-hosts': 'examples/two-hosts/index.mjs',
  };
  for (const [name, file] of Object.entries(expected)) {
    t.true(scripts[`example:${name}`]?.includes(`node ${file}`), `example:${name} runs ${file}`);
  }
  t.regex(scripts['example:rust-to-node'] ?? '', /cargo build .*--example rust_to_node/);
  t.regex(scripts['example:node-to-rust'] ?? '', /cargo build .*--example node_to_rust/);
});

test('ticker: the VWAP service and the logger see every trade; totals match the source', async (t) => {
  const r = await runExample(t, 'ticker/index.mjs', ['--count', '3000', '--bar', '100']);
  t.is(r.code, 0);
  t.true(r.json.ok, JSON.stringify(r.json.problems));
  t.is(r.json.published, 3000);
  t.is(r.json.logged, 3000);
  t.is(r.json.missing, 0);
  t.is(r.json.outOfOrder, 0);
  t.is(r.json.symbols, 5);
  t.true((r.json.bars as number) >= 30, 'at least one bar per 100 trades');
  t.is(r.json.barsReceived, r.json.bars);
  t.deepEqual(r.leftovers, []);
});

/** Checks a work-queue run: every job accepted once, the victim killed, nothing left. */
function checkWorkQueue(t: ExecutionContext, r: Outcome, jobs: number): void {
  t.false(r.timedOut, 'the run ended (every live worker got its stop job)');
  t.is(r.code, 0);
  t.true(r.json.ok);
  t.is(r.json.accepted, jobs);
  t.true(r.json.allIds, `the accepted job ids are exactly 0..${jobs - 1}`);
  t.is(r.json.wrong, 0);
  t.is(r.json.unexplained, 0, 'a job done twice was redelivered after its worker died');
  const killed = r.json.killed as { worker: number; exit: string };
  t.is(killed.exit, 'SIGKILL', 'the victim died of the SIGKILL, not of old age');
  const perWorker = r.json.perWorker as number[];
  t.is(
    perWorker.reduce((a, b) => a + b, 0),
    jobs,
    'each job accepted from exactly one worker',
  );
  t.deepEqual(r.leftovers, []);
}

const workQueueArgs = ['--count', '150', '--workers', '3', '--job-ms', '2'];

test('work-queue: a worker killed mid-run, yet every job is accepted exactly once', async (t) => {
  checkWorkQueue(
    t,
    await runExample(t, 'work-queue/index.mjs', workQueueArgs, { timeoutMs: 25_000 }),
    150,
  );
});

// The dispatcher kept busy once the jobs are out (as one starved of CPU): the workers do
// the jobs meanwhile, and their results reach it in one batch. The victim is still killed
// at the third result (by the results handler) and every live worker gets a stop job; the
// kill had been checked between batches only, so it never happened, and one worker waited
// for a stop job forever (two stops for three live workers).
test('work-queue: a dispatcher that gets every result in one batch still kills the victim and stops every worker', async (t) => {
  const r = await runExample(t, 'work-queue/index.mjs', [...workQueueArgs, '--busy-ms', '1000'], {
    timeoutMs: 25_000,
  });
  checkWorkQueue(t, r, 150);
});

test('frames: 1 MiB frames through a raw channel arrive whole and in order', async (t) => {
  const r = await runExample(t, 'frames/index.mjs', ['--count', '24']);
  t.is(r.code, 0);
  t.true(r.json.ok);
  t.is(r.json.frames, 24);
  t.is(r.json.frameBytes, 1 << 20);
  t.is(r.json.bytes, 24 << 20);
  t.is(r.json.damaged, 0);
  t.is(r.json.outOfOrder, 0);
  t.true((r.json.mbPerSecond as number) > 0);
  t.deepEqual(r.leftovers, []);
});

test('rust-to-node: a Rust publisher, a Node subscriber, every message as sent', async (t) => {
  const bin = (await rustBuilt)('rust_to_node');
  const r = await runExample(t, 'rust-node/rust-to-node.mjs', ['--count', '2000', '--bin', bin]);
  t.is(r.code, 0);
  t.true(r.json.ok);
  t.is(r.json.published, 2000);
  t.is(r.json.received, 2000);
  t.is(r.json.bad, 0);
  t.deepEqual(r.leftovers, []);
});

test('node-to-rust: a Node publisher, a Rust subscriber decoding with rmp-serde', async (t) => {
  const bin = (await rustBuilt)('node_to_rust');
  const r = await runExample(t, 'rust-node/node-to-rust.mjs', ['--count', '2000', '--bin', bin]);
  t.is(r.code, 0);
  t.true(r.json.ok);
  t.is(r.json.received, 2000);
  t.is(r.json.bad, 0);
  t.is(r.json.outOfOrder, 0);
  t.true(r.json.qtyMatches);
  t.deepEqual(r.leftovers, []);
});

test('pipe-vs-shm: the same messages through a pipe and a channel, both rates measured', async (t) => {
  const r = await runExample(t, 'pipe-vs-shm/index.mjs', ['--count', '5000']);
  t.is(r.code, 0);
  t.true(r.json.ok);
  const pipe = r.json.pipe as { received: number; outOfOrder: number; msgPerSecond: number };
  const shm = r.json.shm as { received: number; outOfOrder: number; msgPerSecond: number };
  t.is(pipe.received, 5000);
  t.is(shm.received, 5000);
  t.is(pipe.outOfOrder + shm.outOfOrder, 0);
  t.true(pipe.msgPerSecond > 0 && shm.msgPerSecond > 0);
  t.is(r.json.ratio, shm.msgPerSecond / pipe.msgPerSecond);
  t.regex(r.stdout, /ratio +[\d.]+x/);
  t.deepEqual(r.leftovers, []);
});

test('two-hosts: host A to host B through the bridge pair and a NATS server, every message in order', async (t) => {
  if (natsMissing !== undefined) {
    t.fail(natsMissing);
    return;
  }
  for (const mode of [[], ['--core']]) {
    const r = await runExample(t, 'two-hosts/index.mjs', ['--count', '3000', ...mode]);
    t.is(r.code, 0);
    t.true(r.json.ok);
    t.is(r.json.received, 3000);
    t.is(r.json.exported, 3000);
    t.is(r.json.imported, 3000);
    t.is(r.json.lost, 0);
  }
});

test('npm run docs: the API reference covers every export of the package', async (t) => {
  await promisify(execFile)(process.execPath, [join(repo, 'scripts', 'api-docs.mjs')], {
    cwd: repo,
  });
  const page = readFileSync(join(repo, 'docs', 'api', 'README.md'), 'utf8');
  const api = await import('shmring');
  for (const name of Object.keys(api))
    t.true(page.includes(`<a id="${name.toLowerCase()}">`), name);
  t.regex(page, /### Channel\n\n```ts\nexport declare class Channel<T = unknown> \{/);
  t.regex(scripts.docs ?? '', /cargo doc --no-deps -p shmring/);
});
