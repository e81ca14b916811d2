//! A publisher and a subscriber in one binary. Start the subscriber first (a topic delivers
//! only what is published after a subscriber joined), then the publisher, in two terminals:
//!
//! ```text
//! cargo run --release --example pubsub -- sub demo 10000000
//! cargo run --release --example pubsub -- pub demo 10000000
//! ```
//!
//! Each side prints how many messages it moved and at what rate. The subscriber removes the
//! channel when it is done.

use std::time::{Duration, Instant};

use shmring::{Channel, OpenOptions};

const MESSAGE_LEN: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, name, count) = match args.as_slice() {
        [role, name, count] => (role.as_str(), name.as_str(), count.parse::<u64>()?),
        _ => return Err("usage: pubsub (pub|sub) <channel> <count>".into()),
    };
    if role != "pub" && role != "sub" {
        return Err(format!("unknown role {role:?}: use pub or sub").into());
    }
    let ch = Channel::open(name, &OpenOptions::create())?;
    let start = Instant::now();
    match role {
        "pub" => {
            let mut producer = ch.producer()?;
            let mut msg = [0u8; MESSAGE_LEN];
            for i in 0..count {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                producer.publish_timeout(&msg, None)?;
            }
        }
        _ => {
            let mut sub = ch.subscribe()?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut received = 0u64;
            let mut started = None;
            while received < count {
                let batch = sub.drain_into(&mut buf, usize::MAX)?;
                if batch.count == 0 {
                    sub.wait(Some(Duration::from_millis(100)));
                    continue;
                }
                // Time from the first message, not from when we began to wait.
                started.get_or_insert_with(Instant::now);
                received += batch.count as u64;
            }
            let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
            report("received", received, elapsed);
            shmring::unlink(name)?;
            return Ok(());
        }
    }
    report("published", count, start.elapsed());
    Ok(())
}

fn report(what: &str, count: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{what} {count} messages of {MESSAGE_LEN} bytes in {:.3} s: {:.2} M msg/s",
        secs,
        count as f64 / secs / 1e6
    );
}
