/**
 * `npm run example:ticker [-- --count N] [--bar N] [--json]`
 *
 * A market-data bus in four processes that share nothing but channel names:
 *
 *   publisher.mjs ──trades──┬──> vwap.mjs ──bars──> this process (prints the bars)
 *                           └──> logger.mjs
 *
 * The publisher sends `count` trades on the `trades` topic; the VWAP service (RxJS groupBy
 * symbol, windowCount, reduce) turns them into bars on the `bars` topic; the logger logs
 * and counts. A topic delivers to every subscriber that joined before a message was
 * published, so the services are started, and said `ready`, before the publisher.
 * At the end this process checks the services' totals against what the publisher sent.
 */
import { open } from 'shmring';
import { beside, fmt, options, Run } from '../lib/processes.mjs';

const opts = options({ count: 200_000 }, { bar: { type: 'string' } });
const barSize = Number(opts.bar ?? 1000);
const here = (f) => beside(import.meta.url, f);

const run = new Run();
const tradesName = run.channel('ticker', 'trades');
const barsName = run.channel('ticker', 'bars');
// Created here first, so every process attaches to the same settings.
const trades = open(tradesName, { create: true });
const bars = open(barsName, { create: true });

console.log(`ticker: ${fmt(opts.count)} trades, VWAP bars of ${fmt(barSize)} trades per symbol`);
const seen = [];
let barLines = 0;
const done = new Promise((resolve, reject) => {
  const sub = bars.messages().subscribe({
    next(b) {
      if (b.end) {
        sub.unsubscribe();
        resolve(b);
        return;
      }
      seen.push(b);
      // A few bars per symbol on the screen; all of them are counted.
      if (b.bar % 10 === 0 && barLines++ < 50) {
        console.log(
          `bar ${b.sym.padEnd(5)} #${String(b.bar).padEnd(4)} vwap ${b.vwap.toFixed(4)}  ` +
            `o ${(b.open / 100).toFixed(2)} h ${(b.high / 100).toFixed(2)} ` +
            `l ${(b.low / 100).toFixed(2)} c ${(b.close / 100).toFixed(2)}  vol ${fmt(b.volume)}`,
        );
      }
    },
    error: reject,
  });
});

try {
  const vwap = run.node(here('vwap.mjs'), [tradesName, barsName, barSize], { readyLine: 'ready' });
  const every = Math.max(1, Math.floor(opts.count / 5));
  const logger = run.node(here('logger.mjs'), [tradesName, every], { readyLine: 'ready' });
  await Promise.all([vwap.ready, logger.ready]);
  const publisher = run.node(here('publisher.mjs'), [tradesName, opts.count]);
  const [p, v, l, end] = await Promise.all([publisher.result, vwap.result, logger.result, done]);

  // Check the services against the source.
  const problems = [];
  for (const [sym, s] of Object.entries(p.sent)) {
    const got = v.perSymbol[sym] ?? { trades: 0, volume: 0, notional: 0 };
    if (got.trades !== s.trades || got.volume !== s.volume || got.notional !== s.notional) {
      problems.push(`vwap totals for ${sym} differ from what was sent`);
    }
    if (l.perSymbol[sym] !== s.trades) problems.push(`logger saw a wrong count for ${sym}`);
  }
  if (l.received !== opts.count) problems.push(`logger received ${l.received}`);
  if (l.missing !== 0 || l.outOfOrder !== 0) problems.push('logger saw a gap or reordering');
  if (seen.length !== v.bars || end.bars !== v.bars) problems.push('bars went missing');

  console.log('');
  console.log(
    `published ${fmt(p.published)} trades in ${p.seconds.toFixed(3)} s ` +
      `(${fmt(p.published / p.seconds)} trades/s)`,
  );
  console.log(
    `logger    received ${fmt(l.received)}: ${l.missing} missing, ${l.outOfOrder} out of order`,
  );
  console.log(`vwap      published ${fmt(v.bars)} bars; this process received ${fmt(seen.length)}`);
  console.log('symbol  trades      volume  vwap (service)  vwap (source)');
  for (const [sym, s] of Object.entries(p.sent)) {
    const got = v.perSymbol[sym];
    const vw = got === undefined ? Number.NaN : got.notional / got.volume / 100;
    console.log(
      `${sym.padEnd(6)}  ${fmt(s.trades).padStart(6)}  ${fmt(s.volume).padStart(10)}  ` +
        `${vw.toFixed(4).padStart(14)}  ${(s.notional / s.volume / 100).toFixed(4).padStart(13)}`,
    );
  }
  console.log(problems.length === 0 ? 'ok: every total matches the source' : problems.join('\n'));
  if (problems.length > 0) process.exitCode = 1;
  if (opts.json) {
    console.log(
      JSON.stringify({
        example: 'ticker',
        ok: problems.length === 0,
        problems,
        published: p.published,
        logged: l.received,
        missing: l.missing,
        outOfOrder: l.outOfOrder,
        bars: v.bars,
        barsReceived: seen.length,
        symbols: Object.keys(p.sent).length,
      }),
    );
  }
} catch (e) {
  console.error(`ticker: ${e.message}`);
  process.exitCode = 1;
} finally {
  trades.close();
  bars.close();
  run.cleanup();
}
