/**
 * The messages of the Rust ↔ Node examples, computed from their sequence number exactly as
 * the Rust side computes them (crates/shmring/examples/rust_to_node.rs, node_to_rust.rs),
 * so each side can check every message it receives field by field.
 */
import { fileURLToPath } from 'node:url';

const SYMBOLS = ['ACME', 'INIT', 'GLOBX', 'UMBR'];
const VENUES = ['XNAS', 'XNYS', 'BATS'];

/** Trade `seq` of `count`, as rust_to_node.rs publishes it (struct `Tick`). */
export const tick = (seq, count) => ({
  seq,
  sym: SYMBOLS[seq % 4],
  px: 100 + (seq % 400) * 0.25,
  qty: 100 * (1 + (seq % 7)),
  venues: VENUES.slice(0, 1 + (seq % 3)),
  last: seq + 1 === count,
});

/** Order `id`, as node-to-rust.mjs publishes it and node_to_rust.rs expects it (`Order`). */
export const order = (id) => ({
  id,
  sym: SYMBOLS[id % 4],
  side: id % 2 === 0 ? 'buy' : 'sell',
  px: 50 + (id % 200) * 0.5,
  qty: 10 * (1 + (id % 5)),
  tags: Array.from({ length: id % 3 }, (_, i) => `t${i}`),
  note: id % 10 === 0 ? `order ${id}` : null,
});

/**
 * The Rust example binary `name`: `--bin <path>` if given, else the release build that the
 * npm script makes (`cargo build --release --example <name>`).
 */
export const rustBinary = (name, given) =>
  given ?? fileURLToPath(new URL(`../../target/release/examples/${name}`, import.meta.url));
