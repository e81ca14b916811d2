/**
 * `npm run example:rust-to-node [-- --count N] [--json]`
 *
 * A Rust program that uses the `shmring` crate alone (crates/shmring/examples/rust_to_node.rs)
 * publishes msgpack-encoded trades; this Node process subscribes and checks each one. The
 * Rust side writes each struct as a msgpack map with named fields (`rmp_serde::to_vec_named`),
 * which the default codec here decodes into a plain object. Nothing but the channel's name and
 * the msgpack shape is shared: the segment layout is the same on both sides (docs/LAYOUT.md).
 *
 * The npm script builds the Rust example first; `--bin <path>` runs another build of it.
 */
import { isDeepStrictEqual } from 'node:util';
import { open } from 'shmring';
import { fmt, options, Run } from '../lib/processes.mjs';
import { rustBinary, tick } from './messages.mjs';

const opts = options({ count: 100_000 }, { bin: { type: 'string' } });
const run = new Run();
const name = run.channel('rust2node', 'trades');
const trades = open(name, { create: true });

let received = 0;
let bad = 0;
let first = 0n;
let seconds = 0;
let last;
const done = new Promise((resolve, reject) => {
  // Join before the Rust process starts: a topic delivers what is published after that.
  const sub = trades.messages().subscribe({
    next(t) {
      if (received === 0) first = process.hrtime.bigint();
      const want = tick(received, opts.count);
      if (!isDeepStrictEqual(t, want)) {
        if (bad === 0) console.error(`got ${JSON.stringify(t)}, expected ${JSON.stringify(want)}`);
        bad++;
      }
      received++;
      last = t;
      if (t.last === true || received === opts.count) {
        seconds = Number(process.hrtime.bigint() - first) / 1e9;
        sub.unsubscribe();
        resolve();
      }
    },
    error: reject,
  });
});

console.log(`rust-to-node: a Rust process publishes ${fmt(opts.count)} trades, Node subscribes`);
try {
  const rust = run.start(rustBinary('rust_to_node', opts.bin), [name, String(opts.count)], {
    label: 'rust_to_node',
  });
  const [r] = await Promise.all([rust.result, done]);
  const ok = received === opts.count && bad === 0;
  console.log(`rust published ${fmt(r.published)} messages (${fmt(r.bytes)} bytes of msgpack)`);
  console.log(
    `node received   ${fmt(received)} in ${seconds.toFixed(3)} s ` +
      `(${fmt(received / seconds)} msg/s), ${bad} not as sent`,
  );
  console.log(`last one: ${JSON.stringify(last)}`);
  if (!ok) process.exitCode = 1;
  if (opts.json) {
    console.log(
      JSON.stringify({ example: 'rust-to-node', ok, published: r.published, received, bad }),
    );
  }
} catch (e) {
  console.error(`rust-to-node: ${e.message}`);
  process.exitCode = 1;
} finally {
  trades.close();
  run.cleanup();
}
