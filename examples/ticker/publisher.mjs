/**
 * Market-data feed: `node publisher.mjs <trades channel> <count>`. Publishes `count` trades
 * `{ seq, sym, px, qty, ts }` (a seeded random walk per symbol, so every run is the same),
 * then an end marker `{ end: true, count }`, and prints one JSON line with what it sent:
 * per symbol, the trade count, volume and notional (in cents), so the orchestrator can check
 * the VWAP service's arithmetic against the source.
 */
import { open } from 'shmring';
import { publishAll } from '../lib/processes.mjs';

const [name, countArg] = process.argv.slice(2);
if (name === undefined || countArg === undefined) {
  throw new Error('usage: publisher.mjs <channel> <count>');
}
const count = Number(countArg);
const SYMBOLS = ['ACME', 'INIT', 'GLOBX', 'UMBR', 'WAYNE'];

/** mulberry32: a small seeded PRNG, so the feed is reproducible. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = prng(42);
const cents = new Map(SYMBOLS.map((s, i) => [s, 10_000 + 2_500 * i])); // $100.00, $125.00, ...
const sent = Object.fromEntries(SYMBOLS.map((s) => [s, { trades: 0, volume: 0, notional: 0 }]));

const trades = open(name, { create: true });
const started = process.hrtime.bigint();
let batch = [];
for (let seq = 0; seq < count; seq++) {
  const sym = SYMBOLS[Math.floor(random() * SYMBOLS.length)];
  // A random walk in whole cents, never below $1.
  const px = Math.max(100, (cents.get(sym) ?? 0) + Math.round((random() - 0.5) * 20));
  cents.set(sym, px);
  const qty = 100 * (1 + Math.floor(random() * 10));
  batch.push({ seq, sym, px: px / 100, qty, ts: Date.now() });
  const s = sent[sym];
  s.trades++;
  s.volume += qty;
  s.notional += px * qty; // cents: exact in a double far beyond these counts
  if (batch.length === 512) {
    await publishAll(trades, batch);
    batch = [];
  }
}
await publishAll(trades, [...batch, { end: true, count }]);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
trades.close();
console.log(JSON.stringify({ role: 'publisher', published: count, seconds, sent }));
