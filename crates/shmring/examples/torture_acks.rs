//! Torture of at-least-once queues: three consumer processes SIGKILLed at random instants and
//! at named points of the take / acknowledge / take-over protocol, restarted, in both sync
//! modes; then an audit of what every consumer logged.
//!
//! `cargo run --release --features test-hooks --example torture_acks -- [--kills N]
//! [--seed S] [--messages M]` (`npm run torture:acks`; `npm test` runs a short form).
//!
//! Each round: one producer process publishes `M` numbered messages (blocking when the ring
//! is full, which the unacknowledged records hold) into a small at-least-once queue; three
//! consumers drain batches of up to 16 with auto-ack off, log each message they handle
//! (`D <seq> <deliveries>`, one `write(2)` with `O_APPEND`), work on it for 50 µs and then
//! acknowledge it, but give
//! one in 40 back (`N <seq> <deliveries>` then `nack`). The parent kills a consumer (at a
//! random instant, or stopped at a named point: `take_published`, `take_acquired`,
//! `after_take`, `mid_read`, `mid_ack`, `adopted`) and starts a new one, until the round's
//! kills are done; then it waits until every message was handled.
//!
//! The audit: every message handled at least once (**0 lost**); the deliveries of one message
//! all carry different delivery counts, so a message came twice only as a *redelivery* (its
//! holder died or gave it back), never from two takes; duplicates are counted and reported.
//! The last line: `acks torture: <kills> kills (<random> random, <points> at points), <rounds>
//! rounds x <M> messages, 0 lost, <dups> delivered again (<after nack> after a nack, <after
//! death> after a death), 0 wrong`. Exit status 1 on any loss or wrong delivery.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmring::{Channel, Delivery, Kind, OpenOptions, SyncMode};

const POINTS: &[&str] = &[
    "take_published",
    "take_acquired",
    "after_take",
    "mid_read",
    "mid_ack",
    "adopted",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A child killed and reaped when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("T")
}

fn producer(name: &str, count: u64) {
    let ch = Channel::open(name, &OpenOptions::default()).expect("open");
    let mut p = ch.producer().expect("producer");
    for i in 0..count {
        p.publish_timeout(&i.to_le_bytes(), Some(Duration::from_secs(120)))
            .expect("publish");
    }
}

fn consumer(name: &str, log: &str, seed: u64) {
    let ch = Channel::open(name, &OpenOptions::default()).expect("open");
    let mut c = ch.subscribe().expect("consumer");
    c.set_auto_commit(false);
    c.set_record_frames(true);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; 1 << 12];
    loop {
        let d = c.drain_into(&mut buf, 16).expect("drain");
        if d.count == 0 {
            c.wait(Some(Duration::from_millis(50)));
            continue;
        }
        let mut at = 0;
        for _ in 0..d.count {
            let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let deliveries = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap());
            let pos = u64::from_le_bytes(buf[at + 8..at + 16].try_into().unwrap());
            let seq = u64::from_le_bytes(buf[at + 16..at + 24].try_into().unwrap());
            at += 16 + len;
            if rng.below(40) == 0 {
                file.write_all(format!("N {seq} {deliveries}\n").as_bytes())
                    .expect("log");
                c.nack(pos);
                break; // the rest of the batch went back with it
            }
            file.write_all(format!("D {seq} {deliveries}\n").as_bytes())
                .expect("log");
            // The work: long enough that a kill usually finds deliveries held.
            std::thread::sleep(Duration::from_micros(50));
            c.ack(pos);
        }
    }
}

#[derive(Default)]
struct Audit {
    kills: u64,
    random: u64,
    points: u64,
    rounds: u64,
    again_nack: u64,
    again_death: u64,
    lost: u64,
    wrong: u64,
}

/// Reads the round's logs: per message, its (kind, deliveries) entries.
fn read_logs(logs: &[String]) -> HashMap<u64, Vec<(char, u32)>> {
    let mut by_seq: HashMap<u64, Vec<(char, u32)>> = HashMap::new();
    for l in logs {
        let text = std::fs::read_to_string(l).unwrap_or_default();
        for line in text.lines() {
            let mut it = line.split(' ');
            let (Some(k), Some(s), Some(d)) = (it.next(), it.next(), it.next()) else {
                continue; // a line cut by the kill cannot happen (one write), but be safe
            };
            let (Ok(s), Ok(d)) = (s.parse(), d.parse()) else {
                continue;
            };
            by_seq
                .entry(s)
                .or_default()
                .push((k.chars().next().unwrap(), d));
        }
    }
    by_seq
}

fn handled_all(logs: &[String], count: u64) -> bool {
    let by = read_logs(logs);
    (0..count).all(|s| by.get(&s).is_some_and(|v| v.iter().any(|e| e.0 == 'D')))
}

#[allow(clippy::too_many_arguments)]
fn round(
    exe: &str,
    sync: SyncMode,
    kills: u64,
    count: u64,
    rng: &mut Rng,
    dir: &str,
    r: u64,
    audit: &mut Audit,
) -> Result<(), String> {
    let name = format!("torture-acks-{}-{r}", std::process::id());
    let opts = OpenOptions {
        kind: Some(Kind::Queue),
        delivery: Some(Delivery::AtLeastOnce),
        sync: Some(sync),
        capacity: Some(8192),
        ..OpenOptions::create()
    };
    let _ch = Channel::open(&name, &opts).map_err(|e| e.to_string())?;
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = shmring::unlink(&self.0);
        }
    }
    let _u = Unlink(name.clone());
    let spawn = |args: &[String], hook: Option<String>| -> Proc {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        match hook {
            Some(h) => cmd.env("SHMRING_HOOK", h),
            None => cmd.env_remove("SHMRING_HOOK"),
        };
        Proc(cmd.spawn().expect("spawn"))
    };
    let mut logs = Vec::new();
    let new_consumer = |rng: &mut Rng, hook: Option<String>, logs: &mut Vec<String>| {
        let log = format!("{dir}/r{r}-c{}.log", logs.len());
        logs.push(log.clone());
        let seed = rng.next().to_string();
        spawn(&["consumer".into(), name.clone(), log, seed], hook)
    };
    let mut prod = spawn(&["producer".into(), name.clone(), count.to_string()], None);
    let mut consumers: Vec<Proc> = (0..3).map(|_| new_consumer(rng, None, &mut logs)).collect();
    for _ in 0..kills {
        let k = rng.below(3) as usize;
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
            audit.random += 1;
        } else {
            // Replace consumer k by one that stops at a point, then kill it there.
            let point = POINTS[rng.below(POINTS.len() as u64) as usize];
            let nth = 1 + rng.below(6);
            // The consumer replaced is killed wherever it was: a random-instant kill too.
            consumers[k] = new_consumer(rng, Some(format!("{point}:{nth}")), &mut logs);
            audit.random += 1;
            audit.kills += 1;
            let pid = consumers[k].0.id();
            let deadline = Instant::now() + Duration::from_secs(2);
            while !is_stopped(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(500));
            }
            if is_stopped(pid) {
                audit.points += 1;
            } else {
                audit.random += 1; // the point was not reached in time: killed where it was
            }
        }
        consumers[k] = new_consumer(rng, None, &mut logs); // drops (kills) the old one
        audit.kills += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !handled_all(&logs, count) {
        if Instant::now() > deadline {
            let by = read_logs(&logs);
            let missing: Vec<u64> = (0..count)
                .filter(|s| !by.get(s).is_some_and(|v| v.iter().any(|e| e.0 == 'D')))
                .take(10)
                .collect();
            return Err(format!(
                "{sync:?} round {r}: wedged or lost, messages never handled: {missing:?}..."
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = prod.0.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{sync:?} round {r}: the producer failed: {status}"));
    }
    drop(consumers);
    let by = read_logs(&logs);
    for s in 0..count {
        let Some(v) = by.get(&s) else {
            audit.lost += 1;
            continue;
        };
        if !v.iter().any(|e| e.0 == 'D') {
            audit.lost += 1;
        }
        let mut counts: Vec<u32> = v.iter().map(|e| e.1).collect();
        counts.sort();
        if counts.windows(2).any(|w| w[0] == w[1]) {
            audit.wrong += 1;
            eprintln!("{sync:?} round {r}: message {s} taken twice: {v:?}");
        }
        // Each entry after the first came again: after a nack if the one before was one.
        let mut sorted = v.clone();
        sorted.sort_by_key(|e| e.1);
        for w in sorted.windows(2) {
            if w[0].0 == 'N' {
                audit.again_nack += 1;
            } else {
                audit.again_death += 1;
            }
        }
    }
    audit.rounds += 1;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("producer") => return producer(&args[2], args[3].parse().unwrap()),
        Some("consumer") => return consumer(&args[2], &args[3], args[4].parse().unwrap()),
        _ => {}
    }
    let mut kills = 100u64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut count = 20_000u64;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--kills" => kills = val(),
            "--seed" => seed = val(),
            "--messages" => count = val(),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: torture_acks [--kills N] [--seed S] \
                     [--messages M]"
                );
                std::process::exit(2);
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("shmring-torture-acks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir_s = dir.to_string_lossy().into_owned();
    let exe = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut rng = Rng(seed | 1);
    let mut audit = Audit::default();
    let started = Instant::now();
    let per_round = 10u64;
    let mut result = Ok(());
    let mut r = 0;
    while audit.kills < kills && result.is_ok() {
        let sync = if r % 2 == 0 {
            SyncMode::LockFree
        } else {
            SyncMode::Semaphore
        };
        let n = per_round.min(kills - audit.kills);
        result = round(&exe, sync, n, count, &mut rng, &dir_s, r, &mut audit);
        r += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = &result {
        eprintln!("FAILED: {e}");
    }
    println!(
        "acks torture: {} kills ({} random, {} at points), {} rounds x {count} messages, {} lost, \
         {} delivered again ({} after a nack, {} after a death), {} wrong, {:.1} s",
        audit.kills,
        audit.random,
        audit.points,
        audit.rounds,
        audit.lost,
        audit.again_nack + audit.again_death,
        audit.again_nack,
        audit.again_death,
        audit.wrong,
        started.elapsed().as_secs_f64()
    );
    if result.is_err() || audit.lost > 0 || audit.wrong > 0 {
        std::process::exit(1);
    }
}
