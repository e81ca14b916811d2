/**
 * The transports the benchmark compares, how each one's role processes are launched
 * (bench/peers/), the phase lengths of each mode, and one cell: a transport and a payload,
 * run through its warm-up, throughput and latency phases to one result row.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CellRun, here, prefix, trackChannel, trackPath } from './harness.mjs';
import { SERVERS, startServer, which } from './servers.mjs';

const node = process.execPath;
const peer = (f) => here(`peers/${f}`);

/** Consumer first (it must be listening or subscribed), then the producer. */
const separate = (file) => async (run, env, t) => {
  run.spawn(node, [peer(file), 'consumer'], ['consumer'], env);
  await run.event('consumer', 'ready', t);
  run.spawn(node, [peer(file), 'producer'], ['producer'], env);
  await run.event('producer', 'ready', t);
};

/** A real pipe(2) from the shell: Node's own stdio 'pipe' is a socketpair. */
async function pipeline(run, env, t) {
  const script =
    'BENCH_CTRL_FD=3 "$1" "$2" producer 4<&- | BENCH_CTRL_FD=4 "$1" "$2" consumer 3<&-';
  run.spawn('/bin/sh', ['-c', script, 'sh', node, peer('pipe.mjs')], ['producer', 'consumer'], env);
  await Promise.all([run.event('consumer', 'ready', t), run.event('producer', 'ready', t)]);
}

/** A server of its own for the cell (bench/servers.mjs), then consumer and producer. */
const served = (kind, file) => async (run, env, t) => {
  const port = await startServer(run, kind, t);
  await separate(file)(run, { ...env, BENCH_SERVER_PORT: String(port) }, t);
};

export const TRANSPORTS = [
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
    id: 'shmring-iter',
    label: 'shmring lock-free, iterate()',
    sync: 'lockfree',
    receive: 'iterate',
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
    // Like for like with the batched pipe: batches in, a view of each message out.
    id: 'shmring-many-view',
    label: 'shmring lock-free, publishMany + rawView',
    sync: 'lockfree',
    batch: 64,
    view: true,
    rawOnly: true,
    launch: separate('shmring.mjs'),
  },
  {
    id: 'shmring-sem',
    label: 'shmring semaphore',
    sync: 'semaphore',
    launch: separate('shmring.mjs'),
  },
  { id: 'pipe', label: 'pipe', launch: pipeline },
  {
    id: 'pipe-many',
    label: 'pipe, 64 frames per write',
    batch: 64,
    launch: pipeline,
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
  {
    id: 'nats',
    label: 'NATS core',
    server: 'nats',
    launch: served('nats', 'nats.mjs'),
  },
  {
    id: 'redis',
    label: 'Redis pub/sub',
    server: 'redis',
    launch: served('redis', 'redis.mjs'),
  },
];

/**
 * The transports of a run: those in `only` (ids; every one if undefined), the smoke pair
 * under `smoke`, without semaphore mode where `semaphoreError` says it cannot open. Returns
 * { transports, skipped }, skipped listing why each left out (or external) one is not run.
 */
export function chooseTransports({ only, smoke, semaphoreError }) {
  const skipped = [];
  let transports = TRANSPORTS.filter((t) => !only || only.includes(t.id));
  if (smoke) transports = transports.filter((t) => t.id === 'shmring-many' || t.id === 'uds');
  if (semaphoreError !== undefined && transports.some((t) => t.id === 'shmring-sem')) {
    skipped.push({ transport: 'shmring semaphore', reason: semaphoreError });
    transports = transports.filter((t) => t.id !== 'shmring-sem');
  }
  // Peers that need a server: run when its binary is installed (the benchmark installs
  // nothing), skipped with the reason otherwise.
  transports = transports.filter((t) => {
    if (t.server === undefined) return true;
    const { binary } = SERVERS[t.server];
    if (which(binary)) return true;
    skipped.push({
      transport: t.label,
      reason: `skipped: ${binary} is not installed (apt-get install -y ${binary} to include it)`,
    });
    return false;
  });
  return { transports, skipped };
}

// ---------------------------------------------------------------------------------------------
// Phases and sizes.

/** Phase lengths (seconds) and latency sample counts of each mode. */
export const PHASES = {
  full: { warmup: 0.3, seconds: 1.5, latencyBudgetS: 0.6, latencyMax: 4000, timeoutS: 60 },
  quick: { warmup: 0.15, seconds: 0.3, latencyBudgetS: 0.12, latencyMax: 500, timeoutS: 30 },
  smoke: { warmup: 0.02, seconds: 0.05, latencyBudgetS: 0.02, latencyMax: 200, timeoutS: 30 },
};

/** Ring settings per payload: the defaults (1 MiB ring) up to 4 KiB, 16 MiB above. */
function ringFor(bytes) {
  if (bytes <= 4096) return { capacity: 1 << 20, maxMessageSize: 65536 };
  return { capacity: 16 << 20, maxMessageSize: Math.max(65536, bytes + 64) };
}

function cellConfig(t, p, n, phase) {
  // Paced latency sends: a gap that even a slow transport clears (≥ 100 µs, 10 ms per MiB),
  // so that latency is not queueing.
  const gapUs = Math.max(100, Math.round(p.bytes / 100));
  const latencyCount = Math.max(
    20,
    Math.min(phase.latencyMax, Math.floor((phase.latencyBudgetS * 1e6) / gapUs)),
  );
  const tag = `${process.pid}-${n}`;
  return {
    channel: `${prefix}${n}`,
    path: join(tmpdir(), `shmring-bench-${tag}.sock`),
    sync: t.sync,
    ...ringFor(p.bytes),
    kind: p.kind,
    bytes: p.bytes,
    warmup: phase.warmup,
    seconds: phase.seconds,
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

/**
 * Runs transport `t` with payload `p` through the phases of `phase` (one of PHASES): a result
 * row with msg/s, MB/s, latency percentiles and CPU, or the row with `error`. Its processes
 * are killed and reaped and its channel and socket path removed before it returns.
 */
export async function runCell(t, p, phase) {
  const cfg = cellConfig(t, p, cellNo++, phase);
  trackChannel(cfg.channel);
  trackPath(cfg.path);
  const run = new CellRun();
  const env = { BENCH_CFG: JSON.stringify(cfg), BENCH_CTRL_FD: '3' };
  const ms = phase.timeoutS * 1000;
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
    await run.reap();
  }
}
