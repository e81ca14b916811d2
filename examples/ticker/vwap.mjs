/**
 * VWAP service: `node vwap.mjs <trades channel> <bars channel> <bar size>`. Subscribes to
 * the trades, groups them by symbol, cuts each symbol's stream into bars of `bar size`
 * trades, reduces each bar to its open/high/low/close, volume and volume-weighted average
 * price, and publishes the bars on a second channel. All of that is RxJS operators on
 * `channel.messages()`; nothing here knows about shared memory beyond `open`.
 *
 * Prints `ready` once subscribed, and one JSON line with its totals per symbol at the end.
 */
import { concatMap, filter, groupBy, mergeMap, reduce, share, takeWhile, windowCount } from 'rxjs';
import { open } from 'shmring';

const [tradesName, barsName, barSizeArg] = process.argv.slice(2);
if (tradesName === undefined || barsName === undefined) {
  throw new Error('usage: vwap.mjs <trades channel> <bars channel> <bar size>');
}
const barSize = Number(barSizeArg ?? 1000);

const trades = open(tradesName, { create: true });
const bars = open(barsName, { create: true });

/** A bar being built: prices in whole cents so that sums are exact. */
const emptyBar = (sym, bar) => ({
  sym,
  bar,
  trades: 0,
  volume: 0,
  notional: 0,
  open: 0,
  high: 0,
  low: Number.POSITIVE_INFINITY,
  close: 0,
});
const addTrade = (b, t) => {
  const px = Math.round(t.px * 100);
  return {
    ...b,
    trades: b.trades + 1,
    volume: b.volume + t.qty,
    notional: b.notional + px * t.qty,
    open: b.trades === 0 ? px : b.open,
    high: Math.max(b.high, px),
    low: Math.min(b.low, px),
    close: px,
  };
};

// One subscription (one participant slot), shared by both pipelines below. The feed ends
// with `{ end: true }`: takeWhile completes the stream there, which completes every group,
// window and reduce downstream, flushing the last partial bars.
const feed = trades.messages().pipe(
  takeWhile((t) => t.end !== true),
  share(),
);

const bars$ = feed.pipe(
  groupBy((t) => t.sym),
  mergeMap((bySymbol) =>
    bySymbol.pipe(
      windowCount(barSize),
      concatMap((window, i) => window.pipe(reduce(addTrade, emptyBar(bySymbol.key, i)))),
      filter((b) => b.trades > 0), // the last window may be empty
    ),
  ),
  share(),
);

const totals = bars$.pipe(
  reduce((acc, b) => {
    const s = acc[b.sym] ?? { trades: 0, volume: 0, notional: 0, bars: 0 };
    acc[b.sym] = {
      trades: s.trades + b.trades,
      volume: s.volume + b.volume,
      notional: s.notional + b.notional,
      bars: s.bars + 1,
    };
    return acc;
  }, {}),
);

let published = 0;
bars$.subscribe({
  next(b) {
    const bar = { ...b, vwap: b.notional / b.volume / 100 };
    // Bars are few and small: publish now, or wait for room (sends keep their order).
    if (!bars.publish(bar)) bars.send(bar).catch((e) => console.error(`vwap: ${e.message}`));
    published++;
  },
  error(e) {
    console.error(`vwap: ${e.message}`);
    process.exitCode = 1;
  },
});
totals.subscribe({
  async next(perSymbol) {
    await bars.send({ end: true, bars: published });
    console.log(JSON.stringify({ role: 'vwap', bars: published, perSymbol }));
    trades.close();
    bars.close();
  },
  error() {},
});
console.log('ready');
