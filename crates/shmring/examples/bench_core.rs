//! shmring's side of `npm run bench:peers` (bench/core-peers.mjs): the same methods as the
//! peers it is set beside, on the Rust API. Prints one JSON line per run on stdout.
//!
//! - `pingpong <round_trips> <size> <cpu_a> <cpu_b>`: iceoryx2's publish-subscribe benchmark
//!   method. Two threads, each pinned to its own CPU, two channels (a2b, b2a); A publishes a
//!   `size`-byte message with `try_publish` and busy-polls `try_recv` on b2a for the answer, B
//!   busy-polls a2b and answers. Clock from the moment both are ready to both done;
//!   one-way latency = elapsed / (2 × round trips).
//! - `floor <round_trips> <cpu_a> <cpu_b>`: the machine's floor for that method: the same two
//!   pinned threads bouncing a counter through two cache lines (one atomic store and a
//!   spinning load a hop), no ring at all.
//! - `throughput <producers> <per_producer> <size>`: Aeron's `EmbeddedIpcThroughput` method.
//!   Threads of one process, unpinned: each producer `try_publish`es one message at a time,
//!   busy-retrying while the ring is full (yielding every 1024 failed tries, so that more
//!   spinning threads than CPUs still progress); the consumer busy-polls `drain_into` for at
//!   most 10 messages a call (Aeron's sample polls 10 fragments a call) and checks every
//!   message's size and each producer's numbering. Rate = messages / (first producer start →
//!   consumer's last message). `throughput 1 <n> <size> exclusive`: the one producer is an
//!   exclusive producer (`Channel::exclusive_producer`: a store, not a CAS, per claim).
//!   A last argument `backoff`: producer and consumer idle as Agrona's `BackoffIdleStrategy`
//!   with its defaults (spin, yield, then park), as Aeron's sample does with
//!   `-Daeron.sample.idleStrategy=org.agrona.concurrent.BackoffIdleStrategy`, for comparing
//!   the two with an idle strategy other than busy spinning.
//!
//! - `solo <count> <size>`: the producer's own cost per publish: one thread `try_publish`es
//!   `count` messages one at a time into a channel nobody reads (the ring never fills), so no
//!   cache line moves to another core. Rate = messages / elapsed. `SHMRING_MEMBARRIER=off`
//!   keeps the doorbell's SeqCst fence, for comparison. `solo <count> <size> exclusive`: an
//!   exclusive producer's (a store, not a CAS, per claim).
//!
//! `cargo run --release -p shmring --example bench_core -- pingpong 100000 64 0 1`

use std::sync::Barrier;
use std::time::Instant;

use shmring::{Channel, OpenOptions};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Unlinks the channels it names when dropped (also when a run fails).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = shmring::unlink(name);
        }
    }
}

/// Pins the calling thread to `cpu` (no-op where the machine has fewer CPUs).
fn pin(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpu >= cpus {
        return;
    }
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < available CPUs <= CPU_SETSIZE, within the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 names the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        eprintln!("warning: sched_setaffinity({cpu}) failed");
    }
}

fn open(name: &str) -> Res<Channel> {
    let opts = OpenOptions {
        capacity: Some(4 << 20),
        max_message_size: Some(4096),
        ..OpenOptions::create()
    };
    Ok(Channel::open(name, &opts)?)
}

fn pingpong(args: &[String]) -> Res<()> {
    let [n, size, cpu_a, cpu_b] = args else {
        return Err("pingpong <round_trips> <size> <cpu_a> <cpu_b>".into());
    };
    let (n, size, cpu_a, cpu_b): (u64, usize, usize, usize) =
        (n.parse()?, size.parse()?, cpu_a.parse()?, cpu_b.parse()?);
    let pid = std::process::id();
    let names = [
        format!("corepeers-{pid}-a2b"),
        format!("corepeers-{pid}-b2a"),
    ];
    let _cleanup = Cleanup(names.to_vec());
    let (a2b, b2a) = (open(&names[0])?, open(&names[1])?);
    let (ready, go) = (Barrier::new(3), Barrier::new(3));
    let payload = vec![7u8; size];
    let side = |tx_ch: &Channel, rx_ch: &Channel, cpu: usize, first: bool| -> Res<u64> {
        pin(cpu);
        let mut tx = tx_ch.producer()?;
        let mut rx = rx_ch.subscribe()?;
        let mut out = Vec::with_capacity(size);
        ready.wait();
        go.wait();
        let mut got = 0u64;
        for i in 0..n {
            if first || i > 0 {
                while !tx.try_publish(&payload)? {}
            }
            while !rx.try_recv(&mut out)? {}
            got += u64::from(out.len() == size);
        }
        if !first {
            while !tx.try_publish(&payload)? {}
        }
        Ok(got)
    };
    let (elapsed, got) = std::thread::scope(|s| -> Res<(u128, u64)> {
        let a = s.spawn(|| side(&a2b, &b2a, cpu_a, true));
        let b = s.spawn(|| side(&b2a, &a2b, cpu_b, false));
        ready.wait();
        let start = Instant::now();
        go.wait();
        let ga = a.join().map_err(|_| "participant A panicked")??;
        let gb = b.join().map_err(|_| "participant B panicked")??;
        Ok((start.elapsed().as_nanos(), ga + gb))
    })?;
    if got != 2 * n {
        return Err(format!("received {got} of {} messages of {size} bytes", 2 * n).into());
    }
    println!(
        "{{\"peer\":\"shmring\",\"figure\":\"pingpong\",\"round_trips\":{n},\"size\":{size},\"elapsed_ns\":{elapsed},\"one_way_ns\":{:.1}}}",
        elapsed as f64 / (2 * n) as f64
    );
    Ok(())
}

/// A word on a cache line of its own.
#[repr(align(128))]
struct Line(std::sync::atomic::AtomicU64);

fn floor(args: &[String]) -> Res<()> {
    use std::sync::atomic::Ordering::{Acquire, Release};
    let [n, cpu_a, cpu_b] = args else {
        return Err("floor <round_trips> <cpu_a> <cpu_b>".into());
    };
    let (n, cpu_a, cpu_b): (u64, usize, usize) = (n.parse()?, cpu_a.parse()?, cpu_b.parse()?);
    let (ping, pong) = (Line(0.into()), Line(0.into()));
    let (ready, go) = (Barrier::new(3), Barrier::new(3));
    let elapsed = std::thread::scope(|s| {
        s.spawn(|| {
            pin(cpu_a);
            ready.wait();
            go.wait();
            for i in 1..=n {
                // Release/Acquire: each hop hands the other thread the count, nothing more.
                ping.0.store(i, Release);
                while pong.0.load(Acquire) != i {
                    std::hint::spin_loop();
                }
            }
        });
        s.spawn(|| {
            pin(cpu_b);
            ready.wait();
            go.wait();
            for i in 1..=n {
                while ping.0.load(Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.0.store(i, Release);
            }
        });
        ready.wait();
        let start = Instant::now();
        go.wait();
        start
    })
    .elapsed()
    .as_nanos();
    println!(
        "{{\"peer\":\"floor\",\"figure\":\"pingpong\",\"round_trips\":{n},\"elapsed_ns\":{elapsed},\"one_way_ns\":{:.1}}}",
        elapsed as f64 / (2 * n) as f64
    );
    Ok(())
}

/// Agrona's `BackoffIdleStrategy` with its default settings (what Aeron's samples use with
/// `-Daeron.sample.idleStrategy=org.agrona.concurrent.BackoffIdleStrategy`): after work is
/// found, 10 idle calls spin (a PAUSE each), the next 5 yield, then each parks, 1 µs at first,
/// twice as long each time up to 1 ms.
struct Backoff {
    idles: u32,
    park_ns: u64,
}

impl Backoff {
    const MAX_SPINS: u32 = 10;
    const MAX_YIELDS: u32 = 5;
    const MIN_PARK_NS: u64 = 1_000;
    const MAX_PARK_NS: u64 = 1_000_000;

    fn new() -> Backoff {
        Backoff {
            idles: 0,
            park_ns: Backoff::MIN_PARK_NS,
        }
    }

    fn reset(&mut self) {
        self.idles = 0;
        self.park_ns = Backoff::MIN_PARK_NS;
    }

    fn idle(&mut self) {
        if self.idles < Backoff::MAX_SPINS {
            std::hint::spin_loop();
        } else if self.idles < Backoff::MAX_SPINS + Backoff::MAX_YIELDS {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_nanos(self.park_ns));
            self.park_ns = (self.park_ns * 2).min(Backoff::MAX_PARK_NS);
        }
        self.idles = self.idles.saturating_add(1);
    }
}

fn throughput(args: &[String]) -> Res<()> {
    let (args, backoff) = match args {
        [rest @ .., last] if last == "backoff" => (rest, true),
        _ => (args, false),
    };
    let (args, exclusive) = match args {
        [rest @ .., last] if last == "exclusive" => (rest, true),
        _ => (args, false),
    };
    let [producers, per, size] = args else {
        return Err("throughput <producers> <per_producer> <size> [exclusive] [backoff]".into());
    };
    if exclusive && producers != "1" {
        return Err("an exclusive producer is the only one: producers must be 1".into());
    }
    let (producers, per, size): (u64, u64, usize) =
        (producers.parse()?, per.parse()?, size.parse()?);
    if !(8..=4096).contains(&size) || !(1..=64).contains(&producers) {
        return Err("size must be 8..=4096 bytes, producers 1..=64".into());
    }
    let name = format!("corepeers-{}-tput", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let ch = open(&name)?;
    let mut sub = ch.subscribe()?;
    let go = Barrier::new(producers as usize + 1);
    let total = producers * per;
    let (start, end, received) = std::thread::scope(|s| -> Res<(Instant, Instant, u64)> {
        let mut pubs = Vec::new();
        for id in 0..producers {
            let (ch, go) = (&ch, &go);
            pubs.push(s.spawn(move || -> Res<Instant> {
                let mut tx = if exclusive {
                    ch.exclusive_producer()?
                } else {
                    ch.producer()?
                };
                let mut msg = vec![0u8; size];
                go.wait();
                let start = Instant::now();
                let mut idle = Backoff::new();
                for i in 0..per {
                    msg[..8].copy_from_slice(&(id << 48 | i).to_le_bytes());
                    let mut tries = 0u32;
                    while !tx.try_publish(&msg)? {
                        tries += 1;
                        if backoff {
                            idle.idle();
                        } else if tries.is_multiple_of(1024) {
                            std::thread::yield_now();
                        }
                    }
                    if backoff && tries > 0 {
                        idle.reset();
                    }
                }
                Ok(start)
            }));
        }
        go.wait();
        let mut buf = vec![0u8; 64 << 10];
        let mut next = vec![0u64; producers as usize];
        let mut received = 0u64;
        let mut idle = 0u32;
        let mut backoff_idle = Backoff::new();
        while received < total {
            let d = sub.drain_into(&mut buf, 10)?;
            let mut at = 0;
            for _ in 0..d.count {
                let len = u32::from_le_bytes(buf[at..at + 4].try_into()?) as usize;
                let word = u64::from_le_bytes(buf[at + 4..at + 12].try_into()?);
                let (id, seq) = ((word >> 48) as usize, word & ((1 << 48) - 1));
                if len != size || id >= next.len() || seq != next[id] {
                    return Err(format!("bad message: len {len} producer {id} seq {seq}").into());
                }
                next[id] += 1;
                at += 4 + len;
            }
            received += d.count as u64;
            idle = if d.count == 0 { idle + 1 } else { 0 };
            if backoff {
                if d.count == 0 {
                    backoff_idle.idle();
                } else {
                    backoff_idle.reset();
                }
            } else if idle % 1024 == 1023 {
                std::thread::yield_now();
            } else if idle > 0 {
                // As Aeron's busy-spin idle strategy (Thread.onSpinWait): a PAUSE per empty
                // poll, so the poll does not pull the line the producer is writing every
                // few cycles.
                std::hint::spin_loop();
            }
        }
        let end = Instant::now();
        let mut start: Option<Instant> = None;
        for p in pubs {
            let t = p.join().map_err(|_| "producer panicked")??;
            start = Some(start.map_or(t, |s| s.min(t)));
        }
        Ok((start.ok_or("no producer")?, end, received))
    })?;
    let secs = end.duration_since(start).as_secs_f64();
    println!(
        "{{\"peer\":\"shmring\",\"figure\":\"throughput\",\"exclusive\":{exclusive},\"backoff\":{backoff},\"producers\":{producers},\"size\":{size},\"messages\":{received},\"seconds\":{secs:.4},\"msg_per_sec\":{:.0}}}",
        received as f64 / secs
    );
    Ok(())
}

fn solo(args: &[String]) -> Res<()> {
    let (args, exclusive) = match args {
        [rest @ .., last] if last == "exclusive" => (rest, true),
        _ => (args, false),
    };
    let [n, size] = args else {
        return Err("solo <count> <size> [exclusive]".into());
    };
    let (n, size): (u64, usize) = (n.parse()?, size.parse()?);
    let name = format!("corepeers-{}-solo", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let ch = open(&name)?;
    let mut producer = if exclusive {
        ch.exclusive_producer()?
    } else {
        ch.producer()?
    };
    let mut payload = vec![7u8; size];
    let start = Instant::now();
    for i in 0..n {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        if !producer.try_publish(&payload)? {
            return Err("the ring filled with nobody reading".into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"case\":\"solo\",\"exclusive\":{exclusive},\"bytes\":{size},\"messages\":{n},\"msgPerSec\":{},\"nsPerMsg\":{}}}",
        n as f64 / secs,
        secs * 1e9 / n as f64
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("pingpong") => pingpong(&args[1..]),
        Some("floor") => floor(&args[1..]),
        Some("throughput") => throughput(&args[1..]),
        Some("solo") => solo(&args[1..]),
        _ => Err("bench_core pingpong … | floor … | throughput … | solo …".into()),
    };
    if let Err(e) = r {
        eprintln!("bench_core: {e}");
        std::process::exit(1);
    }
}
