//! Node publishes, Rust subscribes: the Rust half of `npm run example:node-to-rust`
//! (`examples/rust-node/node-to-rust.mjs` starts it, waits for `ready`, then publishes).
//!
//! ```text
//! cargo run --release --example node_to_rust -- <channel> <count>
//! ```
//!
//! The Node side publishes plain objects with the default codec (msgpackr, `useRecords:
//! false`), which writes msgpack maps keyed by property name; `rmp_serde::from_slice` reads
//! such a map into a struct by field name, whatever the key order. `null` decodes to `None`,
//! and a whole number written as a msgpack integer still decodes into an `f64` field.
//! Every field is a function of `id`, so each message is checked. Prints `ready` once
//! subscribed and one JSON line when done; exits with status 1 if anything was wrong.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Deserialize;
use shmring::{Channel, OpenOptions};

/// One order, as Node publishes it: `{ id, sym, side, px, qty, tags, note }`.
#[derive(Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    sym: String,
    side: Side,
    px: f64,
    qty: u32,
    tags: Vec<String>,
    note: Option<String>,
}

/// `'buy'` or `'sell'` on the Node side.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Side {
    Buy,
    Sell,
}

const SYMBOLS: [&str; 4] = ["ACME", "INIT", "GLOBX", "UMBR"];

/// The order `id` must be (the Node side computes the same).
fn expected(id: u64) -> Order {
    Order {
        id,
        sym: SYMBOLS[(id % 4) as usize].to_owned(),
        side: if id.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        px: 50.0 + (id % 200) as f64 * 0.5,
        qty: 10 * (1 + (id % 5) as u32),
        tags: (0..id % 3).map(|i| format!("t{i}")).collect(),
        note: id.is_multiple_of(10).then(|| format!("order {id}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, count) = match args.as_slice() {
        [name, count] => (name.as_str(), count.parse::<u64>()?),
        _ => return Err("usage: node_to_rust <channel> <count>".into()),
    };
    let ch = Channel::open(name, &OpenOptions::create())?;
    // Join before saying so: a topic delivers what is published after a subscriber joined.
    let mut sub = ch.subscribe()?;
    println!("ready");
    std::io::stdout().flush()?;

    let mut buf = Vec::new();
    let (mut received, mut bad, mut out_of_order, mut qty) = (0u64, 0u64, 0u64, 0u64);
    let mut next_id = 0u64;
    let mut first: Option<Instant> = None;
    while received < count {
        // Waits on the channel's futex doorbell (after a short spin); 30 s without a
        // message means the publisher is gone.
        if !sub.recv_timeout(&mut buf, Some(Duration::from_secs(30)))? {
            eprintln!("node_to_rust: nothing for 30 s after {received} messages");
            break;
        }
        first.get_or_insert_with(Instant::now);
        received += 1;
        match rmp_serde::from_slice::<Order>(&buf) {
            Ok(order) => {
                if order.id != next_id {
                    out_of_order += 1;
                }
                next_id = order.id + 1;
                qty += u64::from(order.qty);
                let want = expected(order.id);
                if order != want {
                    if bad == 0 {
                        eprintln!("node_to_rust: got {order:?}, expected {want:?}");
                    }
                    bad += 1;
                }
            }
            Err(e) => {
                if bad == 0 {
                    eprintln!("node_to_rust: message {received} does not decode: {e}");
                }
                bad += 1;
            }
        }
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "{{\"role\":\"rust-subscriber\",\"received\":{received},\"bad\":{bad},\"outOfOrder\":{out_of_order},\"qty\":{qty},\"seconds\":{seconds:.6}}}"
    );
    if received != count || bad != 0 || out_of_order != 0 {
        std::process::exit(1);
    }
    Ok(())
}
