//! Rust publishes, Node subscribes: the Rust half of `npm run example:rust-to-node`
//! (`examples/rust-node/rust-to-node.mjs` starts it after its Node subscriber joined).
//!
//! ```text
//! cargo run --release --example rust_to_node -- <channel> <count>
//! ```
//!
//! It uses `crates/shmring` alone (no Node, no napi) and encodes each message with
//! `rmp_serde::to_vec_named`: a msgpack *map* keyed by field name, which is what the Node
//! side's default codec (msgpackr with `useRecords: false`) decodes to a plain object
//! `{ seq, sym, px, qty, venues, last }`. (`rmp_serde::to_vec` would write arrays, which
//! decode to JS arrays.) Every field is a function of `seq`, so the subscriber can check each
//! message. Prints one JSON line when done.

use std::time::{Duration, Instant};

use serde::Serialize;
use shmring::{Channel, OpenOptions};

/// One trade, as the Node side sees it: `{ seq, sym, px, qty, venues, last }`.
#[derive(Serialize)]
struct Tick {
    seq: u64,
    sym: &'static str,
    px: f64,
    qty: u32,
    venues: Vec<&'static str>,
    /// True on the last message, so the subscriber knows the stream ended.
    last: bool,
}

const SYMBOLS: [&str; 4] = ["ACME", "INIT", "GLOBX", "UMBR"];
const VENUES: [&str; 3] = ["XNAS", "XNYS", "BATS"];

/// The message number `seq` of a run of `count` (the Node side computes the same).
fn tick(seq: u64, count: u64) -> Tick {
    Tick {
        seq,
        sym: SYMBOLS[(seq % 4) as usize],
        px: 100.0 + (seq % 400) as f64 * 0.25,
        qty: 100 * (1 + (seq % 7) as u32),
        venues: VENUES[..1 + (seq % 3) as usize].to_vec(),
        last: seq + 1 == count,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, count) = match args.as_slice() {
        [name, count] => (name.as_str(), count.parse::<u64>()?),
        _ => return Err("usage: rust_to_node <channel> <count>".into()),
    };
    // Attaches to the channel the Node subscriber created (or creates it), adopting its
    // settings: kind, sync mode, capacity and policy come from the segment's header.
    let ch = Channel::open(name, &OpenOptions::create())?;
    let mut producer = ch.producer()?;
    let start = Instant::now();
    let mut bytes = 0usize;
    for seq in 0..count {
        let msg = rmp_serde::to_vec_named(&tick(seq, count))?;
        bytes += msg.len();
        // Policy `block`: wait for the Node subscriber to make room; give up after 30 s.
        producer.publish_timeout(&msg, Some(Duration::from_secs(30)))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"role\":\"rust-publisher\",\"published\":{count},\"bytes\":{bytes},\"seconds\":{seconds:.6}}}"
    );
    Ok(())
}
