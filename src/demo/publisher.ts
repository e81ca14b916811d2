/**
 * Demo publisher: `node dist/demo/publisher.js <channel> <count>`. Publishes `count` quotes
 * (5-field objects, ~40 bytes of msgpack) and prints one JSON line with what it did.
 */
import { open } from '../index.js';

/** A quote as the demo publishes it. */
export interface Quote {
  seq: number;
  sym: string;
  px: number;
  qty: number;
  ts: number;
}

const [name, countArg] = process.argv.slice(2);
if (name === undefined) throw new Error('usage: publisher.js <channel> <count>');
const count = Number(countArg ?? 1_000_000);

const ch = open<Quote>(name, { create: true });
const started = process.hrtime.bigint();
let waits = 0;
for (let seq = 0; seq < count; seq++) {
  const q: Quote = {
    seq,
    sym: 'ACME',
    px: 100 + (seq % 100) / 4,
    qty: 100 + (seq % 7),
    ts: 1_700_000_000,
  };
  if (!ch.publish(q)) {
    waits++;
    await ch.send(q);
  }
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
ch.close();
console.log(JSON.stringify({ role: 'publisher', published: count, seconds, waits }));
