#!/usr/bin/env node
/**
 * `npm run bench:replay` — how fast a replay from `earliest` reads what a channel holds,
 * beside a live subscription reading the same messages from the same ring, in one run,
 * alternating which goes first. A 64 MiB topic is filled with N messages (64-byte raw
 * payloads, or 40-byte msgpack objects); then either a replay (`messages({ from: 'earliest' })`,
 * joined after the publishes) or a subscriber that joined before them (`messages()`) reads
 * all N (GB/s counts payload bytes; for msgpack, record bytes).
 * Prints a table: msg/s and GB/s of payload for each, and the ratio replay/live.
 *
 *   node bench/replay.mjs [--rounds N] [--count N] [--json]
 */
import { parseArgs } from 'node:util';
import { open, unlink } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    count: { type: 'string', default: '500000' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const count = Number(values.count);
if (!(Number.isInteger(rounds) && rounds > 0 && Number.isInteger(count) && count > 0)) {
  console.error('bench:replay: --rounds and --count must be positive integers');
  process.exit(1);
}

const payloads = [
  { label: '64 B raw', codec: 'raw', make: (i) => Buffer.alloc(64, i & 0xff), bytes: 64 },
  {
    label: '40 B msgpack object',
    codec: 'msgpack',
    make: (i) => ({ sym: 'ACME', px: 101.25, seq: i }),
    bytes: 0,
  },
];

/**
 * Fills a fresh channel with `count` messages of `p` and reads them all: `replay` joins after
 * the publishes, from `earliest`; `live` joined before them (the publishes run without
 * yielding, so it reads only once they are done). Returns the read's figures.
 */
async function measure(p, which, r) {
  const name = `bench-replay-${process.pid}-${which}-${r}`;
  const ch = open(name, { create: true, capacity: 64 << 20, codec: p.codec });
  try {
    let seen = 0;
    let done;
    const finished = new Promise((resolve) => {
      done = resolve;
    });
    const observer = () => {
      if (++seen === count) done();
    };
    const live = which === 'live' ? ch.messages().subscribe(observer) : undefined;
    for (let i = 0; i < count; i++) {
      if (!ch.publish(p.make(i))) throw new Error('the 64 MiB ring filled up: lower --count');
    }
    const bytes = p.bytes || ch.stats().tail / count; // msgpack: bytes of a record
    const start = process.hrtime.bigint();
    const replay =
      which === 'replay' ? ch.messages({ from: 'earliest' }).subscribe(observer) : undefined;
    await finished;
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    live?.unsubscribe();
    replay?.unsubscribe();
    return { seconds: s, msgPerS: count / s, gbPerS: (count * bytes) / s / 1e9, bytes };
  } finally {
    ch.close();
    unlink(name);
  }
}

const results = [];
for (const p of payloads) {
  for (let r = 0; r < rounds; r++) {
    const row = { payload: p.label, round: r };
    for (const which of r % 2 === 0 ? ['replay', 'live'] : ['live', 'replay']) {
      row[which] = await measure(p, which, r);
    }
    results.push(row);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const summary = payloads.map((p) => {
  const rows = results.filter((r) => r.payload === p.label);
  const replay = median(rows.map((r) => r.replay.msgPerS));
  const live = median(rows.map((r) => r.live.msgPerS));
  const gb = median(rows.map((r) => r.replay.gbPerS));
  return {
    payload: p.label,
    replayMsgPerS: replay,
    liveMsgPerS: live,
    replayGbPerS: gb,
    ratio: replay / live,
  };
});
if (values.json) console.log(JSON.stringify({ count, rounds, results, summary }));
else {
  console.log(
    `replay from earliest vs a subscriber that joined before, ${count} messages, median of ${rounds}`,
  );
  console.log('payload              replay msg/s   replay GB/s   live msg/s   replay/live');
  for (const s of summary) {
    console.log(
      `${s.payload.padEnd(20)} ${(s.replayMsgPerS / 1e6).toFixed(2).padStart(9)} M ${s.replayGbPerS.toFixed(3).padStart(11)}   ${(s.liveMsgPerS / 1e6).toFixed(2).padStart(8)} M   ${s.ratio.toFixed(2).padStart(8)}`,
    );
  }
}
