/**
 * Wake-up latency, Node.js → Node.js across processes (issue 3): how long a message takes
 * from `publish` in one process to the handler in another when the subscriber is *waiting*
 * for it, for each wait strategy (`adaptive`, `spin`, `block`) and each receive path
 * (`messages()`, woken by the native waiter thread through the event loop; `receiveSync`,
 * blocking its own thread).
 *
 * The producer paces messages `gapUs` apart (so the subscriber has gone back to waiting:
 * longer than the ~50 µs an `adaptive` wait spins), stamps each with CLOCK_MONOTONIC just
 * before `publish`, and the consumer subtracts on delivery (after decoding): a one-way
 * latency between two processes, `publish`'s own cost (encoding, the copy, the futex wake
 * when the subscriber sleeps) included. Like the Rust benchmark's paced producer it sleeps
 * until 80 µs before each send and spins the rest, so that the stamp and `publish` run on an
 * awake CPU; the spin allocates nothing (see `producer`). The producer also reports how long
 * its `publish` calls took (stamp to return, `publishP50us`): on this 2-vCPU VM a call that
 * has not run for a millisecond finds its code and data out of the caches, and with a
 * sleeping subscriber it includes the futex wake-up. The first tenth of the samples warms
 * the path up and is not counted. Consumer CPU is its process's user + system time over the
 * measurement ÷ wall time (1.0 = one core busy): the price of each strategy while it waits.
 *
 * Method caveat (2 vCPUs): a `spin` consumer holds one core and the producer's last 80 µs
 * the other, so anything else that runs (this harness, V8 helper threads, kernel threads
 * such as kdamond, other users) queues behind one of them; with a 4 ms scheduler tick
 * (CONFIG_HZ=250) such a wait shows up as p99 / p99.9 samples of 1 to 4 ms. p50 is not
 * affected by that; the tails on a busy 2-vCPU machine are the machine's.
 *
 *   node bench/wakeup.mjs [--quick | --smoke] [--prefix=bench-<pid>-] [--gap-us=1000]
 *                         [--only=receiveSync:spin,messages:block,receiveSync:spin:raw]
 *
 * prints one JSON line per case on stdout:
 * { receive, wait, payload, n, gapUs, p50us, p99us, p999us, maxus, consumerCores, publishP50us,
 * publishP99us } (or { receive, wait, payload, error }); payload is `quote` (msgpack) or `raw`
 * (a 64-byte Buffer, `receiveSync` with `spin` only). The roles run as
 * `node bench/wakeup.mjs consumer|producer` with the case in `WAKE_CFG`. Children are
 * killed and reaped, and channels removed, whatever happens.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { open, unlink } from '../dist/index.js';
import { cpuSince, latencySummary, nowNs, quote, rawMessage, seqOf, tsOf } from './lib.mjs';

/** Where the spin loops leave their arithmetic, so that it is not optimised away. */
const spinSink = { value: 0 };

const role = process.argv[2];
if (role === 'consumer') await consumer(JSON.parse(process.env.WAKE_CFG ?? '{}'));
else if (role === 'producer') producer(JSON.parse(process.env.WAKE_CFG ?? '{}'));
else await main();

/** Joins, says `ready`, collects latencies until the end marker, prints them and exits. */
async function consumer(cfg) {
  const ch = open(cfg.channel, { create: true, wait: cfg.wait, ...codecOf(cfg) });
  const lat = new Float64Array(cfg.count);
  let n = 0;
  let cpu;
  let start;
  const take = (v) => {
    const seq = seqOf(v);
    if (seq < 0) return true;
    if (seq === cfg.skip) {
      cpu = process.cpuUsage();
      start = nowNs();
    }
    if (seq >= cfg.skip && n < lat.length) lat[n++] = nowNs() - tsOf(v);
    return false;
  };
  const report = () => {
    const wallS = (nowNs() - start) / 1e9;
    const r = { ...latencySummary(lat.subarray(0, n)), consumerCores: cpuSince(cpu) / wallS };
    console.log(JSON.stringify({ event: 'result', ...r }));
    ch.close();
  };
  if (cfg.receive === 'receiveSync') {
    ch.receiveSync(0); // join before the producer starts
    console.log(JSON.stringify({ event: 'ready' }));
    for (;;) {
      const m = ch.receiveSync(1000);
      if (m !== undefined && take(m.value)) break;
    }
    report();
  } else {
    await new Promise((resolve, reject) => {
      const sub = ch.messages().subscribe({
        next(v) {
          if (take(v)) {
            sub.unsubscribe();
            resolve();
          }
        },
        error: reject,
      });
      console.log(JSON.stringify({ event: 'ready' }));
    });
    report();
  }
}

/**
 * Publishes `skip + count` stamped quotes `gapUs` apart, then the end marker, and reports how
 * long its own `publish` calls took (stamp to return).
 *
 * The pacing wait allocates nothing per turn: `nowNs()` makes a BigInt, and reading it in a
 * tight loop for 80 µs of every gap filled the young generation every few milliseconds. Each
 * scavenge woke V8 helper threads, which on 2 vCPUs (the consumer spinning on the other)
 * preempted this thread for 0.5 to 2.5 ms, sometimes between the stamp and `publish`
 * (`perf sched`: the producer switched out in state R for a `node` thread of its own pid
 * right after the stamp): a p99 of milliseconds that was the producer's garbage, not the
 * transport. So the spin reads the clock only every ~2 µs of arithmetic.
 */
function producer(cfg) {
  const ch = open(cfg.channel, codecOf(cfg));
  // Raw cases: one 64-byte template, seq and stamp written in (publish copies it at once).
  const raw = cfg.payload === 'raw' ? rawMessage(64, 0, 0) : undefined;
  const make = (seq, ts) => {
    if (raw === undefined) return quote(seq, ts);
    raw.writeDoubleLE(seq, 0);
    raw.writeDoubleLE(ts, 8);
    return raw;
  };
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const SPIN_NS = 80_000;
  const turns = spinTurnsPer(2_000);
  const pub = new Float64Array(cfg.count);
  let sink = 0;
  let next = nowNs();
  for (let seq = 0; seq < cfg.skip + cfg.count; seq++) {
    next += cfg.gapUs * 1000;
    const left = next - nowNs();
    if (left > SPIN_NS) Atomics.wait(cell, 0, 0, (left - SPIN_NS) / 1e6);
    // The last 80 µs: spin, so the stamp and publish run on an awake CPU.
    while (nowNs() < next) for (let i = 0; i < turns; i++) sink = (sink + i) | 0;
    const ts = nowNs();
    ch.publish(make(seq, ts));
    if (seq >= cfg.skip) pub[seq - cfg.skip] = nowNs() - ts;
  }
  ch.publish(make(-1, nowNs()));
  ch.close();
  const { p50us, p99us } = latencySummary(pub);
  spinSink.value = sink;
  console.log(JSON.stringify({ event: 'published', publishP50us: p50us, publishP99us: p99us }));
}

/** The `open` options of a case's payload: msgpack quotes (the default) or raw Buffers. */
function codecOf(cfg) {
  return cfg.payload === 'raw' ? { codec: 'raw' } : {};
}

/** How many turns of the spin loop's arithmetic take about `ns` here. */
function spinTurnsPer(ns) {
  let sink = 0;
  let turns = 1000;
  for (;;) {
    const t0 = nowNs();
    for (let i = 0; i < turns; i++) sink = (sink + i) | 0;
    const took = nowNs() - t0;
    if (took >= 200_000 || turns >= 2 ** 30) {
      spinSink.value = sink;
      return Math.max(1, Math.round((turns * ns) / Math.max(took, 1)));
    }
    turns *= 4;
  }
}

/**
 * The command line through `parseArgs` (strict); `--gap-us` must be a positive number. On an
 * error: the message on stderr, exit 2.
 */
function parseArguments(argv) {
  const fail = (msg) => {
    console.error(`wakeup: ${msg}`);
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
        prefix: { type: 'string' },
        'gap-us': { type: 'string', default: '1000' },
        only: { type: 'string' },
      },
    }));
  } catch (e) {
    fail(e.message);
  }
  const gapUs = Number(values['gap-us']);
  if (!(Number.isFinite(gapUs) && gapUs > 0))
    fail(`--gap-us: not a positive number: '${values['gap-us']}'`);
  return { ...values, gapUs };
}

async function main() {
  const args = parseArguments(process.argv.slice(2));
  const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full';
  const prefix = args.prefix ?? `bench-${process.pid}-`;
  const count = { full: 3000, quick: 500, smoke: 40 }[mode];
  const gapUs = args.gapUs;
  // `--only=receiveSync:spin,messages:block`: just those cases.
  const only = args.only?.split(',').filter(Boolean);
  const self = fileURLToPath(import.meta.url);
  const live = new Set();
  const names = new Set();
  const cleanup = () => {
    for (const c of live) c.kill('SIGKILL');
    for (const name of names) {
      try {
        unlink(name);
      } catch {
        // never created, or already removed
      }
    }
    names.clear();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(130));

  const start = (r, cfg) => {
    const child = spawn(process.execPath, [self, r], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WAKE_CFG: JSON.stringify(cfg) },
    });
    live.add(child);
    const exited = once(child, 'exit').then(([code, signal]) => {
      live.delete(child);
      return signal ?? code;
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-2000);
    });
    const events = [];
    const waiters = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      events.push(JSON.parse(line));
      for (const w of waiters.splice(0)) w();
    });
    /** The next event `name`; rejects if the child exits first or after `ms`. */
    const next = (name, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${r}: no '${name}' in ${ms} ms`)), ms);
        const check = () => {
          const i = events.findIndex((e) => e.event === name);
          if (i >= 0) {
            clearTimeout(timer);
            resolve(events.splice(i, 1)[0]);
          } else waiters.push(check);
        };
        exited.then((how) => {
          clearTimeout(timer);
          reject(new Error(`${r} exited with ${how}: ${stderr.trim().split('\n').at(-1)}`));
        });
        check();
      });
    return { child, exited, next };
  };

  // Every receive path and strategy with the quote; then the spinning receiveSync with a raw
  // 64-byte Buffer, which leaves msgpack out: the transport's own latency in Node.
  const cases = [];
  for (const receive of ['messages', 'receiveSync']) {
    for (const wait of ['adaptive', 'spin', 'block'])
      cases.push({ receive, wait, payload: 'quote' });
  }
  cases.push({ receive: 'receiveSync', wait: 'spin', payload: 'raw' });
  let i = 0;
  for (const { receive, wait, payload } of cases) {
    const id = `${receive}:${wait}${payload === 'raw' ? ':raw' : ''}`;
    if (only !== undefined && !only.includes(id)) continue;
    const cfg = {
      channel: `${prefix}wake-${i++}`,
      receive,
      wait,
      payload,
      count,
      skip: Math.max(5, Math.ceil(count / 10)),
      gapUs,
    };
    names.add(cfg.channel);
    process.stderr.write(`${receive} · wait ${wait} · ${payload}\n`);
    const procs = [];
    try {
      const c = start('consumer', cfg);
      procs.push(c);
      await c.next('ready', 15_000);
      const p = start('producer', cfg);
      procs.push(p);
      const budget = 15_000 + ((cfg.skip + count) * gapUs * 3) / 1000;
      const r = await c.next('result', budget);
      const { event: _, ...figures } = r;
      const { event: __, ...published } = await p.next('published', 15_000);
      console.log(JSON.stringify({ receive, wait, payload, gapUs, ...figures, ...published }));
    } catch (e) {
      console.log(JSON.stringify({ receive, wait, payload, error: e.message }));
    } finally {
      for (const p of procs) p.child.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
      cleanup();
    }
  }
}
