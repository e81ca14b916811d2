/**
 * Logger service: `node logger.mjs <trades channel> <every>`. Subscribes to the trades and
 * logs every `every`-th one, a line per second with the trade rate (`bufferTime`), and at
 * the end one JSON line with what it saw: how many trades, per symbol, and whether any
 * sequence number was missing or out of order.
 */
import { bufferTime, filter, share, takeWhile } from 'rxjs';
import { open } from 'shmring';

const [tradesName, everyArg] = process.argv.slice(2);
if (tradesName === undefined) throw new Error('usage: logger.mjs <trades channel> <every>');
const every = Number(everyArg ?? 100_000);

const trades = open(tradesName, { create: true });
const feed = trades.messages().pipe(
  takeWhile((t) => t.end !== true),
  share(),
);

let received = 0;
let expected = 0;
let missing = 0;
let outOfOrder = 0;
const perSymbol = {};

feed.subscribe({
  next(t) {
    received++;
    if (t.seq > expected) missing += t.seq - expected;
    if (t.seq < expected) outOfOrder++;
    else expected = t.seq + 1;
    perSymbol[t.sym] = (perSymbol[t.sym] ?? 0) + 1;
    if (t.seq % every === 0) {
      console.log(`logger: #${t.seq} ${t.sym.padEnd(5)} ${t.px.toFixed(2)} x ${t.qty}`);
    }
  },
  error(e) {
    console.error(`logger: ${e.message}`);
    process.exitCode = 1;
  },
  complete() {
    console.log(JSON.stringify({ role: 'logger', received, missing, outOfOrder, perSymbol }));
    trades.close();
  },
});

// Trades per second, from one-second buffers of the same stream (skipping idle seconds).
feed
  .pipe(
    bufferTime(1000),
    filter((b) => b.length > 0),
  )
  .subscribe((b) => console.log(`logger: ${b.length.toLocaleString('en-US')} trades/s`));

console.log('ready');
