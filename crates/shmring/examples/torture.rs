//! The torture suite: random SIGKILLs of producers and readers, at random instants and at
//! every named test point, in both sync modes, for topics and queues; then an audit.
//!
//! `cargo run --release --features test-hooks --example torture -- [--kills N] [--seed S]`
//! (`npm run torture`; `npm test` runs a short form). Producers log each message id after
//! `publish` returned (so "committed" is known from outside); readers log each id they got.
//! About half the producers (chosen by the seeded RNG, kills at named points included)
//! publish with `try_publish_many` in batches of 1..=64 and log exactly the ids it reports
//! as gone in; half the rounds use a `max_message_size` large enough that one lock-free
//! claim (bounded by the largest record) covers dozens of records.
//!
//! Besides the kills there are pauses: a fresh producer stops itself at a named point, stays
//! stopped for a few recovery polls (readers wait at its claim and check its owner), then is
//! resumed and runs on. A reader that took the claim of a live producer (say one stopped in
//! the middle of a batch) would lose the messages it then commits: the audit counts them.
//! It prints kills, committed, delivered, lost, duplicated, wedges and the recovery times,
//! and exits non-zero if anything was lost, duplicated or wedged.
//!
//! Accounting: a topic has a witness subscriber that is never killed: every committed
//! message must reach it exactly once, in each producer's order. A queue's consumers are
//! killed too: every committed message must reach exactly one of them, except that a
//! consumer SIGKILLed at a random instant may take one message (it reads one at a time) and
//! die before logging it — such gaps are counted apart (`taken by killed consumers`, at most
//! one per such kill) and are not counted as lost.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmring::{Channel, Kind, OpenOptions, Policy, Role, SyncMode};

const PRODUCER_POINTS: &[&str] = &["after_claim", "mid_payload", "before_commit"];

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

fn payload(p: u32, s: u32) -> Vec<u8> {
    let len = 16 + (s as usize * 7 + p as usize * 13) % 180;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&p.to_le_bytes());
    v.extend_from_slice(&s.to_le_bytes());
    v.extend((8..len).map(|j| (j as u32 ^ s ^ p) as u8));
    v
}

fn parse(msg: &[u8]) -> (u32, u32) {
    let p = u32::from_le_bytes(msg[0..4].try_into().unwrap());
    let s = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    assert_eq!(msg, &payload(p, s)[..], "damaged message {p}/{s}");
    (p, s)
}

/// Child role: a producer that publishes `(id, 0..)` until the stop file appears; one by
/// one, or (`T_BATCH` nonzero: the seed of its batch sizes) with `try_publish_many`.
fn producer() {
    let ch = Channel::open(&env("T_CHANNEL"), &OpenOptions::default()).unwrap();
    let id: u32 = env("T_ID").parse().unwrap();
    let stop = env("T_STOP");
    let mut log = std::io::BufWriter::new(std::fs::File::create(env("T_LOG")).unwrap());
    let mut p = ch.producer().unwrap();
    let batch_seed: u64 = env("T_BATCH").parse().unwrap();
    if batch_seed != 0 {
        return batch_producer(&ch, &mut p, id, &stop, &mut log, Rng(batch_seed | 1));
    }
    for seq in 0.. {
        if seq % 64 == 0 && std::path::Path::new(&stop).exists() {
            break;
        }
        loop {
            match p.publish_timeout(&payload(id, seq), Some(Duration::from_secs(1))) {
                Ok(()) => break,
                Err(e) if e.code() == shmring::ErrorCode::Timeout => {
                    if std::path::Path::new(&stop).exists() {
                        log.flush().unwrap();
                        return;
                    }
                }
                Err(e) => panic!("producer {id}: {e}"),
            }
        }
        writeln!(log, "{id} {seq}").unwrap();
        if seq % 16 == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
}

/// The batch form of `producer`: batches of 1..=64 messages; each `try_publish_many` call
/// reports how many of them went in (committed when it returns): exactly those are logged,
/// the rest are offered again, after waiting for room if none went in.
fn batch_producer(
    ch: &Channel,
    p: &mut shmring::Producer,
    id: u32,
    stop: &str,
    log: &mut impl Write,
    mut rng: Rng,
) {
    let stopped = || std::path::Path::new(stop).exists();
    let mut seq = 0u32;
    while !stopped() {
        let n = 1 + rng.below(64) as u32;
        let batch: Vec<Vec<u8>> = (seq..seq + n).map(|s| payload(id, s)).collect();
        let mut done = 0usize;
        while done < batch.len() {
            let k = p
                .try_publish_many(batch[done..].iter().map(Vec::as_slice))
                .unwrap_or_else(|e| panic!("producer {id} (batches): {e}"));
            assert!(
                k <= batch.len() - done,
                "producer {id}: {k} reported in, of {} offered",
                batch.len() - done
            );
            for s in seq + done as u32..seq + (done + k) as u32 {
                writeln!(log, "{id} {s}").unwrap();
            }
            done += k;
            if k == 0 {
                // Full: wait for room for the first one, as `publish_timeout` does.
                log.flush().unwrap();
                while !ch.wait_for_space(batch[done].len(), Some(Duration::from_secs(1))) {
                    if stopped() {
                        log.flush().unwrap();
                        return;
                    }
                }
            }
        }
        log.flush().unwrap();
        seq += n;
    }
    log.flush().unwrap();
}

/// Child role: a reader that takes one message at a time and logs it at once, until the
/// stop file appears and nothing is left.
fn reader() {
    let ch = Channel::open(&env("T_CHANNEL"), &OpenOptions::default()).unwrap();
    let stop = env("T_STOP");
    let mut log = std::fs::File::create(env("T_LOG")).unwrap();
    let mut sub = ch.subscribe().unwrap();
    std::fs::write(format!("{}.ready", env("T_LOG")), "").unwrap();
    let mut buf = vec![0u8; 4096];
    let mut idle = 0;
    loop {
        let d = sub.drain_into(&mut buf, 1).unwrap();
        if d.count == 0 {
            if std::path::Path::new(&stop).exists() {
                idle += 1;
                if idle > 20 {
                    return;
                }
            }
            sub.wait(Some(Duration::from_millis(20)));
            continue;
        }
        idle = 0;
        let (p, s) = parse(&buf[4..d.bytes]);
        log.write_all(format!("{p} {s}\n").as_bytes()).unwrap();
    }
}

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

struct Proc {
    child: Child,
    role: &'static str,
    batch: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("T")
}

/// Waits (up to 20 s) until the process stopped itself at its hook point.
fn wait_stopped(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_stopped(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(300));
    }
    is_stopped(pid)
}

/// A named point where a producer can be stopped in this sync mode.
fn producer_point(rng: &mut Rng, sync: SyncMode) -> &'static str {
    let mut pts: Vec<&'static str> = PRODUCER_POINTS.to_vec();
    if sync == SyncMode::Semaphore {
        pts.push("holding_mutex");
    }
    pts[rng.below(pts.len() as u64) as usize]
}

#[derive(Default)]
struct Totals {
    kills: u64,
    point_kills: u64,
    /// Point kills whose victim was a batch producer.
    batch_point_kills: u64,
    producers: u64,
    batch_producers: u64,
    /// Committed messages logged by batch producers.
    batch_committed: u64,
    /// Rounds with a `max_message_size` that lets one claim cover dozens of records.
    big_claim_rounds: u64,
    /// Producers stopped at a named point and resumed (not killed); of them, batch ones.
    pauses: u64,
    batch_pauses: u64,
    committed: u64,
    delivered: u64,
    lost: u64,
    taken_by_killed: u64,
    duplicated: u64,
    disorder: u64,
    wedges: u64,
    recovery: Vec<Duration>,
}

struct Round<'a> {
    name: String,
    dir: std::path::PathBuf,
    stop: String,
    kind: Kind,
    next_log: u32,
    /// Role, log path, and whether a batch producer wrote it.
    logs: Vec<(&'static str, String, bool)>,
    producers: u64,
    batch_producers: u64,
    procs: Vec<Proc>,
    rng: &'a mut Rng,
}

impl Round<'_> {
    fn spawn(&mut self, role: &'static str, id: u32, hook: Option<String>) -> usize {
        let log = self
            .dir
            .join(format!("{role}.{}.log", self.next_log))
            .to_string_lossy()
            .into_owned();
        self.next_log += 1;
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("T_ROLE", role)
            .env("T_CHANNEL", &self.name)
            .env("T_ID", id.to_string())
            .env("T_STOP", &self.stop)
            .env("T_LOG", &log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(h) = hook {
            cmd.env("SHMRING_HOOK", h);
        }
        // Half the producers publish in batches; the seed of their batch sizes is drawn here.
        let batch = role == "producer" && self.rng.below(2) == 0;
        cmd.env(
            "T_BATCH",
            if batch { self.rng.next() | 1 } else { 0 }.to_string(),
        );
        if role == "producer" {
            self.producers += 1;
            self.batch_producers += batch as u64;
        }
        let child = cmd.spawn().expect("spawn child");
        if role == "reader" {
            let ready = format!("{log}.ready");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !std::path::Path::new(&ready).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.logs.push((role, log, batch));
        self.procs.push(Proc { child, role, batch });
        self.procs.len() - 1
    }
}

fn read_log(path: &str) -> Vec<(u32, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// Publishes a marker and waits until every reader position passed it: the time the channel
/// needs to get going again after a kill. `None`: it never did (a wedge).
fn recover_time(ch: &Channel, marker: &mut shmring::Producer, n: u32) -> Option<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    loop {
        match marker.publish_timeout(&payload(0, n), Some(Duration::from_millis(100))) {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => return None,
        }
    }
    let target = shmring::summarize(ch).tail;
    loop {
        let s = shmring::summarize(ch);
        // Topic: every live subscriber passed the marker; queue: the shared head did.
        let passed = if s.descriptor.kind == Kind::Queue {
            s.tail - s.bytes_used >= target
        } else {
            s.participants
                .iter()
                .filter(|p| p.alive && p.role == Some(Role::Subscriber))
                .all(|p| p.cursor >= target)
        };
        if passed {
            return Some(started.elapsed());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn main() {
    match std::env::var("T_ROLE").as_deref() {
        Ok("producer") => return producer(),
        Ok("reader") => return reader(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str, d: u64| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .map_or(d, |v| v.parse().expect("a number"))
    };
    let want_kills = arg("--kills", 1000);
    let seed = arg("--seed", 0x5eed_1234);
    let mut rng = Rng(seed | 1);
    let configs = [
        (SyncMode::LockFree, Kind::Topic),
        (SyncMode::Semaphore, Kind::Topic),
        (SyncMode::LockFree, Kind::Queue),
        (SyncMode::Semaphore, Kind::Queue),
    ];
    let mut t = Totals::default();
    let started = Instant::now();
    let mut round = 0usize;
    while t.kills < want_kills {
        let (sync, kind) = configs[round % configs.len()];
        let kills_this_round = (want_kills - t.kills).min(10);
        run_round(&mut t, &mut rng, round, sync, kind, kills_this_round);
        round += 1;
    }
    t.recovery.sort();
    let pct = |q: f64| {
        t.recovery
            .get(((t.recovery.len() as f64 * q) as usize).min(t.recovery.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "torture: {round} rounds over lockfree/semaphore x topic/queue, seed {seed:#x}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "kills:      {} ({} at named points, {} at random instants)",
        t.kills,
        t.point_kills,
        t.kills - t.point_kills
    );
    println!("committed:  {}", t.committed);
    println!(
        "batches:    {} of {} producers used try_publish_many (1..=64 a call), {} of the committed, {} of the point kills; {} of {round} rounds with claims of dozens of records",
        t.batch_producers, t.producers, t.batch_committed, t.batch_point_kills, t.big_claim_rounds
    );
    println!(
        "pauses:     {} producers stopped at named points and resumed ({} of them batch producers)",
        t.pauses, t.batch_pauses
    );
    println!("delivered:  {}", t.delivered);
    println!("lost:       {}", t.lost);
    println!("duplicated: {}", t.duplicated);
    println!("disorder:   {}", t.disorder);
    println!("wedges:     {}", t.wedges);
    println!(
        "taken by killed consumers (queue, at most one per random kill): {}",
        t.taken_by_killed
    );
    println!(
        "recovery:   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} kills measured)",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        t.recovery.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        t.recovery.len()
    );
    if t.lost + t.duplicated + t.disorder + t.wedges > 0 {
        std::process::exit(1);
    }
}

fn run_round(t: &mut Totals, rng: &mut Rng, round: usize, sync: SyncMode, kind: Kind, kills: u64) {
    let name = format!("torture-{}-{round}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    // A lock-free batch claim takes at most the bytes of the largest record: with 256 it
    // covers a few of our records (16..=195 bytes), with 4096 dozens of them.
    let big_claims = rng.below(2) == 0;
    t.big_claim_rounds += big_claims as u64;
    let ch = Channel::open(
        &name,
        &OpenOptions {
            kind: Some(kind),
            sync: Some(sync),
            policy: Some(Policy::Block),
            capacity: Some(1 << 15),
            max_message_size: Some(if big_claims { 4096 } else { 256 }),
            max_participants: Some(64),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    let stop = dir.join("stop").to_string_lossy().into_owned();
    let mut r = Round {
        name: name.clone(),
        dir: dir.clone(),
        stop: stop.clone(),
        kind,
        next_log: 0,
        logs: Vec::new(),
        procs: Vec::new(),
        producers: 0,
        batch_producers: 0,
        rng,
    };
    let witness = r.spawn("reader", 0, None);
    if r.kind == Kind::Queue {
        r.spawn("reader", 0, None);
    }
    let mut next_id = 1u32;
    for _ in 0..2 {
        r.spawn("producer", next_id, None);
        next_id += 1;
    }
    let mut marker = ch.producer().unwrap();
    let mut random_consumer_kills = 0u64;
    for k in 0..kills {
        if r.rng.below(4) == 0 {
            // A pause: a live claim left unfinished for a while must be waited for.
            let point = producer_point(r.rng, sync);
            let nth = 1 + r.rng.below(40);
            let id = next_id;
            next_id += 1;
            let i = r.spawn("producer", id, Some(format!("{point}:{nth}")));
            let pid = r.procs[i].child.id();
            if wait_stopped(pid) {
                let polls = 2 + r.rng.below(8) as u32;
                std::thread::sleep(shmring::RECOVERY_POLL * polls);
                // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our child,
                // not yet waited for.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
                t.pauses += 1;
                t.batch_pauses += r.procs[i].batch as u64;
            } else {
                eprintln!("round {round}: paused producer never reached {point}:{nth}");
                t.wedges += 1;
            }
        }
        let at_point = r.rng.below(2) == 0;
        let role = if r.rng.below(3) == 0 {
            "reader"
        } else {
            "producer"
        };
        let victim = if at_point {
            // A fresh participant told to stop itself at a named point; killed there.
            let point = if role == "reader" {
                "mid_read"
            } else {
                producer_point(r.rng, sync)
            };
            let nth = 1 + r.rng.below(40);
            let id = next_id;
            next_id += 1;
            let i = r.spawn(role, id, Some(format!("{point}:{nth}")));
            let pid = r.procs[i].child.id();
            if !wait_stopped(pid) {
                eprintln!("round {round}: {role} never reached {point}:{nth}");
                t.wedges += 1;
            }
            t.point_kills += 1;
            t.batch_point_kills += r.procs[i].batch as u64;
            i
        } else {
            // A running participant (never the witness), at a random instant.
            let killable = |r: &Round| -> Vec<usize> {
                (0..r.procs.len())
                    .filter(|&i| i != witness && r.procs[i].role == role)
                    .collect()
            };
            if killable(&r).is_empty() {
                let id = next_id;
                next_id += 1;
                r.spawn(role, id, None);
            }
            let k = killable(&r);
            let i = k[r.rng.below(k.len() as u64) as usize];
            std::thread::sleep(Duration::from_micros(r.rng.below(20_000)));
            if role == "reader" && r.kind == Kind::Queue {
                random_consumer_kills += 1;
            }
            i
        };
        assert!(victim != witness);
        let mut p = r.procs.remove(victim);
        let _ = p.child.kill();
        let _ = p.child.wait();
        drop(p);
        t.kills += 1;
        // Keep two producers and (queue) two consumers going.
        let producers = r.procs.iter().filter(|p| p.role == "producer").count();
        if producers < 2 {
            let id = next_id;
            next_id += 1;
            r.spawn("producer", id, None);
        }
        if r.kind == Kind::Queue && r.procs.iter().filter(|p| p.role == "reader").count() < 2 {
            r.spawn("reader", 0, None);
        }
        match recover_time(&ch, &mut marker, (round as u32) << 16 | k as u32) {
            Some(d) => t.recovery.push(d),
            None => {
                eprintln!("round {round} ({sync:?} {kind:?}): no progress 10 s after kill {k}");
                t.wedges += 1;
            }
        }
    }
    // Wind down: producers stop, readers drain what is left and stop.
    std::fs::write(&stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in &mut r.procs {
        loop {
            match p.child.try_wait().unwrap() {
                Some(_) => break,
                None if Instant::now() > deadline => {
                    eprintln!("round {round}: a {} did not finish", p.role);
                    t.wedges += 1;
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    drop(marker);
    // Audit.
    let mut committed: HashSet<(u32, u32)> = HashSet::new();
    for (role, log, batch) in &r.logs {
        if *role == "producer" {
            let ids = read_log(log);
            if *batch {
                t.batch_committed += ids.len() as u64;
            }
            committed.extend(ids);
        }
    }
    t.producers += r.producers;
    t.batch_producers += r.batch_producers;
    let markers = (0..kills).map(|k| (0u32, (round as u32) << 16 | k as u32));
    committed.extend(markers);
    let witness_log = &r.logs[witness].1;
    let delivered: Vec<(u32, u32)> = if kind == Kind::Topic {
        read_log(witness_log)
    } else {
        r.logs
            .iter()
            .filter(|(role, _, _)| *role == "reader")
            .flat_map(|(_, l, _)| read_log(l))
            .collect()
    };
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut last: HashMap<u32, u32> = HashMap::new();
    for &(p, s) in &delivered {
        if !seen.insert((p, s)) {
            t.duplicated += 1;
        }
        if kind == Kind::Topic && p != 0 {
            if let Some(&l) = last.get(&p)
                && s <= l
            {
                t.disorder += 1;
            }
            last.insert(p, s);
        }
    }
    let missing = committed.iter().filter(|m| !seen.contains(m)).count() as u64;
    let excused = if kind == Kind::Queue {
        missing.min(random_consumer_kills)
    } else {
        0
    };
    t.taken_by_killed += excused;
    t.lost += missing - excused;
    t.committed += committed.len() as u64;
    t.delivered += seen.len() as u64;
    drop(r);
    drop(ch);
    let _ = shmring::unlink(&name);
    let _ = std::fs::remove_dir_all(&dir);
}
