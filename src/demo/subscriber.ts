/**
 * Demo subscriber: `node dist/demo/subscriber.js <channel> <count>`. Subscribes, prints
 * `ready`, then counts quotes until `count` arrived, checking that every sequence number
 * comes exactly once and in order, and prints one JSON line with the result.
 */
import { open } from '../index.js';
import type { Quote } from './publisher.js';

const [name, countArg] = process.argv.slice(2);
if (name === undefined) throw new Error('usage: subscriber.js <channel> <count>');
const count = Number(countArg ?? 1_000_000);

const ch = open<Quote>(name, { create: true });
let received = 0;
let expected = 0;
let lost = 0;
let outOfOrder = 0;
let first = 0n;
const sub = ch.messages().subscribe({
  next(q) {
    if (received === 0) first = process.hrtime.bigint();
    received++;
    if (q.seq > expected) lost += q.seq - expected;
    if (q.seq < expected) outOfOrder++;
    else expected = q.seq + 1;
    if (q.seq === count - 1 || received === count) {
      const seconds = Number(process.hrtime.bigint() - first) / 1e9;
      lost += count - expected;
      console.log(JSON.stringify({ role: 'subscriber', received, lost, outOfOrder, seconds }));
      sub.unsubscribe();
      ch.close();
    }
  },
  error(e) {
    console.error(`subscriber failed: ${(e as Error).message}`);
    process.exitCode = 1;
  },
});
console.log('ready');
