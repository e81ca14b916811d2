#!/usr/bin/env node
/**
 * `npm run bench:acks` — what acknowledgements cost a queue, and how soon a dead consumer's
 * delivery reaches another one, measured in one run:
 *
 * - Throughput: one producer process publishes N 40-byte msgpack objects into a queue that
 *   two consumer processes read with `messages()`, with `delivery: 'at-most-once'` and
 *   `'at-least-once'` alternately, round after round (the first mode alternates too). A
 *   round's rate is N over the time from the producer's first publish to the last message
 *   received by either consumer.
 * - Redelivery: a consumer process takes one message of an at-least-once queue and holds
 *   it; this process, subscribed to the queue with `records()`, kills it with SIGKILL and
 *   measures the time from the kill to receiving the message again; p50 and max of R kills.
 *
 *   node bench/acks.mjs [--rounds N] [--count N] [--kills N] [--json]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { open, unlink } from '../dist/index.js';

const self = fileURLToPath(import.meta.url);
const [role] = process.argv.slice(2);
/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
const now = () => performance.timeOrigin + performance.now();

if (role === 'produce') {
  const [, name, countArg] = process.argv.slice(2);
  const ch = open(name);
  const count = Number(countArg);
  const startAt = now();
  for (let i = 0; i < count; i++) {
    const m = { sym: 'ACME', px: 101.25, seq: i };
    if (!ch.publish(m)) await ch.send(m);
  }
  for (let k = 0; k < 2; k++) await ch.send({ stop: true });
  console.log(JSON.stringify({ startAt }));
  ch.close();
} else if (role === 'consume') {
  const [, name] = process.argv.slice(2);
  const ch = open(name);
  let received = 0;
  let lastAt = 0;
  let done = false;
  const sub = ch.messages().subscribe((m) => {
    if (m.stop) {
      // One stop each: a consumer that drained both in one batch sends the second back.
      if (done) {
        if (!ch.publish(m)) ch.send(m);
        return;
      }
      done = true;
      console.log(JSON.stringify({ received, lastAt }));
      setTimeout(() => {
        sub.unsubscribe();
        ch.close();
      }, 200);
      return;
    }
    received++;
    lastAt = now();
  });
  console.log('ready');
} else if (role === 'hold') {
  const [, name] = process.argv.slice(2);
  const ch = open(name);
  console.log('ready');
  const d = ch.receiveSync(60_000);
  console.log(d === undefined ? 'none' : 'took');
  setInterval(() => {}, 1000); // hold it until killed
} else {
  await main();
}

/** Spawns this script in `role`; resolves lines as they come. */
function child(children, ...args) {
  const c = spawn(process.execPath, [self, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(c);
  const lines = [];
  const waiters = [];
  createInterface({ input: c.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise((resolve) => c.once('close', resolve));
  exited.then(() => {
    children.delete(c);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (pred) => {
    for (;;) {
      const hit = lines.find(pred);
      if (hit !== undefined) return hit;
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`bench:acks: ${args[0]} ended before the expected line`);
      }
      await new Promise((r) => waiters.push(r));
    }
  };
  return { c, waitFor, exited, json: () => waitFor((l) => l.startsWith('{')).then(JSON.parse) };
}

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      rounds: { type: 'string', default: '4' },
      count: { type: 'string', default: '500000' },
      kills: { type: 'string', default: '20' },
      json: { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  const count = Number(values.count);
  const kills = Number(values.kills);
  for (const [k, v] of Object.entries({ rounds, count, kills })) {
    if (!(Number.isInteger(v) && v > 0)) {
      console.error(`bench:acks: --${k} must be a positive integer`);
      process.exit(1);
    }
  }
  const children = new Set();
  const names = new Set();
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    for (const n of names) {
      try {
        unlink(n);
      } catch {
        // removed already
      }
    }
  };
  process.once('exit', cleanup);
  for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => process.exit(130));

  const throughput = async (delivery, r) => {
    const name = `bench-acks-${process.pid}-${delivery}-${r}`;
    names.add(name);
    const ch = open(name, { create: true, kind: 'queue', delivery, capacity: 1 << 20 });
    try {
      const consumers = [0, 1].map(() => child(children, 'consume', name));
      await Promise.all(consumers.map((c) => c.waitFor((l) => l === 'ready')));
      const producer = child(children, 'produce', name, String(count));
      const { startAt } = await producer.json();
      const got = await Promise.all(consumers.map((c) => c.json()));
      await Promise.all([producer, ...consumers].map((c) => c.exited));
      const received = got.reduce((n, g) => n + g.received, 0);
      if (received !== count) throw new Error(`${delivery}: ${received} of ${count} received`);
      const s = (Math.max(...got.map((g) => g.lastAt)) - startAt) / 1000;
      return { msgPerS: count / s, split: got.map((g) => g.received) };
    } finally {
      ch.close();
      unlink(name);
      names.delete(name);
    }
  };

  const rows = [];
  for (let r = 0; r < rounds; r++) {
    const order =
      r % 2 === 0 ? ['at-most-once', 'at-least-once'] : ['at-least-once', 'at-most-once'];
    const row = { round: r };
    for (const d of order) row[d] = await throughput(d, r);
    rows.push(row);
  }

  // Redelivery after a consumer's death.
  const name = `bench-acks-${process.pid}-redeliver`;
  names.add(name);
  const ch = open(name, { create: true, kind: 'queue', delivery: 'at-least-once' });
  const redeliveryMs = [];
  try {
    for (let k = 0; k < kills; k++) {
      const holder = child(children, 'hold', name);
      await holder.waitFor((l) => l === 'ready');
      ch.publish({ k });
      await holder.waitFor((l) => l === 'took');
      let killedAt = 0;
      const again = new Promise((resolve) => {
        const sub = ch.records().subscribe((d) => {
          const ms = performance.now() - killedAt;
          d.ack();
          sub.unsubscribe();
          resolve(ms);
        });
      });
      killedAt = performance.now();
      holder.c.kill('SIGKILL');
      redeliveryMs.push(await again);
      await holder.exited;
    }
  } finally {
    ch.close();
    unlink(name);
    names.delete(name);
  }

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = {
    atMostOnceMsgPerS: median(rows.map((r) => r['at-most-once'].msgPerS)),
    atLeastOnceMsgPerS: median(rows.map((r) => r['at-least-once'].msgPerS)),
    redeliveryP50Ms: median(redeliveryMs),
    redeliveryMaxMs: Math.max(...redeliveryMs),
  };
  summary.ratio = summary.atLeastOnceMsgPerS / summary.atMostOnceMsgPerS;
  if (values.json) {
    console.log(JSON.stringify({ count, rounds, kills, rows, redeliveryMs, summary }));
  } else {
    console.log(
      `queue, 1 producer -> 2 consumer processes (messages()), ${count} 40-byte msgpack objects, median of ${rounds} rounds`,
    );
    console.log(`  at-most-once   ${(summary.atMostOnceMsgPerS / 1e6).toFixed(2)} M msg/s`);
    console.log(
      `  at-least-once  ${(summary.atLeastOnceMsgPerS / 1e6).toFixed(2)} M msg/s (${summary.ratio.toFixed(2)}x)`,
    );
    console.log(
      `redelivery after SIGKILL of the holder, ${kills} kills: p50 ${summary.redeliveryP50Ms.toFixed(1)} ms, max ${summary.redeliveryMaxMs.toFixed(1)} ms`,
    );
  }
}
