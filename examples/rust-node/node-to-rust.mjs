/**
 * `npm run example:node-to-rust [-- --count N] [--json]`
 *
 * This Node process publishes orders with the default codec (msgpack maps keyed by property
 * name); a Rust program that uses the `shmring` crate alone
 * (crates/shmring/examples/node_to_rust.rs) subscribes, decodes each into a struct with
 * `rmp_serde::from_slice`, checks it field by field and reports.
 *
 * The npm script builds the Rust example first; `--bin <path>` runs another build of it.
 */
import { open } from 'shmring';
import { fmt, options, publishAll, Run } from '../lib/processes.mjs';
import { order, rustBinary } from './messages.mjs';

const opts = options({ count: 100_000 }, { bin: { type: 'string' } });
const run = new Run();
const name = run.channel('node2rust', 'orders');
const orders = open(name, { create: true });

console.log(`node-to-rust: Node publishes ${fmt(opts.count)} orders, a Rust process subscribes`);
try {
  const rust = run.start(rustBinary('node_to_rust', opts.bin), [name, String(opts.count)], {
    label: 'node_to_rust',
    readyLine: 'ready',
  });
  await rust.ready; // it has joined: everything published from now on reaches it
  let qty = 0;
  let batch = [];
  for (let id = 0; id < opts.count; id++) {
    const o = order(id);
    qty += o.qty;
    batch.push(o);
    if (batch.length === 1024) {
      await publishAll(orders, batch);
      batch = [];
    }
  }
  await publishAll(orders, batch);
  const r = await rust.result;
  const ok = r.received === opts.count && r.bad === 0 && r.outOfOrder === 0 && r.qty === qty;
  console.log(`node published ${fmt(opts.count)} orders, total quantity ${fmt(qty)}`);
  console.log(
    `rust received   ${fmt(r.received)} in ${r.seconds.toFixed(3)} s ` +
      `(${fmt(r.received / r.seconds)} msg/s): ${r.bad} not as sent, ` +
      `${r.outOfOrder} out of order, total quantity ${fmt(r.qty)}`,
  );
  if (!ok) process.exitCode = 1;
  if (opts.json) {
    console.log(
      JSON.stringify({
        example: 'node-to-rust',
        ok,
        published: opts.count,
        received: r.received,
        bad: r.bad,
        outOfOrder: r.outOfOrder,
        qtyMatches: r.qty === qty,
      }),
    );
  }
} catch (e) {
  console.error(`node-to-rust: ${e.message}`);
  process.exitCode = 1;
} finally {
  orders.close();
  run.cleanup();
}
