/**
 * `npm run bench:bridge [-- --count N] [--latency N] [--rounds N] [--jetstream] [--json]
 * [--profile DIR] [--cli PATH]...`
 *
 * A→NATS→B through the bridge beside NATS client-to-client, in the same run, against a
 * nats-server this script starts (127.0.0.1, a free port, a temporary store):
 *
 * - NATS, one process: a publishing and a subscribing connection of this process, 64-byte
 *   messages. NATS, two processes: this process publishes, a child of this script
 *   subscribes (as two services would). Both are baselines of the bridge's ratios.
 * - bridge: this process publishes into channel `A` (dir A), `shmring bridge export` and
 *   `shmring bridge import` (processes of their own) carry it to channel `B` (dir B), which
 *   this process reads. Core NATS; with `--jetstream` also through JetStream.
 *
 * Throughput: after 20,000 messages of warm-up (the processes' code hot),
 * `count` messages as fast as they go, first publish to last receipt, and the CPU
 * time each process used meanwhile (µs per message: this process, the bridges, the server).
 * Latency: `latency` messages one every 0.5 ms, each carrying its send time; one-way p50
 * and p99 (one clock, CLOCK_MONOTONIC, for every process).
 * The cells alternate, `rounds` times (NATS, bridge, NATS, bridge, …): on a shared machine
 * the speed moves between minutes, so each round's ratio compares neighbours; the summary
 * gives each cell's median and the median of the rounds' ratios.
 * `--profile DIR`: the bridge processes run with `--cpu-prof` and write their profiles there.
 * `--cli PATH` (repeatable): also run the bridge of another build (its `dist/cli/index.js`),
 * as one more cell of each round, to compare builds in one run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { open } from 'shmring';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200000' },
    latency: { type: 'string', default: '2000' },
    jetstream: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    profile: { type: 'string' },
    cli: { type: 'string', multiple: true, default: [] },
    role: { type: 'string' },
    url: { type: 'string' },
  },
});
const self = new URL(import.meta.url).pathname;
const ROUNDS = Number(values.rounds);
const COUNT = Number(values.count);
const LAT = Number(values.latency);
const SIZE = 64;
/** Milliseconds of CLOCK_MONOTONIC: one clock for every process of the run. */
const now = () => Number(process.hrtime.bigint()) / 1e6;
if (values.role === 'nats-sub') {
  // A child of this script: subscribes until its stdin closes (then it exits).
  await natsSubscriber();
  await new Promise(() => {});
}
if (spawnSync('nats-server', ['--version']).status !== 0) {
  console.error('bench:bridge: nats-server is missing (apt-get install -y nats-server); skipped');
  process.exit(0);
}
const cli = new URL('../dist/cli/index.js', import.meta.url).pathname;
const children = new Set();
const dirs = [];
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
};
process.once('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => process.exit(130));

const port = await new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const store = mkdtempSync(join(tmpdir(), 'bench-bridge-nats-'));
dirs.push(store);
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], {
  stdio: 'ignore',
});
children.add(nats);
const url = `nats://127.0.0.1:${port}`;
await new Promise((r) => setTimeout(r, 400));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
function message(i, stamp) {
  const b = Buffer.alloc(SIZE);
  b.writeUInt32LE(i, 0);
  b.writeDoubleLE(stamp, 8);
  return b;
}

/** CPU time (user + system, ms) of process `pid` so far. */
function cpuMs(pid) {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks of 10 ms
  } catch {
    return Number.NaN;
  }
}

/**
 * A receiver in this process: `register(handler)` makes the transport call `handler` with
 * each message's bytes. `expect(n)` resolves once the receiver counts from 0 again, with
 * `done`: resolves, once `n` messages came, with the one-way latencies (ms) of those stamped.
 */
function localReceiver(register) {
  let got = 0;
  let want = 0;
  let lats = [];
  let finished;
  register((b) => {
    const stamp = b.readDoubleLE(8);
    if (stamp > 0) lats.push(now() - stamp);
    got++;
    if (got === want) finished?.(lats);
  });
  return {
    async expect(n) {
      got = 0;
      want = n;
      lats = [];
      return {
        done: new Promise((r) => {
          finished = r;
        }),
      };
    },
  };
}

/** Messages sent before each cell's throughput phase, not measured. */
const WARM = 20_000;
/** How long a phase may take before the run gives up (no hang when messages are lost). */
const PHASE_MS = 120_000;
function within(p, phase) {
  let t;
  const late = new Promise((_, rej) => {
    t = setTimeout(
      () =>
        rej(
          new Error(
            `${phase} phase: not every message arrived within ${PHASE_MS / 1000} s (core NATS drops what a slow subscriber cannot take)`,
          ),
        ),
      PHASE_MS,
    );
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/**
 * One cell: `send(buf)` publishes (may return a promise when it must wait), `receiver` says
 * when the messages came (see {@link localReceiver}); `procs` names the processes whose CPU
 * time the throughput phase is charged with. Returns throughput, latency and CPU µs per
 * message of each process.
 */
async function cell(send, receiver, procs) {
  // Warm-up (not measured): every process of the path has run its code hot before the clock
  // starts (a bridge's processes are new in each cell, as is the NATS subscriber's).
  /** Sends `n` unstamped messages as fast as they go (a turn of the event loop per 1,024). */
  const flood = async (n) => {
    for (let i = 0; i < n; i++) {
      const w = send(message(i, 0));
      if (w !== undefined) await w;
      if ((i & 1023) === 0) await new Promise(setImmediate);
    }
  };
  const warm = Math.min(COUNT, WARM);
  const { done: warmed } = await receiver.expect(warm);
  await flood(warm);
  await within(warmed, 'warm-up');
  // Throughput.
  let { done } = await receiver.expect(COUNT);
  const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuMs(pid)]));
  const t0 = now();
  await flood(COUNT);
  await within(done, 'throughput');
  const ms = now() - t0;
  const cpuUsPerMsg = Object.fromEntries(
    Object.entries(procs).map(([k, pid]) => [
      k,
      Math.round(((cpuMs(pid) - cpu0[k]) * 1000 * 100) / COUNT) / 100,
    ]),
  );
  // Latency.
  ({ done } = await receiver.expect(LAT));
  for (let i = 0; i < LAT; i++) {
    const w = send(message(i, now()));
    if (w !== undefined) await w;
    await sleep(0.5);
  }
  const lats = await within(done, 'latency');
  return {
    msgPerSec: Math.round((COUNT / ms) * 1000),
    p50us: Math.round(pct(lats, 50) * 1000),
    p99us: Math.round(pct(lats, 99) * 1000),
    cpuUsPerMsg,
  };
}

/** NATS between two connections of this process (one process publishes and subscribes). */
async function natsCell() {
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  let handler;
  sub.subscribe('bench.nats', { callback: (_e, m) => handler(m.data) });
  await sub.flush();
  let n = 0;
  const r = await cell(
    (b) => {
      pub.publish('bench.nats', b);
      if ((++n & 1023) === 0) return pub.flush();
    },
    localReceiver((h) => {
      handler = (d) => h(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    }),
    { bench: process.pid, server: nats.pid },
  );
  await pub.close();
  await sub.close();
  return r;
}

/**
 * NATS between two processes: this one publishes, a child of this script (`--role
 * nats-sub`) subscribes and reports, at the end of each phase, the latencies it measured
 * with the same clock.
 */
async function nats2Cell() {
  const child = spawn(process.execPath, [self, '--role', 'nats-sub', '--url', url], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(child);
  const lines = [];
  let onLine;
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    onLine?.();
  });
  // An exit ends a wait for a line at once (it rejects).
  child.once('exit', () => onLine?.());
  const nextLine = () =>
    new Promise((res, rej) => {
      const take = () => {
        if (lines.length > 0) {
          onLine = undefined;
          res(lines.shift());
        } else if (child.exitCode !== null || child.signalCode !== null) {
          rej(new Error('the NATS subscriber exited'));
        }
      };
      onLine = take;
      take();
    });
  if ((await nextLine()) !== 'ready') throw new Error('the NATS subscriber did not start');
  const pub = await connect({ servers: url });
  let n = 0;
  const r = await cell(
    (b) => {
      pub.publish('bench.nats2', b);
      if ((++n & 1023) === 0) return pub.flush();
    },
    {
      async expect(want) {
        child.stdin.write(`expect ${want}\n`);
        // Counting from 0 before the first message of the phase is sent.
        if ((await nextLine()) !== 'armed') throw new Error('the NATS subscriber is confused');
        return { done: nextLine().then((l) => JSON.parse(l).lats) };
      },
    },
    { bench: process.pid, subscriber: child.pid, server: nats.pid },
  );
  await pub.close();
  child.stdin.end();
  await once(child, 'close');
  children.delete(child);
  return r;
}

/** `--role nats-sub`: the subscribing process of {@link nats2Cell}. */
async function natsSubscriber() {
  const nc = await connect({ servers: values.url });
  const receiver = localReceiver((h) => {
    nc.subscribe('bench.nats2', {
      callback: (_e, m) => {
        const d = m.data;
        h(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
      },
    });
  });
  await nc.flush();
  createInterface({ input: process.stdin })
    .on('line', async (l) => {
      // The publisher waits for `armed` before the phase's first message.
      const { done } = await receiver.expect(Number(l.split(' ')[1]));
      process.stdout.write('armed\n');
      const lats = await done;
      process.stdout.write(`${JSON.stringify({ lats })}\n`);
    })
    .on('close', () => {
      nc.close().then(() => process.exit(0));
    });
  process.stdout.write('ready\n');
}

async function startBridge(args, cliPath) {
  const prof =
    values.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${values.profile}`];
  const child = spawn(process.execPath, [...prof, cliPath, 'bridge', ...args, '--report-ms', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const lines = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  while (!lines.includes('ready')) {
    if (child.exitCode !== null) throw new Error(`bridge ${args[0]} exited`);
    await sleep(20);
  }
  return child;
}

async function bridgeCell(jetstream, cliPath = cli) {
  const a = mkdtempSync('/dev/shm/bench-bridge-A-');
  const b = mkdtempSync('/dev/shm/bench-bridge-B-');
  dirs.push(a, b);
  const src = open('src', { create: true, codec: 'raw', dir: a, capacity: 1 << 22 });
  const dst = open('dst', { create: true, codec: 'raw', dir: b, capacity: 1 << 22 });
  const subject = jetstream ? 'bench.js' : 'bench.core';
  const js = jetstream ? ['--jetstream', '--stream', 'BENCH'] : [];
  const imp = await startBridge(
    ['import', subject, 'dst', '--nats', url, '--dir', b, ...js],
    cliPath,
  );
  const exp = await startBridge(
    ['export', 'src', '--nats', url, '--subject', subject, '--dir', a, ...js],
    cliPath,
  );
  let sub;
  const r = await cell(
    (m) => (src.publish(m) ? undefined : src.send(m)),
    localReceiver((h) => {
      sub = dst.messages().subscribe(h);
    }),
    { bench: process.pid, exporter: exp.pid, importer: imp.pid, server: nats.pid },
  );
  sub.unsubscribe();
  for (const c of [exp, imp]) {
    c.kill('SIGTERM');
    await once(c, 'close');
    children.delete(c);
  }
  src.close();
  dst.close();
  return r;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Cells of every round, in the order they ran. */
const names = ['nats', 'nats2', 'bridgeCore'];
/** The baselines: NATS between two clients of one process, and of two processes. */
const baselines = ['nats', 'nats2'];
if (values.jetstream) names.push('bridgeJetStream');
for (let i = 0; i < values.cli.length; i++) names.push(`other${i + 1}Core`);
const label = {
  nats: 'NATS, one process',
  nats2: 'NATS, two processes',
  bridgeCore: 'bridge (core)',
  bridgeJetStream: 'bridge (JetStream)',
};
values.cli.forEach((p, i) => {
  label[`other${i + 1}Core`] = `bridge ${i + 1} (core) ${p}`;
});
const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  const round = {};
  for (const n of names) {
    if (n === 'nats') round[n] = await natsCell();
    else if (n === 'nats2') round[n] = await nats2Cell();
    else if (n === 'bridgeCore') round[n] = await bridgeCell(false);
    else if (n === 'bridgeJetStream') round[n] = await bridgeCell(true);
    else round[n] = await bridgeCell(false, values.cli[Number(n.slice(5, -4)) - 1]);
  }
  rounds.push(round);
}
const cpuText = (c) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
const row = (name, r) =>
  `${name.padEnd(24)} ${String(r.msgPerSec).padStart(10)} msg/s   p50 ${String(r.p50us).padStart(6)} µs   p99 ${String(r.p99us).padStart(6)} µs   CPU µs/msg: ${cpuText(r.cpuUsPerMsg)}`;
console.log(
  `A→NATS→B, ${COUNT} messages of ${SIZE} bytes; latency over ${LAT} paced messages; ${ROUNDS} rounds, cells alternating`,
);
const ratios = (n, base) =>
  rounds.map((r) => ({
    throughput: r[n].msgPerSec / r[base].msgPerSec,
    p50: r[n].p50us / r[base].p50us,
  }));
rounds.forEach((r, i) => {
  console.log(`round ${i + 1}`);
  for (const n of names) console.log(`  ${row(label[n], r[n])}`);
});
const summary = {};
for (const n of names) {
  const rs = rounds.map((r) => r[n]);
  summary[n] = {
    msgPerSec: median(rs.map((x) => x.msgPerSec)),
    p50us: median(rs.map((x) => x.p50us)),
    p99us: median(rs.map((x) => x.p99us)),
  };
  if (baselines.includes(n)) continue;
  for (const base of baselines) {
    const q = ratios(n, base);
    const t = median(q.map((x) => x.throughput));
    const p = median(q.map((x) => x.p50));
    summary[n][base] = { throughputRatio: t, p50Ratio: p };
    console.log(
      `${label[n]} / ${label[base]}, median of the rounds: throughput ${(t * 100).toFixed(0)}% (rounds ${q.map((x) => `${(x.throughput * 100).toFixed(0)}%`).join(', ')}; target >= 90%), p50 ${p.toFixed(2)}x (rounds ${q.map((x) => `${x.p50.toFixed(2)}x`).join(', ')}; target <= 1.5x)`,
    );
  }
}
if (values.json) {
  console.log(
    JSON.stringify({
      count: COUNT,
      size: SIZE,
      rounds,
      summary,
    }),
  );
}
// The server child keeps the event loop alive: end here.
cleanup();
process.exit(0);
