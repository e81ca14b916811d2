//! The torture suite: random SIGKILLs of producers and readers, at random instants and at
//! every named test point, in both sync modes, for topics and queues; then an audit.
//!
//! `cargo run --release --features test-hooks --example torture -- [--kills N] [--seed S]
//! [--only classic|fail|corecover|overwrite|multikill|named]`
//! (`npm run torture`; `npm test` runs a short form). Producers log each message id after
//! it was published (so "committed" is known from outside); readers log each id they got
//! and check that every message is whole (its bytes are a function of its id). The rounds
//! cycle through six flavours, each over the sync modes and kinds it applies to, and take
//! kills in proportion to `--kills`:
//!
//! - **classic** (policy `block`, callers that wait): about half the producers publish with
//!   `try_publish_many` in batches of 1..=64 and log exactly the ids it reports as gone in;
//!   half the rounds use a `max_message_size` large enough that one lock-free claim covers
//!   dozens of records. Besides the kills there are pauses: a fresh producer stops itself at
//!   a named point, stays stopped for a few recovery polls, then is resumed and runs on (a
//!   reader that took a live producer's claim would lose what it then commits).
//! - **fail / try-only**: a small ring under policy `fail` (a third of these rounds: `block`),
//!   where every producer, the parent's marker included, only ever calls `try_publish` (or,
//!   under `block`, `try_publish_many`) and retries: nobody waits, so nothing but the
//!   ring-full path itself can reclaim a dead subscriber's cursor or a dead producer's claim.
//! - **queue co-recovery** (lock-free queue; a semaphore-mode queue recovers under its mutex,
//!   one consumer at a time): a producer is stopped at `after_claim`/`mid_payload`/
//!   `before_commit` and killed there while two or three fresh consumers wait at its claim,
//!   the others stopped; each recoverer stops itself at `judged_dead`, so all of them judged
//!   the same claim dead. Then they are resumed at once, or one is held while the others take
//!   past the claim and producers reuse its bytes a lap or two later (then resumed, or killed).
//! - **overwrite** (topic): readers may lose messages (lapped), but each surviving reader's
//!   audit holds: every message whole, each producer's ids strictly increasing, `received()`
//!   equal to what it logged, and `lost()` at least the gaps it saw between two messages of
//!   one producer (and not more than those plus what it cannot have seen). Readers are stopped
//!   at `judged_dead` at a dead claim and resumed after being lapped twice; a slow reader is
//!   lapped all the time.
//! - **multi-kill**: several producers die at the same instant. Lock-free: the live producers
//!   are stopped, two to four fresh ones each stop at a named point of their first claim, one
//!   after another (adjacent claims), all in one process group, and `killpg` kills them at
//!   once; sometimes the readers are stopped too until the producers have filled the ring and
//!   swept the dead slots (then no slot says where one dead claim ends). Both modes: a process
//!   group of free-running producers killed at a random instant, or a multi-threaded producer
//!   process killed while one thread is at a named point (the others wherever they were).
//! - **named** (topic, policy `block`, both modes): besides the witness, named subscribers
//!   (`subscribe_named`): one created before the producers start, and in half the rounds a
//!   second one while they run. Each life logs a message before its next receive, which
//!   consumes it. Two episodes in three kill a named life: at a random instant; or that, and
//!   then a slow fresh life (2 ms with each message in hand) killed at a random instant; or
//!   that, and then a fresh life stopped at `mid_read` and killed there; or that, and then a fresh life
//!   that stops at `judged_dead` at the claim of a producer killed at a named point (the other
//!   readers and producers held so that it is the one to judge it) and is killed there. Every life killed
//!   is followed by a new one under the same name. Between lives the name must be listed (by
//!   `participants()`: away, or its dead owner not yet reclaimed), its cursor must not move,
//!   and the producers must be held at it (they fill the ring up to it, never past it). The
//!   other episodes are classic kills (with a plain killable reader beside the witness, as in
//!   the other topic flavours), whose random-instant reader kills may hit a named life too
//!   (a new life follows).
//! - **replaying readers** (in the named and overwrite rounds): readers that join with
//!   `Start::Earliest`, or `Start::Position` of one of the first 1..=200 messages a probe
//!   subscription from the earliest gets, while producers publish and wrap over them (under
//!   `overwrite` half of them slow, so lapped all the time); one
//!   as the round starts and one more after each episode with a chance of one in three.
//!   Random-instant kills spare them (as the witness).
//!
//! After each kill the parent publishes a marker and checks that every live reader gets past
//! it within 10 s (else a wedge); under `fail`/try-only and `overwrite` the marker too is
//! published with `try_publish` retried. The audit: a topic has a witness subscriber that is
//! never killed and must get every committed message exactly once in each producer's order;
//! every other topic reader that survived must get, from each producer, every committed
//! message after the first one it got from that producer. A queue's consumers are killed too:
//! every committed message must reach exactly one of them, except that a consumer SIGKILLed at
//! a random instant may take one message (it reads one at a time) and die before logging it —
//! such gaps are counted apart (`taken by killed consumers`, at most one per such kill) and are
//! not counted as lost. A named subscriber's lives' logs, taken in order, must hold every
//! committed message of each producer started after the name was created, every marker
//! published after it, and of the other producers every message after the first one it got;
//! each once and in each producer's order, except that a life's first message may be the
//! previous life's last one (the message in hand at the kill, not consumed yet: counted as
//! `seen again at a life's start`); its last life must finish. A replaying reader that
//! survived (it logs each message's position, and its stats add the tail it saw just after
//! joining): every message whole, each producer's messages in order, `received()` equal to
//! what it logged, and `lost()` exactly the gaps it saw: the sum, per producer slot (each
//! producer writes its slot to `<log>.slot`), of the gaps in the message numbers after the
//! first one it got from that slot (a producer's number is its seq; a marker's, its index
//! among the markers). A slot's new owner whose first message has a higher number than the
//! old owner's last is counted by the engine as a gap of the slot; that part is printed
//! apart. Under `block` nothing after the tail it joined at may be missing: from each
//! producer, every committed message after the first one it got at or after that tail. Any
//! error a child reports (an `Error` from the library, a damaged message, a failed exit)
//! counts as an error.
//!
//! The last line is a summary (`torture summary: kills ..., errors ..., uncounted overwrite
//! losses ..., <seconds> s, named lives ..., redelivered ..., away errors ..., replays ...,
//! replay miscounts ...`); the exit status is non-zero if anything was lost, duplicated, out
//! of order, wedged, miscounted or failed, or a named subscriber was wrong while away.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shmring::{
    Channel, ErrorCode, Kind, OpenOptions, Policy, Role, Start, SubscribeOptions, SyncMode,
};

const PRODUCER_POINTS: &[&str] = &["after_claim", "mid_payload", "before_commit"];

/// How long the parent waits for a live channel to get a marker through (else: a wedge).
const WEDGE_DEADLINE: Duration = Duration::from_secs(10);

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

fn env_flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| v == "1")
}

fn payload(p: u32, s: u32) -> Vec<u8> {
    let len = 16 + (s as usize * 7 + p as usize * 13) % 180;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&p.to_le_bytes());
    v.extend_from_slice(&s.to_le_bytes());
    v.extend((8..len).map(|j| (j as u32 ^ s ^ p) as u8));
    v
}

/// The id of a message, if it is whole (its bytes are exactly those of `payload(id)`).
fn parse(msg: &[u8]) -> Option<(u32, u32)> {
    let p = u32::from_le_bytes(msg.get(0..4)?.try_into().ok()?);
    let s = u32::from_le_bytes(msg.get(4..8)?.try_into().ok()?);
    (msg == &payload(p, s)[..]).then_some((p, s))
}

/// Child: records `msg` in `<T_LOG>.err`, where the parent's audit finds it.
fn record_error(msg: &str) {
    if let Ok(log) = std::env::var("T_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{log}.err"))
    {
        let _ = writeln!(f, "{msg}");
    }
    eprintln!("torture child {}: {msg}", std::process::id());
}

/// Child: records the error and exits with status 3.
fn child_fail(msg: &str) -> ! {
    record_error(msg);
    std::process::exit(3);
}

/// Child: a panic (an `unwrap` on a library error, say) is recorded as an error too.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        record_error(&format!("panic: {info}"));
        default(info);
    }));
}

/// Child role: a producer that publishes `(id, 0..)` until the stop file appears; one by
/// one, or (`T_BATCH` nonzero: the seed of its batch sizes) with `try_publish_many`.
/// `T_TRY=1`: it never waits (no `publish_timeout`, no `wait_for_space`), it retries the
/// `try_` call. `T_PACE=1`: it sleeps 1 ms every 4 messages (policy `overwrite` never makes
/// it wait). `T_THREADS=n`: n threads, thread t publishing as producer `id + t` and logging
/// to `<T_LOG>.<t>`.
fn producer() {
    install_panic_hook();
    let ch = Channel::open(&env("T_CHANNEL"), &OpenOptions::default())
        .unwrap_or_else(|e| child_fail(&format!("open: {e}")));
    let cfg = ProducerCfg {
        try_only: env_flag("T_TRY"),
        pace: env_flag("T_PACE"),
        stop: env("T_STOP"),
        write_slot: std::env::var("T_THREADS").map_or(true, |v| v == "1"),
        log_base: env("T_LOG"),
    };
    let id: u32 = env("T_ID").parse().unwrap();
    let log = env("T_LOG");
    let batch_seed: u64 = env("T_BATCH").parse().unwrap();
    let threads: u32 = std::env::var("T_THREADS").map_or(1, |v| v.parse().unwrap());
    if threads <= 1 {
        return run_producer(&ch, id, &log, batch_seed, &cfg);
    }
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ch, cfg, log) = (&ch, &cfg, format!("{log}.{t}"));
            let seed = if batch_seed == 0 {
                0
            } else {
                Rng(batch_seed ^ (u64::from(t) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)).next() | 1
            };
            s.spawn(move || run_producer(ch, id + t, &log, seed, cfg));
        }
    });
}

struct ProducerCfg {
    try_only: bool,
    pace: bool,
    stop: String,
    /// One thread: write our slot to `<T_LOG>.slot`.
    write_slot: bool,
    log_base: String,
}

impl ProducerCfg {
    fn stopped(&self) -> bool {
        Path::new(&self.stop).exists()
    }
}

fn run_producer(ch: &Channel, id: u32, log: &str, batch_seed: u64, cfg: &ProducerCfg) {
    let mut log = std::io::BufWriter::new(std::fs::File::create(log).unwrap());
    let mut p = ch
        .producer()
        .unwrap_or_else(|e| child_fail(&format!("producer {id}: {e}")));
    if cfg.write_slot {
        // For the replay audit, which counts skipped messages per slot as the engine does.
        let me = std::process::id();
        let slot = ch
            .participants()
            .iter()
            .find(|q| q.pid == me && q.role != Some(Role::Subscriber))
            .map_or(u32::MAX, |q| q.slot);
        std::fs::write(format!("{}.slot", cfg.log_base), format!("{id} {slot}")).unwrap();
    }
    if batch_seed != 0 {
        return batch_producer(ch, &mut p, id, cfg, &mut log, Rng(batch_seed | 1));
    }
    for seq in 0.. {
        if seq % 64 == 0 && cfg.stopped() {
            break;
        }
        let msg = payload(id, seq);
        loop {
            if cfg.try_only {
                match p.try_publish(&msg) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) if e.code() == ErrorCode::RingFull => {}
                    Err(e) => child_fail(&format!("producer {id} (try_publish): {e}")),
                }
                if cfg.stopped() {
                    log.flush().unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            match p.publish_timeout(&msg, Some(Duration::from_secs(1))) {
                Ok(()) => break,
                Err(e) if e.code() == ErrorCode::Timeout => {
                    if cfg.stopped() {
                        log.flush().unwrap();
                        return;
                    }
                }
                Err(e) => child_fail(&format!("producer {id}: {e}")),
            }
        }
        writeln!(log, "{id} {seq}").unwrap();
        if seq % 16 == 0 {
            log.flush().unwrap();
        }
        if cfg.pace && seq % 4 == 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    log.flush().unwrap();
}

/// The batch form of `producer`: batches of 1..=64 messages; each `try_publish_many` call
/// reports how many of them went in (committed when it returns): exactly those are logged,
/// the rest are offered again, after waiting for room if none went in (try-only: after a
/// short sleep). Not used under policy `fail`, where a batch that only partly went in is an
/// error that gives the count in its message only.
fn batch_producer(
    ch: &Channel,
    p: &mut shmring::Producer,
    id: u32,
    cfg: &ProducerCfg,
    log: &mut impl Write,
    mut rng: Rng,
) {
    let mut seq = 0u32;
    while !cfg.stopped() {
        let n = 1 + rng.below(64) as u32;
        let batch: Vec<Vec<u8>> = (seq..seq + n).map(|s| payload(id, s)).collect();
        let mut done = 0usize;
        while done < batch.len() {
            let k = p
                .try_publish_many(batch[done..].iter().map(Vec::as_slice))
                .unwrap_or_else(|e| child_fail(&format!("producer {id} (batches): {e}")));
            if k > batch.len() - done {
                child_fail(&format!(
                    "producer {id}: {k} reported in, of {} offered",
                    batch.len() - done
                ));
            }
            for s in seq + done as u32..seq + (done + k) as u32 {
                writeln!(log, "{id} {s}").unwrap();
            }
            done += k;
            if k == 0 {
                log.flush().unwrap();
                if cfg.try_only {
                    if cfg.stopped() {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                // Full: wait for room for the first one, as `publish_timeout` does.
                while !ch.wait_for_space(batch[done].len(), Some(Duration::from_secs(1))) {
                    if cfg.stopped() {
                        return;
                    }
                }
            }
        }
        log.flush().unwrap();
        seq += n;
        if cfg.pace {
            std::thread::sleep(Duration::from_millis(u64::from(n).div_ceil(4)));
        }
    }
    log.flush().unwrap();
}

/// Child role: a reader that takes one message at a time and logs it at once, until the
/// stop file appears and nothing is left; then writes `received() lost()` to
/// `<T_LOG>.stats`. `T_SLOW=1`: it sleeps 2 ms after each message. `T_JOIN`: how it joins:
/// `latest` (the default), `named:<name>` (`subscribe_named`: each message is logged before
/// the next receive, which consumes it), `earliest` or `probe:<k>` (a replay: `Start::Earliest`,
/// or `Start::Position` of the `k`th message a probe subscription got from the earliest one);
/// a replaying reader logs each message's position too (`<p> <s> <position>`) and appends the
/// tail it saw right after joining to its stats.
fn reader() {
    install_panic_hook();
    let ch = Channel::open(&env("T_CHANNEL"), &OpenOptions::default())
        .unwrap_or_else(|e| child_fail(&format!("open: {e}")));
    let stop = env("T_STOP");
    let log_path = env("T_LOG");
    let slow = env_flag("T_SLOW");
    let join = std::env::var("T_JOIN").unwrap_or_else(|_| "latest".into());
    let mut log = std::fs::File::create(&log_path).unwrap();
    let replay = join == "earliest" || join.starts_with("probe:");
    let mut sub = if let Some(name) = join.strip_prefix("named:") {
        ch.subscribe_named(name)
    } else if let Some(k) = join.strip_prefix("probe:") {
        let from = probe_position(&ch, k.parse().unwrap());
        ch.subscribe_with(&SubscribeOptions { from, name: None })
    } else if replay {
        ch.subscribe_with(&SubscribeOptions {
            from: Start::Earliest,
            name: None,
        })
    } else {
        ch.subscribe()
    }
    .unwrap_or_else(|e| child_fail(&format!("subscribe ({join}): {e}")));
    // Every message at or after this position is at or after the tail it joined at.
    let joined_by = shmring::summarize(&ch).tail;
    sub.set_record_frames(replay);
    // Bytes before the payload in a frame: `len u32`, and with record frames `flags u32 |
    // position u64` after it (see `Subscriber::set_record_frames`).
    let prefix = if replay { 16 } else { 4 };
    std::fs::write(format!("{log_path}.ready"), "").unwrap();
    let mut buf = vec![0u8; 8192];
    let mut idle = 0;
    loop {
        let d = sub
            .drain_into(&mut buf, 1)
            .unwrap_or_else(|e| child_fail(&format!("reader: {e} ({:?})", e.code())));
        if d.count == 0 {
            if Path::new(&stop).exists() {
                idle += 1;
                if idle > 20 {
                    break;
                }
            }
            sub.wait(Some(Duration::from_millis(20)));
            continue;
        }
        idle = 0;
        let msg = &buf[prefix..d.bytes];
        let Some((p, s)) = parse(msg) else {
            child_fail(&format!(
                "reader: damaged message of {} bytes, starting {:?}",
                msg.len(),
                &msg[..msg.len().min(16)]
            ))
        };
        let line = if replay {
            let pos = sub.last_position().unwrap_or(u64::MAX);
            format!("{p} {s} {pos}\n")
        } else {
            format!("{p} {s}\n")
        };
        log.write_all(line.as_bytes()).unwrap();
        if slow {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let extra = if replay {
        format!(" {joined_by}")
    } else {
        String::new()
    };
    std::fs::write(
        format!("{log_path}.stats"),
        format!("{} {}{extra}\n", sub.received(), sub.lost()),
    )
    .unwrap();
}

/// Child: the position of the `k`th message (or the last one there is) that a probe
/// subscription from the earliest message gets; `Start::Earliest` if it gets none.
fn probe_position(ch: &Channel, k: usize) -> Start {
    let mut probe = ch
        .subscribe_with(&SubscribeOptions {
            from: Start::Earliest,
            name: None,
        })
        .unwrap_or_else(|e| child_fail(&format!("probe subscribe: {e}")));
    let mut at = None;
    let mut buf = Vec::new();
    for _ in 0..k {
        match probe.try_recv(&mut buf) {
            Ok(true) => at = probe.last_position(),
            Ok(false) => break,
            Err(e) => child_fail(&format!("probe: {e}")),
        }
    }
    at.map_or(Start::Earliest, Start::Position)
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
    /// `T_LOG`: where its error file (`.err`) and reader stats (`.stats`) are.
    base: String,
    /// Its entries in `Round::logs`.
    logs: Vec<usize>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is a child of ours not yet
    // waited for (a `Proc` waits for it only when dropped).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("T")
}

/// Waits (up to `limit`) until the process is stopped (at its hook point, or by SIGSTOP).
fn wait_stopped_for(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !is_stopped(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(300));
    }
    is_stopped(pid)
}

/// Waits (up to 20 s) until the process stopped itself at its hook point.
fn wait_stopped(pid: u32) -> bool {
    wait_stopped_for(pid, Duration::from_secs(20))
}

/// Waits until `cond` holds, up to `limit`; returns whether it did.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A named point where a producer can be stopped in this sync mode.
fn producer_point(rng: &mut Rng, sync: SyncMode) -> &'static str {
    let mut pts: Vec<&'static str> = PRODUCER_POINTS.to_vec();
    if sync == SyncMode::Semaphore {
        pts.push("holding_mutex");
    }
    pts[rng.below(pts.len() as u64) as usize]
}

/// Kinds of round (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Classic,
    FailTry,
    CoRecover,
    Overwrite,
    MultiKill,
    Named,
}

impl Flavor {
    /// The name printed and taken by `--only`.
    fn label(self) -> &'static str {
        match self {
            Flavor::Classic => "classic",
            Flavor::FailTry => "fail",
            Flavor::CoRecover => "corecover",
            Flavor::Overwrite => "overwrite",
            Flavor::MultiKill => "multikill",
            Flavor::Named => "named",
        }
    }
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
    /// Rounds per flavour, and of the fail/try-only ones those under policy `fail`.
    rounds: HashMap<&'static str, u64>,
    fail_rounds: u64,
    /// Queue co-recoveries: episodes where two or more consumers stopped at `judged_dead` on
    /// the same dead claim; of them, resumed at once / one held over the reuse of the space
    /// and then resumed / held and killed; episodes not staged (fewer than two got there).
    corecover_staged: u64,
    corecover_at_once: u64,
    corecover_held: u64,
    corecover_held_killed: u64,
    corecover_unstaged: u64,
    /// Overwrite: readers stopped at `judged_dead` and resumed after being lapped (and those
    /// that never got there), messages received and lost (counted by `lost()`) by surviving
    /// readers, losses seen but not counted by `lost()` (a violation).
    lapped_recoverers: u64,
    lapped_unstaged: u64,
    ow_received: u64,
    ow_lost: u64,
    uncounted: u64,
    /// Multi-kills: events, processes killed by them, of them adjacent-claim events (and
    /// those with the readers held until the dead slots were swept), multi-threaded ones.
    multi_events: u64,
    multi_killed: u64,
    adjacent_events: u64,
    adjacent_swept: u64,
    /// Adjacent-claim events given up (the readers never caught up with the stopped
    /// producers; a random-instant multi-kill instead).
    unheld: u64,
    threaded_events: u64,
    /// Named subscribers: names, lives, lives killed (of them at `mid_read`/`judged_dead`,
    /// and fresh lives that never reached `judged_dead`), messages seen again at the start
    /// of a life (the one in hand at a kill), checks while away: the slot said away (not
    /// just dead), the producers were held at its cursor, something was wrong (an error).
    names: u64,
    named_lives: u64,
    named_kills: u64,
    named_point_kills: u64,
    named_judged_unstaged: u64,
    named_redelivered: u64,
    named_delivered: u64,
    named_away_seen: u64,
    named_held: u64,
    named_away_bad: u64,
    /// Replaying readers audited (that survived), their messages, their `lost()`, the
    /// readers whose `lost()` differs from the gaps they saw (an error), and the part of
    /// `lost()` that came from a producer slot's new owner counted as the old one's gap.
    replays: u64,
    replay_received: u64,
    replay_lost: u64,
    replay_miscounted: u64,
    replay_slot_reuse: u64,
    /// Replaying readers that got a message whose producer slot or marker number is unknown
    /// (then only `lost()` >= the gaps seen is checked).
    replay_inexact: u64,
    committed: u64,
    delivered: u64,
    lost: u64,
    taken_by_killed: u64,
    duplicated: u64,
    disorder: u64,
    wedges: u64,
    errors: u64,
    recovery: Vec<Duration>,
}

struct LogFile {
    role: &'static str,
    path: String,
    batch: bool,
    /// The process exited by itself, successfully (a reader: its log is complete).
    survived: bool,
    witness: bool,
    /// A life of the named subscriber `names[i]`.
    name: Option<usize>,
    /// A replaying reader (`Start::Earliest` or `Start::Position`).
    replay: bool,
}

/// How a reader joins (`T_JOIN`).
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Join {
    #[default]
    Latest,
    /// A life of the named subscriber `names[i]`.
    Named(usize),
    Earliest,
    /// `Start::Position` of the `k`th message from the earliest.
    Probe(u32),
}

/// A named subscriber of a round.
struct NameState {
    name: String,
    /// Markers published (`Round::markers.len()`) and the next producer id when the name was
    /// created: later markers and producers' messages must all reach it.
    markers_before: usize,
    next_id: u32,
}

#[derive(Default, Clone, Copy)]
struct SpawnOpts {
    /// Producer threads (0 or 1: one).
    threads: u32,
    /// Put the child in this process group (0: a new one, with its pid as id).
    pgroup: Option<i32>,
    /// A reader that sleeps after each message.
    slow: bool,
    /// Never a batch producer.
    no_batch: bool,
    /// A reader: how it joins.
    join: Join,
}

struct Round<'a> {
    name: String,
    dir: std::path::PathBuf,
    stop: String,
    kind: Kind,
    sync: SyncMode,
    /// Producers (and the marker) never wait: they retry `try_` calls.
    try_only: bool,
    /// Producers may publish in batches (not under policy `fail`).
    batches: bool,
    /// Producers pace themselves (policy `overwrite`).
    pace: bool,
    next_log: u32,
    next_id: u32,
    logs: Vec<LogFile>,
    producers: u64,
    batch_producers: u64,
    procs: Vec<Proc>,
    /// Processes gone: `T_LOG`, and how they exited (`None`: killed by us).
    ended: Vec<(String, Option<ExitStatus>)>,
    /// Markers published (their seq).
    markers: Vec<u32>,
    /// Consumers SIGKILLed at random instants (each may take one message unlogged).
    random_consumer_kills: u64,
    /// Named subscribers (their lives are readers with `LogFile::name`).
    names: Vec<NameState>,
    /// The participant slot of the parent's marker producer.
    marker_slot: u32,
    rng: &'a mut Rng,
}

impl Round<'_> {
    /// Spawns `n` readers that stop at their first `judged_dead`; returns their pids.
    fn spawn_recoverers(&mut self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                let i = self.spawn("reader", Some("judged_dead:1".into()), SpawnOpts::default());
                self.procs[i].pid()
            })
            .collect()
    }

    /// Spawns a producer that stops at a random named point of its claim, on its `nth` pass
    /// (`nth` random in `1..=max_nth`); returns its index in `procs`, its pid, the point and
    /// `nth`.
    fn spawn_stopping_producer(&mut self, max_nth: u64) -> (usize, u32, &'static str, u64) {
        let point = PRODUCER_POINTS[self.rng.below(3) as usize];
        let nth = 1 + self.rng.below(max_nth);
        let i = self.spawn(
            "producer",
            Some(format!("{point}:{nth}")),
            SpawnOpts::default(),
        );
        (i, self.procs[i].pid(), point, nth)
    }

    fn spawn(&mut self, role: &'static str, hook: Option<String>, o: SpawnOpts) -> usize {
        let base = self
            .dir
            .join(format!("{role}.{}.log", self.next_log))
            .to_string_lossy()
            .into_owned();
        self.next_log += 1;
        let threads = o.threads.max(1);
        let id = if role == "producer" { self.next_id } else { 0 };
        if role == "producer" {
            self.next_id += threads;
        }
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("T_ROLE", role)
            .env("T_CHANNEL", &self.name)
            .env("T_ID", id.to_string())
            .env("T_STOP", &self.stop)
            .env("T_LOG", &base)
            .env("T_TRY", if self.try_only { "1" } else { "0" })
            .env("T_PACE", if self.pace { "1" } else { "0" })
            .env("T_SLOW", if o.slow { "1" } else { "0" })
            .env("T_THREADS", threads.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(h) = hook {
            cmd.env("SHMRING_HOOK", h);
        }
        let join = match o.join {
            Join::Latest => "latest".to_owned(),
            Join::Named(i) => format!("named:{}", self.names[i].name),
            Join::Earliest => "earliest".to_owned(),
            Join::Probe(k) => format!("probe:{k}"),
        };
        cmd.env("T_JOIN", join);
        if let Some(g) = o.pgroup {
            cmd.process_group(g);
        }
        // Half the producers publish in batches; the seed of their batch sizes is drawn here.
        let batch = role == "producer" && self.batches && !o.no_batch && self.rng.below(2) == 0;
        cmd.env(
            "T_BATCH",
            if batch { self.rng.next() | 1 } else { 0 }.to_string(),
        );
        if role == "producer" {
            self.producers += u64::from(threads);
            self.batch_producers += u64::from(threads) * batch as u64;
        }
        let child = cmd.spawn().expect("spawn child");
        if role == "reader" {
            let ready = format!("{base}.ready");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !Path::new(&ready).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let paths: Vec<String> = if role == "producer" && threads > 1 {
            (0..threads).map(|t| format!("{base}.{t}")).collect()
        } else {
            vec![base.clone()]
        };
        let mut logs = Vec::new();
        for path in paths {
            logs.push(self.logs.len());
            self.logs.push(LogFile {
                role,
                path,
                batch,
                survived: false,
                witness: false,
                name: match o.join {
                    Join::Named(i) => Some(i),
                    _ => None,
                },
                replay: matches!(o.join, Join::Earliest | Join::Probe(_)),
            });
        }
        self.procs.push(Proc {
            child,
            role,
            batch,
            base,
            logs,
        });
        self.procs.len() - 1
    }

    fn spawn_producer(&mut self) -> usize {
        self.spawn("producer", None, SpawnOpts::default())
    }

    fn spawn_reader(&mut self) -> usize {
        self.spawn("reader", None, SpawnOpts::default())
    }

    fn index_of(&self, pid: u32) -> Option<usize> {
        self.procs.iter().position(|p| p.pid() == pid)
    }

    /// SIGKILLs the process with this pid (if it is still ours) and reaps it.
    fn kill(&mut self, pid: u32) {
        if let Some(i) = self.index_of(pid) {
            let mut p = self.procs.remove(i);
            let _ = p.child.kill();
            let _ = p.child.wait();
            self.ended.push((p.base.clone(), None));
        }
    }

    /// Reaps the processes of a process group killed with `killpg`.
    fn reap(&mut self, pids: &[u32]) {
        for &pid in pids {
            self.kill(pid);
        }
    }

    fn pids(&self, role: &str, except: &[u32]) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|p| p.role == role && !except.contains(&p.pid()))
            .map(Proc::pid)
            .collect()
    }

    /// Creates a named subscriber (its first life); returns its index in `names`.
    fn add_name(&mut self) -> usize {
        let i = self.names.len();
        self.names.push(NameState {
            name: format!("n{i}"),
            markers_before: self.markers.len(),
            next_id: self.next_id,
        });
        self.spawn_life(i, None, false);
        i
    }

    /// Spawns a life of the named subscriber `i` (`slow`: it sleeps 2 ms with each message in
    /// hand, logged and not consumed yet); returns its pid.
    fn spawn_life(&mut self, i: usize, hook: Option<String>, slow: bool) -> u32 {
        let k = self.spawn(
            "reader",
            hook,
            SpawnOpts {
                join: Join::Named(i),
                slow,
                ..SpawnOpts::default()
            },
        );
        self.procs[k].pid()
    }

    /// The pid of the live life of named subscriber `i`, if any.
    fn life_pid(&self, i: usize) -> Option<u32> {
        self.procs
            .iter()
            .find(|p| p.logs.iter().any(|&l| self.logs[l].name == Some(i)))
            .map(Proc::pid)
    }

    /// Spawns a replaying reader: from the earliest message, or (one in three) from the
    /// position of one of the first 1..=200 messages there; under `overwrite` half of them
    /// slow (lapped all the time).
    fn spawn_replayer(&mut self) {
        let slow = self.pace && self.rng.below(2) == 0;
        let join = if self.rng.below(3) == 0 {
            Join::Probe(1 + self.rng.below(200) as u32)
        } else {
            Join::Earliest
        };
        self.spawn(
            "reader",
            None,
            SpawnOpts {
                join,
                slow,
                ..SpawnOpts::default()
            },
        );
    }

    /// Readers a random-instant kill does not pick: the witness and the replaying readers
    /// (audited only if they survive).
    fn spared(&self) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|p| {
                p.logs
                    .iter()
                    .any(|&l| self.logs[l].witness || self.logs[l].replay)
            })
            .map(Proc::pid)
            .collect()
    }

    fn count(&self, role: &str) -> usize {
        self.procs.iter().filter(|p| p.role == role).count()
    }
}

/// SIGSTOPs the processes and waits until they are stopped.
fn stop_all(pids: &[u32]) {
    for &pid in pids {
        signal(pid, libc::SIGSTOP);
    }
    for &pid in pids {
        wait_stopped_for(pid, Duration::from_secs(5));
    }
}

fn resume_all(pids: &[u32]) {
    for &pid in pids {
        signal(pid, libc::SIGCONT);
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

/// Whether every live reader got everything published so far.
fn caught_up(ch: &Channel) -> bool {
    let s = shmring::summarize(ch);
    if s.descriptor.kind == Kind::Queue {
        return s.bytes_used == 0;
    }
    s.participants
        .iter()
        .filter(|p| p.alive && p.role == Some(Role::Subscriber))
        .all(|p| p.cursor >= s.tail)
}

/// Publishes a marker and waits until every reader position passed it: the time the channel
/// needs to get going again after a kill. `Ok(None)`: it never did (a wedge). `try_only`:
/// the marker is published with `try_publish` alone, retried.
fn recover_time(
    ch: &Channel,
    marker: &mut shmring::Producer,
    n: u32,
    try_only: bool,
) -> Result<Option<Duration>, String> {
    let started = Instant::now();
    let deadline = started + WEDGE_DEADLINE;
    let msg = payload(0, n);
    loop {
        if try_only {
            match marker.try_publish(&msg) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if e.code() == ErrorCode::RingFull => {}
                Err(e) => return Err(format!("marker (try_publish): {e}")),
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        match marker.publish_timeout(&msg, Some(Duration::from_millis(100))) {
            Ok(()) => break,
            Err(e) if e.code() != ErrorCode::Timeout => return Err(format!("marker: {e}")),
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => return Ok(None),
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
            return Ok(Some(started.elapsed()));
        }
        if Instant::now() > deadline {
            return Ok(None);
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
    // `--only <flavour>`: run the rounds of one flavour (to reproduce a failure).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut rng = Rng(seed | 1);
    use Flavor::*;
    use Kind::*;
    use SyncMode::*;
    // One cycle: every flavour over the modes and kinds it applies to, interleaved so that a
    // short run (`--kills 60`, about one cycle) sees each of them.
    let schedule: &[(Flavor, SyncMode, Kind, u64)] = &[
        (Classic, LockFree, Topic, 3),
        (FailTry, LockFree, Topic, 4),
        (CoRecover, LockFree, Queue, 4),
        (Overwrite, LockFree, Topic, 4),
        (Named, LockFree, Topic, 3),
        (MultiKill, LockFree, Topic, 4),
        (Classic, Semaphore, Topic, 3),
        (FailTry, Semaphore, Queue, 3),
        (MultiKill, Semaphore, Queue, 3),
        (Overwrite, Semaphore, Topic, 4),
        (Named, Semaphore, Topic, 3),
        (Classic, LockFree, Queue, 3),
        (FailTry, LockFree, Queue, 3),
        (CoRecover, LockFree, Queue, 3),
        (MultiKill, LockFree, Queue, 3),
        (Classic, Semaphore, Queue, 3),
        (FailTry, Semaphore, Topic, 3),
        (MultiKill, Semaphore, Topic, 3),
    ];
    let schedule: Vec<_> = schedule
        .iter()
        .copied()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.0.label()))
        .collect();
    assert!(
        !schedule.is_empty(),
        "--only takes one of classic, fail, corecover, overwrite, multikill, named"
    );
    let mut t = Totals::default();
    let started = Instant::now();
    let mut round = 0usize;
    while t.kills < want_kills {
        let (flavor, sync, kind, quota) = schedule[round % schedule.len()];
        let kills_this_round = (want_kills - t.kills).min(quota);
        run_round(
            &mut t,
            &mut rng,
            round,
            flavor,
            sync,
            kind,
            kills_this_round,
        );
        round += 1;
    }
    t.recovery.sort();
    let pct = |q: f64| {
        t.recovery
            .get(((t.recovery.len() as f64 * q) as usize).min(t.recovery.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let flavours = [
        "classic",
        "fail",
        "corecover",
        "overwrite",
        "multikill",
        "named",
    ]
    .iter()
    .map(|f| format!("{f} {}", t.rounds.get(f).copied().unwrap_or(0)))
    .collect::<Vec<_>>()
    .join(", ");
    println!(
        "torture: {round} rounds ({flavours}) over lockfree/semaphore x topic/queue, seed {seed:#x}, {:.1} s",
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
    println!(
        "try-only:   {} rounds where no producer ever waits ({} under policy fail, the rest block)",
        t.rounds.get("fail").copied().unwrap_or(0),
        t.fail_rounds
    );
    println!(
        "co-recovery (queue): {} dead claims judged dead by 2-3 consumers at once ({} resumed together, {} one held while the space was reused then resumed, {} held then killed); {} not staged",
        t.corecover_staged,
        t.corecover_at_once,
        t.corecover_held,
        t.corecover_held_killed,
        t.corecover_unstaged
    );
    println!(
        "overwrite:  {} readers stopped at judged_dead and lapped before resuming ({} not staged); surviving readers received {}, lost {} (counted by lost()), {} losses not counted",
        t.lapped_recoverers, t.lapped_unstaged, t.ow_received, t.ow_lost, t.uncounted
    );
    println!(
        "multi-kill: {} events killing {} producers at once ({} with adjacent claims at named points, {} of them with the readers held until the dead slots were swept, {} given up; {} multi-threaded processes)",
        t.multi_events,
        t.multi_killed,
        t.adjacent_events,
        t.adjacent_swept,
        t.unheld,
        t.threaded_events
    );
    println!(
        "named:      {} named subscribers over {} lives, {} lives killed ({} at mid_read/judged_dead, {} fresh lives never reached judged_dead), {} messages delivered to them, {} seen again at a life's start (in hand at a kill); while away: {} checks saw the slot away (the rest: dead, not yet reclaimed), {} saw the producers held at its cursor, {} went wrong",
        t.names,
        t.named_lives,
        t.named_kills,
        t.named_point_kills,
        t.named_judged_unstaged,
        t.named_delivered,
        t.named_redelivered,
        t.named_away_seen,
        t.named_held,
        t.named_away_bad
    );
    println!(
        "replay:     {} replaying readers audited (earliest, or a position), received {}, lost {} (= the gaps they saw: {} miscounted; {} of it a slot's new owner counted as the old one's gap; {} checked only for lost() >= gaps, a producer's slot or a marker's number unknown)",
        t.replays,
        t.replay_received,
        t.replay_lost,
        t.replay_miscounted,
        t.replay_slot_reuse,
        t.replay_inexact
    );
    println!("delivered:  {}", t.delivered);
    println!("lost:       {}", t.lost);
    println!("duplicated: {}", t.duplicated);
    println!("disorder:   {}", t.disorder);
    println!("wedges:     {}", t.wedges);
    println!("errors:     {}", t.errors);
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
    println!(
        "torture summary: kills {}, messages {}, lost {}, duplicated {}, disorder {}, wedges {}, errors {}, uncounted overwrite losses {}, {:.1} s, named lives {}, redelivered {}, away errors {}, replays {}, replay miscounts {}",
        t.kills,
        t.committed,
        t.lost,
        t.duplicated,
        t.disorder,
        t.wedges,
        t.errors,
        t.uncounted,
        started.elapsed().as_secs_f64(),
        t.named_lives,
        t.named_redelivered,
        t.named_away_bad,
        t.replays,
        t.replay_miscounted
    );
    if t.lost
        + t.duplicated
        + t.disorder
        + t.wedges
        + t.errors
        + t.uncounted
        + t.named_away_bad
        + t.replay_miscounted
        > 0
    {
        std::process::exit(1);
    }
}

/// One kill of the classic kind (and, one time in four, a pause before it): a fresh producer
/// or reader stopped at a named point, or a running one at a random instant. Returns the
/// processes killed.
fn classic_kill(r: &mut Round, t: &mut Totals, round: usize) -> u64 {
    let sync = r.sync;
    if r.rng.below(4) == 0 {
        // A pause: a live claim left unfinished for a while must be waited for.
        let point = producer_point(r.rng, sync);
        let nth = 1 + r.rng.below(40);
        let i = r.spawn(
            "producer",
            Some(format!("{point}:{nth}")),
            SpawnOpts::default(),
        );
        let pid = r.procs[i].pid();
        if wait_stopped(pid) {
            let polls = 2 + r.rng.below(8) as u32;
            std::thread::sleep(shmring::RECOVERY_POLL * polls);
            signal(pid, libc::SIGCONT);
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
        let i = r.spawn(role, Some(format!("{point}:{nth}")), SpawnOpts::default());
        let pid = r.procs[i].pid();
        if !wait_stopped(pid) {
            eprintln!("round {round}: {role} never reached {point}:{nth}");
            t.wedges += 1;
        }
        t.point_kills += 1;
        t.batch_point_kills += r.procs[i].batch as u64;
        pid
    } else {
        // A running participant (never the witness), at a random instant.
        let spared = r.spared();
        if r.pids(role, &spared).is_empty() {
            r.spawn(role, None, SpawnOpts::default());
        }
        let k = r.pids(role, &spared);
        let pid = k[r.rng.below(k.len() as u64) as usize];
        std::thread::sleep(Duration::from_micros(r.rng.below(20_000)));
        if role == "reader" && r.kind == Kind::Queue {
            r.random_consumer_kills += 1;
        }
        pid
    };
    r.kill(victim);
    1
}

/// Named subscribers: a life of one of them killed at a random instant, at `mid_read` (in
/// a fresh life), or at `judged_dead` (a fresh life that stops there, at the claim of a
/// producer killed at a named point, while the other readers are held); after each kill,
/// while the name is away, it must still be listed (away, or dead not yet reclaimed) and
/// hold the producers: they fill the ring up to its cursor and no further. Then a new life
/// resumes it. Returns the processes killed.
fn named_kill(r: &mut Round, t: &mut Totals, ch: &Channel, round: usize) -> u64 {
    let i = r.rng.below(r.names.len() as u64) as usize;
    let mut kills = 0;
    if let Some(pid) = r.life_pid(i) {
        std::thread::sleep(Duration::from_micros(r.rng.below(20_000)));
        r.kill(pid);
        kills += 1;
        t.named_kills += 1;
        check_away(r, t, ch, i, round);
    }
    match r.rng.below(4) {
        0 => {}
        1 => {
            // With a message in hand: a slow life (2 ms per message, logged but not consumed
            // until its next receive) killed after a few of them.
            let pid = r.spawn_life(i, None, true);
            std::thread::sleep(Duration::from_micros(2_000 + r.rng.below(20_000)));
            r.kill(pid);
            kills += 1;
            t.named_kills += 1;
            check_away(r, t, ch, i, round);
        }
        2 => {
            let nth = 1 + r.rng.below(40);
            let pid = r.spawn_life(i, Some(format!("mid_read:{nth}")), false);
            if !wait_stopped(pid) {
                eprintln!("round {round}: named reader never reached mid_read:{nth}");
                t.wedges += 1;
            }
            r.kill(pid);
            kills += 1;
            t.named_kills += 1;
            t.point_kills += 1;
            t.named_point_kills += 1;
            check_away(r, t, ch, i, round);
        }
        _ => {
            // At `judged_dead`: only the fresh life may judge the dead claim, so the others are
            // held (after the victim claimed: it needs room to).
            let life = r.spawn_life(i, Some("judged_dead:1".into()), false);
            let (_, dead, point, nth) = r.spawn_stopping_producer(20);
            if !wait_stopped(dead) {
                eprintln!("round {round}: named round producer never reached {point}:{nth}");
                t.wedges += 1;
            }
            // The other producers too: in semaphore mode the next one to take the mutex would
            // repair the dead claim first.
            let mut others = r.pids("reader", &[life]);
            others.extend(r.pids("producer", &[dead]));
            stop_all(&others);
            r.kill(dead);
            kills += 1;
            t.point_kills += 1;
            if wait_stopped_for(life, Duration::from_secs(3)) {
                t.named_point_kills += 1;
                t.point_kills += 1;
            } else {
                eprintln!(
                    "round {round} ({:?}): named life never reached judged_dead",
                    r.sync
                );
                t.named_judged_unstaged += 1;
            }
            r.kill(life);
            kills += 1;
            t.named_kills += 1;
            check_away(r, t, ch, i, round);
            resume_all(&others);
        }
    }
    r.spawn_life(i, None, false);
    kills
}

/// Named subscriber `i` has no life: it must be listed (away, or its dead owner not yet
/// reclaimed) and hold the producers (they reach its cursor plus the capacity, not more).
fn check_away(r: &Round, t: &mut Totals, ch: &Channel, i: usize, round: usize) {
    let name = &r.names[i].name;
    let cap = ch.descriptor().geometry.capacity;
    let find = || {
        ch.participants()
            .into_iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
    };
    let Some(p) = find() else {
        eprintln!("round {round}: named subscriber {name} not listed while away");
        t.named_away_bad += 1;
        return;
    };
    if p.alive {
        eprintln!("round {round}: named subscriber {name} listed alive with no life");
        t.named_away_bad += 1;
    }
    // Held: the producers run into its cursor (a record's worth of room may be left).
    let held = wait_until(Duration::from_millis(300), || {
        shmring::summarize(ch).tail + 4096 + 256 >= p.cursor + cap
    });
    t.named_held += held as u64;
    let Some(q) = find() else {
        eprintln!("round {round}: named subscriber {name} gone while away");
        t.named_away_bad += 1;
        return;
    };
    t.named_away_seen += q.away as u64;
    let tail = shmring::summarize(ch).tail;
    if q.cursor != p.cursor || tail > q.cursor + cap {
        eprintln!(
            "round {round}: named subscriber {name} away at cursor {} (then {}), tail {tail}, capacity {cap}",
            p.cursor, q.cursor
        );
        t.named_away_bad += 1;
    }
}

/// Queue co-recovery (see the module docs). Returns the processes killed.
fn corecover_episode(r: &mut Round, t: &mut Totals, ch: &Channel, round: usize) -> u64 {
    // The recoverers first: fresh consumers that stop at their first `judged_dead`.
    let n_rec = 2 + (r.rng.below(3) == 0) as usize;
    let recs = r.spawn_recoverers(n_rec);
    let (i, dead, point, nth) = r.spawn_stopping_producer(20);
    if !wait_stopped(dead) {
        eprintln!("round {round}: co-recovery producer never reached {point}:{nth}");
        t.wedges += 1;
    }
    t.point_kills += 1;
    t.batch_point_kills += r.procs[i].batch as u64;
    // The other consumers wait at the claim too (its owner lives); stop them so that the
    // recoverers are the ones to judge it.
    let others = r.pids("reader", &recs);
    stop_all(&others);
    r.kill(dead);
    let mut kills = 1;
    let staged = recs
        .iter()
        .filter(|&&pid| wait_stopped_for(pid, Duration::from_secs(3)))
        .count();
    if staged < 2 {
        t.corecover_unstaged += 1;
        resume_all(&recs);
        resume_all(&others);
        return kills;
    }
    t.corecover_staged += 1;
    match r.rng.below(4) {
        0 => {
            // All at once: they race to skip the same claim.
            t.corecover_at_once += 1;
            resume_all(&recs);
            resume_all(&others);
        }
        v => {
            // One held while the others take past the claim and producers reuse its bytes.
            resume_all(&recs[1..]);
            resume_all(&others);
            let from = shmring::summarize(ch).tail;
            let cap = ch.descriptor().geometry.capacity;
            wait_until(Duration::from_secs(5), || {
                shmring::summarize(ch).tail >= from + 2 * cap
            });
            if v < 3 {
                t.corecover_held += 1;
                resume_all(&recs[..1]);
            } else {
                t.corecover_held_killed += 1;
                t.point_kills += 1;
                r.kill(recs[0]);
                kills += 1;
            }
        }
    }
    kills
}

/// Overwrite: one of a reader stopped at `judged_dead` at a dead claim and lapped, a
/// producer killed at a named point, a reader killed at `mid_read` or at a random instant.
fn overwrite_episode(r: &mut Round, t: &mut Totals, ch: &Channel, round: usize) -> u64 {
    match r.rng.below(3) {
        0 => {
            // Readers join first (a subscription starts at the tail), then the producer that
            // dies in its claim.
            let n_rec = 1 + r.rng.below(2) as usize;
            let recs = r.spawn_recoverers(n_rec);
            let (_, dead, point, nth) = r.spawn_stopping_producer(20);
            let reached = wait_stopped(dead);
            // Hold the other producers so that the claim is not lapped before it is judged.
            let producers = r.pids("producer", &[dead]);
            stop_all(&producers);
            if !reached {
                eprintln!("round {round}: overwrite producer never reached {point}:{nth}");
                t.wedges += 1;
            }
            r.kill(dead);
            t.point_kills += 1;
            let staged: Vec<u32> = recs
                .iter()
                .copied()
                .filter(|&pid| wait_stopped_for(pid, Duration::from_secs(3)))
                .collect();
            t.lapped_unstaged += (recs.len() - staged.len()) as u64;
            for &pid in &recs {
                if !staged.contains(&pid) {
                    signal(pid, libc::SIGCONT);
                }
            }
            resume_all(&producers);
            if !staged.is_empty() {
                // Lapped twice while stopped: what they judged is long overwritten.
                let from = shmring::summarize(ch).tail;
                let cap = ch.descriptor().geometry.capacity;
                wait_until(Duration::from_secs(5), || {
                    shmring::summarize(ch).tail >= from + 2 * cap
                });
                t.lapped_recoverers += staged.len() as u64;
                resume_all(&staged);
            }
            1
        }
        1 => {
            let (_, pid, point, nth) = r.spawn_stopping_producer(40);
            if !wait_stopped(pid) {
                eprintln!("round {round}: producer never reached {point}:{nth}");
                t.wedges += 1;
            }
            r.kill(pid);
            t.point_kills += 1;
            1
        }
        _ => {
            if r.rng.below(2) == 0 {
                let nth = 1 + r.rng.below(40);
                let i = r.spawn(
                    "reader",
                    Some(format!("mid_read:{nth}")),
                    SpawnOpts::default(),
                );
                let pid = r.procs[i].pid();
                if !wait_stopped(pid) {
                    eprintln!("round {round}: reader never reached mid_read:{nth}");
                    t.wedges += 1;
                }
                t.point_kills += 1;
                r.kill(pid);
            } else {
                let spared = r.spared();
                let role = if r.rng.below(2) == 0 {
                    "reader"
                } else {
                    "producer"
                };
                if r.pids(role, &spared).is_empty() {
                    r.spawn(role, None, SpawnOpts::default());
                }
                let k = r.pids(role, &spared);
                let pid = k[r.rng.below(k.len() as u64) as usize];
                std::thread::sleep(Duration::from_micros(r.rng.below(20_000)));
                r.kill(pid);
            }
            1
        }
    }
}

/// Several producers die at the same instant (see the module docs). Returns the processes
/// killed.
fn multikill_episode(r: &mut Round, t: &mut Totals, ch: &Channel, round: usize) -> u64 {
    t.multi_events += 1;
    if r.sync == SyncMode::LockFree && r.rng.below(3) != 0 {
        // Adjacent dead claims: nobody else claims while the victims make theirs. The live
        // producers are stopped where the readers can catch up with them (not in a claim), so
        // that the victims find room: tried a few times.
        let producers = r.pids("producer", &[]);
        let held = (0..5).any(|_| {
            stop_all(&producers);
            if wait_until(Duration::from_secs(1), || caught_up(ch)) {
                return true;
            }
            resume_all(&producers);
            std::thread::sleep(Duration::from_millis(5));
            false
        });
        if !held {
            eprintln!("round {round}: readers never caught up with stopped producers");
            t.unheld += 1;
            return multikill_at_random(r, t, round);
        }
        t.adjacent_events += 1;
        let mut readers = Vec::new();
        if r.rng.below(4) != 0 {
            // Readers held too, so that the producers fill the ring and sweep the dead slots
            // before any reader gets to the dead claims.
            readers = r.pids("reader", &[]);
            stop_all(&readers);
        }
        let k = 2 + r.rng.below(3);
        // Half the time every victim dies with nothing written: then no header says where
        // one dead claim ends and the next begins.
        let empty = r.rng.below(2) == 0;
        let mut group = 0i32;
        let mut victims = Vec::new();
        for _ in 0..k {
            let point = match r.rng.below(4) {
                _ if empty => "after_claim",
                0 | 1 => "after_claim",
                2 => "mid_payload",
                _ => "before_commit",
            };
            let i = r.spawn(
                "producer",
                Some(format!("{point}:1")),
                SpawnOpts {
                    pgroup: Some(group),
                    ..SpawnOpts::default()
                },
            );
            let pid = r.procs[i].pid();
            if group == 0 {
                group = pid as i32;
            }
            if !wait_stopped(pid) {
                eprintln!("round {round}: multi-kill producer never reached {point}:1");
                t.wedges += 1;
            }
            t.batch_point_kills += r.procs[i].batch as u64;
            victims.push(pid);
        }
        // SAFETY: killpg(2) has no memory-safety preconditions; `group` is the process group
        // made for our own children, not yet reaped.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        r.reap(&victims);
        t.point_kills += k;
        t.multi_killed += k;
        resume_all(&producers);
        if !readers.is_empty() {
            let swept = wait_until(Duration::from_secs(3), || {
                !ch.participants()
                    .iter()
                    .any(|p| p.role == Some(Role::Producer) && !p.alive)
            });
            t.adjacent_swept += swept as u64;
            resume_all(&readers);
        }
        return k;
    }
    multikill_at_random(r, t, round)
}

/// Several producers die at once at random instants (see `multikill_episode`).
fn multikill_at_random(r: &mut Round, t: &mut Totals, round: usize) -> u64 {
    if r.rng.below(2) == 0 {
        // A process group of free-running producers, killed at a random instant.
        let k = 2 + r.rng.below(3);
        let mut group = 0i32;
        let mut victims = Vec::new();
        for _ in 0..k {
            let i = r.spawn(
                "producer",
                None,
                SpawnOpts {
                    pgroup: Some(group),
                    ..SpawnOpts::default()
                },
            );
            let pid = r.procs[i].pid();
            if group == 0 {
                group = pid as i32;
            }
            victims.push(pid);
        }
        std::thread::sleep(Duration::from_micros(5_000 + r.rng.below(30_000)));
        // SAFETY: as above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        r.reap(&victims);
        t.multi_killed += k;
        k
    } else {
        // A multi-threaded producer stopped (all its threads) when one is at a named point.
        t.threaded_events += 1;
        let threads = 3 + r.rng.below(2) as u32;
        let point = producer_point(r.rng, r.sync);
        let nth = 1 + r.rng.below(60);
        let i = r.spawn(
            "producer",
            Some(format!("{point}:{nth}")),
            SpawnOpts {
                threads,
                ..SpawnOpts::default()
            },
        );
        let pid = r.procs[i].pid();
        if !wait_stopped(pid) {
            eprintln!("round {round}: threaded producer never reached {point}:{nth}");
            t.wedges += 1;
        }
        t.point_kills += 1;
        r.kill(pid);
        t.multi_killed += 1;
        1
    }
}

fn run_round(
    t: &mut Totals,
    rng: &mut Rng,
    round: usize,
    flavor: Flavor,
    sync: SyncMode,
    kind: Kind,
    kills: u64,
) {
    let name = format!("torture-{}-{round}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let label = flavor.label();
    *t.rounds.entry(label).or_default() += 1;
    let policy = match flavor {
        Flavor::FailTry if rng.below(3) == 0 => Policy::Block,
        Flavor::FailTry => Policy::Fail,
        Flavor::Overwrite => Policy::Overwrite,
        _ => Policy::Block,
    };
    t.fail_rounds += (policy == Policy::Fail) as u64;
    // Small rings where the flavour needs the ring full (try-only) or lapped often.
    let capacity: u64 = match flavor {
        Flavor::Classic | Flavor::MultiKill | Flavor::Named => 1 << 15,
        Flavor::FailTry => 1 << 13,
        Flavor::CoRecover => 1 << 12,
        Flavor::Overwrite => 1 << 14,
    };
    // A lock-free batch claim takes at most the bytes of the largest record: with 256 it
    // covers a few of our records (16..=195 bytes), with 4096 dozens of them.
    // (One record must fit in half the ring: the small rings take up to 1024.)
    let big_claims = rng.below(2) == 0;
    t.big_claim_rounds += big_claims as u64;
    let ch = Channel::open(
        &name,
        &OpenOptions {
            kind: Some(kind),
            sync: Some(sync),
            policy: Some(policy),
            capacity: Some(capacity),
            max_message_size: Some(if big_claims {
                4096.min(capacity as u32 / 4)
            } else {
                256
            }),
            max_participants: Some(64),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    let try_only = matches!(flavor, Flavor::FailTry | Flavor::Overwrite);
    let stop = dir.join("stop").to_string_lossy().into_owned();
    let mut r = Round {
        name: name.clone(),
        dir: dir.clone(),
        stop: stop.clone(),
        kind,
        sync,
        try_only,
        batches: policy != Policy::Fail,
        pace: policy == Policy::Overwrite,
        next_log: 0,
        next_id: 1,
        logs: Vec::new(),
        procs: Vec::new(),
        ended: Vec::new(),
        markers: Vec::new(),
        random_consumer_kills: 0,
        names: Vec::new(),
        marker_slot: u32::MAX,
        producers: 0,
        batch_producers: 0,
        rng,
    };
    let w = r.spawn_reader();
    if kind == Kind::Topic {
        let l = r.procs[w].logs[0];
        r.logs[l].witness = true;
    }
    // Queue: two consumers. Topics (but the classic rounds): a killable reader besides the
    // witness, whose log is audited too if it survives; under `overwrite` a slow one.
    if kind == Kind::Queue || flavor != Flavor::Classic {
        r.spawn(
            "reader",
            None,
            SpawnOpts {
                slow: flavor == Flavor::Overwrite,
                ..SpawnOpts::default()
            },
        );
    }
    if flavor == Flavor::Named {
        // Created before the producers: it must get every message of the round.
        r.add_name();
    }
    for _ in 0..2 {
        r.spawn_producer();
    }
    let replays = matches!(flavor, Flavor::Named | Flavor::Overwrite);
    if replays {
        // Some bytes to replay (and producers wrapping over them as it joins).
        std::thread::sleep(Duration::from_millis(r.rng.below(30)));
        r.spawn_replayer();
    }
    if flavor == Flavor::Named && r.rng.below(2) == 0 {
        // Created while the producers run: it must get every message of each producer after
        // the first one it got from it.
        r.add_name();
    }
    let mut marker = ch.producer().unwrap();
    r.marker_slot = ch
        .participants()
        .iter()
        .find(|p| p.pid == std::process::id())
        .map_or(u32::MAX, |p| p.slot);
    let mut done = 0u64;
    let mut k = 0u32;
    while done < kills {
        done += match flavor {
            Flavor::Classic | Flavor::FailTry => classic_kill(&mut r, t, round),
            Flavor::CoRecover if r.rng.below(4) == 0 => classic_kill(&mut r, t, round),
            Flavor::CoRecover => corecover_episode(&mut r, t, &ch, round),
            Flavor::Overwrite => overwrite_episode(&mut r, t, &ch, round),
            Flavor::MultiKill if r.rng.below(4) == 0 => classic_kill(&mut r, t, round),
            Flavor::MultiKill => multikill_episode(&mut r, t, &ch, round),
            Flavor::Named if r.rng.below(3) == 0 => classic_kill(&mut r, t, round),
            Flavor::Named => named_kill(&mut r, t, &ch, round),
        };
        if replays && r.rng.below(3) == 0 {
            r.spawn_replayer();
        }
        for i in 0..r.names.len() {
            if r.life_pid(i).is_none() {
                r.spawn_life(i, None, false);
            }
        }
        // Keep two producers and (queue) two consumers going, and (topic) a killable reader.
        while r.count("producer") < 2 {
            r.spawn_producer();
        }
        if kind == Kind::Queue {
            while r.count("reader") < 2 {
                r.spawn_reader();
            }
        } else if flavor != Flavor::Classic && r.count("reader") < 2 {
            r.spawn_reader();
        }
        let n = (round as u32) << 16 | k;
        k += 1;
        match recover_time(&ch, &mut marker, n, try_only) {
            Ok(Some(d)) => {
                r.markers.push(n);
                t.recovery.push(d);
            }
            Ok(None) => {
                eprintln!(
                    "round {round} ({label} {sync:?} {kind:?} {policy:?}): no progress {WEDGE_DEADLINE:?} after kill {}",
                    k - 1
                );
                t.wedges += 1;
                if flavor != Flavor::Classic {
                    break; // the rest of this round would only time out again
                }
            }
            Err(e) => {
                eprintln!("round {round} ({label} {sync:?} {kind:?} {policy:?}): {e}");
                t.errors += 1;
                break;
            }
        }
    }
    t.kills += done;
    // Wind down: producers stop, readers drain what is left and stop.
    std::fs::write(&stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in &mut r.procs {
        // Nothing of ours is stopped now; a SIGCONT is harmless if so.
        signal(p.pid(), libc::SIGCONT);
    }
    let mut procs = std::mem::take(&mut r.procs);
    for p in &mut procs {
        loop {
            match p.child.try_wait().unwrap() {
                Some(status) => {
                    if status.success() {
                        for &l in &p.logs {
                            r.logs[l].survived = true;
                        }
                    }
                    r.ended.push((p.base.clone(), Some(status)));
                    break;
                }
                None if Instant::now() > deadline => {
                    eprintln!("round {round} ({label}): a {} did not finish", p.role);
                    diagnose(&ch, p.pid());
                    t.wedges += 1;
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    drop(procs);
    drop(marker);
    audit(&r, t, round, label, policy);
    drop(r);
    drop(ch);
    let _ = shmring::unlink(&name);
    let _ = std::fs::remove_dir_all(&dir);
}

/// For a report: where a process that did not finish is (each thread's state and wait
/// channel), and the channel's positions, participants and mutex words.
fn diagnose(ch: &Channel, pid: u32) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
        .unwrap_or_default();
    for task in tasks {
        let dir = task.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let wchan = std::fs::read_to_string(dir.join("wchan")).unwrap_or_default();
        let syscall = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
        eprintln!(
            "  pid {pid} task {:?}: state {state}, wchan {wchan}, syscall {}",
            task.file_name(),
            syscall.trim()
        );
    }
    let s = shmring::summarize(ch);
    eprintln!("  tail {}, bytes used {}", s.tail, s.bytes_used);
    for p in &s.participants {
        eprintln!(
            "  slot {} {:?} pid {} alive {} cursor {} messages {}",
            p.slot, p.role, p.pid, p.alive, p.cursor, p.messages
        );
    }
    if let Ok(bytes) = std::fs::read(format!(
        "{}{}",
        shmring::SHM_DIR,
        shmring::shm_path(ch.name())
    )) {
        let word = |off: usize| {
            bytes
                .get(off..off + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        let m = shmring::layout::MUTEX_OFFSET;
        eprintln!(
            "  mutex words {:#x} {:#x}, pending pos {} len {} start {}",
            word(m),
            word(m + 8),
            word(shmring::layout::PENDING_POS_OFFSET),
            word(shmring::layout::PENDING_LEN_OFFSET),
            word(shmring::layout::PENDING_START_OFFSET)
        );
    }
}

/// Checks the round's logs (see the module docs) and adds up the totals.
fn audit(r: &Round, t: &mut Totals, round: usize, label: &str, policy: Policy) {
    let what = format!(
        "round {round} ({label} {:?} {:?} {policy:?})",
        r.sync, r.kind
    );
    // Errors a child reported, or a failed exit.
    for (base, status) in &r.ended {
        let err = std::fs::read_to_string(format!("{base}.err")).unwrap_or_default();
        if let Some(first) = err.lines().next() {
            eprintln!("{what}: {base}: {first}");
            t.errors += 1;
        } else if let Some(s) = status
            && !s.success()
        {
            eprintln!("{what}: {base} exited with {s}");
            t.errors += 1;
        }
    }
    let mut committed: HashSet<(u32, u32)> = HashSet::new();
    for log in r.logs.iter().filter(|l| l.role == "producer") {
        let ids = read_log(&log.path);
        if log.batch {
            t.batch_committed += ids.len() as u64;
        }
        committed.extend(ids);
    }
    t.producers += r.producers;
    t.batch_producers += r.batch_producers;
    committed.extend(r.markers.iter().map(|&m| (0u32, m)));
    t.committed += committed.len() as u64;
    // Each producer's committed seqs, in order.
    let mut by_producer: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(p, s) in &committed {
        by_producer.entry(p).or_default().push(s);
    }
    for v in by_producer.values_mut() {
        v.sort_unstable();
    }
    let readers: Vec<&LogFile> = r
        .logs
        .iter()
        .filter(|l| l.role == "reader" && l.name.is_none() && !l.replay)
        .collect();
    for log in r.logs.iter().filter(|l| l.replay && l.survived) {
        replay_audit(r, log, t, &what, policy, &by_producer);
    }
    for i in 0..r.names.len() {
        named_audit(r, i, t, &what, &by_producer);
    }
    if policy == Policy::Overwrite {
        let witness = readers.iter().find(|l| l.witness);
        t.delivered += witness.map_or(0, |l| read_log(&l.path).len() as u64);
        for log in readers.iter().filter(|l| l.survived) {
            overwrite_audit(log, t, &what, r.markers.len() as u64);
        }
        return;
    }
    if r.kind == Kind::Topic {
        for log in readers.iter().filter(|l| l.witness || l.survived) {
            let got = read_log(&log.path);
            let mut seen: HashSet<(u32, u32)> = HashSet::new();
            let mut last: HashMap<u32, u32> = HashMap::new();
            for &(p, s) in &got {
                if !seen.insert((p, s)) {
                    t.duplicated += 1;
                    eprintln!("{what}: {} got {p}/{s} twice", log.path);
                }
                if let Some(&l) = last.get(&p)
                    && s <= l
                {
                    t.disorder += 1;
                    eprintln!("{what}: {} got {p}/{s} after {p}/{l}", log.path);
                }
                last.insert(p, s);
            }
            let missing: Vec<(u32, u32)> = if log.witness {
                t.delivered += seen.len() as u64;
                committed
                    .iter()
                    .filter(|m| !seen.contains(m))
                    .copied()
                    .collect()
            } else {
                // From each producer, everything committed after the first one it got.
                let mut first: HashMap<u32, u32> = HashMap::new();
                for &(p, s) in &got {
                    first.entry(p).or_insert(s);
                }
                first
                    .iter()
                    .flat_map(|(&p, &f)| {
                        by_producer
                            .get(&p)
                            .into_iter()
                            .flatten()
                            .filter(move |&&s| s > f)
                            .map(move |&s| (p, s))
                    })
                    .filter(|m| !seen.contains(m))
                    .collect()
            };
            if let Some(m) = missing.first() {
                eprintln!(
                    "{what}: {} is missing {} committed messages, e.g. {}/{}",
                    log.path,
                    missing.len(),
                    m.0,
                    m.1
                );
            }
            t.lost += missing.len() as u64;
        }
        return;
    }
    // Queue: every committed message reached exactly one consumer.
    let delivered: Vec<(u32, u32)> = readers.iter().flat_map(|l| read_log(&l.path)).collect();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    for &(p, s) in &delivered {
        if !seen.insert((p, s)) {
            t.duplicated += 1;
            eprintln!("{what}: {p}/{s} taken twice");
        }
    }
    let missing: Vec<&(u32, u32)> = committed.iter().filter(|m| !seen.contains(m)).collect();
    let excused = (missing.len() as u64).min(r.random_consumer_kills);
    t.taken_by_killed += excused;
    if missing.len() as u64 > excused {
        eprintln!(
            "{what}: {} committed messages taken by nobody ({excused} excused), e.g. {}/{}",
            missing.len(),
            missing[0].0,
            missing[0].1
        );
    }
    t.lost += missing.len() as u64 - excused;
    t.delivered += seen.len() as u64;
}

/// Overwrite: one surviving reader's log and its `received() lost()`.
fn overwrite_audit(log: &LogFile, t: &mut Totals, what: &str, markers: u64) {
    let got = read_log(&log.path);
    let stats = std::fs::read_to_string(format!("{}.stats", log.path)).unwrap_or_default();
    let mut it = stats.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (Some(Some(received)), Some(Some(lost))) = (it.next(), it.next()) else {
        eprintln!("{what}: {} wrote no stats", log.path);
        t.errors += 1;
        return;
    };
    if received != got.len() as u64 {
        eprintln!(
            "{what}: {} logged {} messages but received() says {received}",
            log.path,
            got.len()
        );
        t.errors += 1;
    }
    // Losses it saw: gaps between two messages of one producer (the parent's markers, id 0,
    // are numbered apart from the producer's own message count, and left out). Each is
    // counted by `lost()`; `lost()` may count more only for what came before a producer's
    // first message it got, and for markers.
    let mut last: HashMap<u32, u32> = HashMap::new();
    let (mut gaps, mut before_first) = (0u64, 0u64);
    for &(p, s) in &got {
        match last.get(&p) {
            Some(&l) if s <= l => {
                if s == l {
                    t.duplicated += 1;
                } else {
                    t.disorder += 1;
                }
                eprintln!("{what}: {} got {p}/{s} after {p}/{l}", log.path);
            }
            Some(&l) if p != 0 => gaps += u64::from(s - l - 1),
            Some(_) => {}
            None if p != 0 => before_first += u64::from(s),
            None => {}
        }
        if last.get(&p).is_none_or(|&l| s > l) {
            last.insert(p, s);
        }
    }
    if lost < gaps {
        eprintln!(
            "{what}: {} missed {gaps} messages between ones it got, lost() says {lost}",
            log.path
        );
        t.uncounted += gaps - lost;
    } else if lost > gaps + before_first + markers {
        eprintln!(
            "{what}: {} lost() says {lost}, more than the {gaps} it missed plus {before_first} before first messages and {markers} markers",
            log.path
        );
        t.errors += 1;
    }
    t.ow_received += received;
    t.ow_lost += lost;
}

/// A named subscriber: its lives' logs in order must hold every committed message it is due
/// (see the module docs), each once and in each producer's order, but for the message in hand
/// at a kill, which the next life that gets anything gets again first.
fn named_audit(
    r: &Round,
    i: usize,
    t: &mut Totals,
    what: &str,
    by_producer: &HashMap<u32, Vec<u32>>,
) {
    let ns = &r.names[i];
    t.names += 1;
    let lives: Vec<&LogFile> = r.logs.iter().filter(|l| l.name == Some(i)).collect();
    t.named_lives += lives.len() as u64;
    if !lives.last().is_some_and(|l| l.survived) {
        eprintln!(
            "{what}: named subscriber {}: its last life did not finish",
            ns.name
        );
        t.errors += 1;
    }
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut last: HashMap<u32, u32> = HashMap::new();
    let mut first: HashMap<u32, u32> = HashMap::new();
    let mut prev: Option<(u32, u32)> = None;
    for life in &lives {
        let got = read_log(&life.path);
        for (k, &(p, s)) in got.iter().enumerate() {
            if seen.contains(&(p, s)) {
                if k == 0 && prev == Some((p, s)) {
                    t.named_redelivered += 1;
                } else {
                    t.duplicated += 1;
                    eprintln!(
                        "{what}: named {} got {p}/{s} again ({})",
                        ns.name, life.path
                    );
                }
                continue;
            }
            if let Some(&l) = last.get(&p)
                && s <= l
            {
                t.disorder += 1;
                eprintln!("{what}: named {} got {p}/{s} after {p}/{l}", ns.name);
            }
            seen.insert((p, s));
            last.insert(p, s);
            first.entry(p).or_insert(s);
        }
        if let Some(&m) = got.last() {
            prev = Some(m);
        }
    }
    t.named_delivered += seen.len() as u64;
    // Due: markers published after it was created, every message of producers started after
    // it was, and of the others everything after the first one it got.
    let markers: HashSet<u32> = r.markers[ns.markers_before..].iter().copied().collect();
    let mut missing = Vec::new();
    for (&p, seqs) in by_producer {
        for &s in seqs {
            let due = if p == 0 {
                markers.contains(&s)
            } else if p >= ns.next_id {
                true
            } else {
                first.get(&p).is_some_and(|&f| s > f)
            };
            if due && !seen.contains(&(p, s)) {
                missing.push((p, s));
            }
        }
    }
    if let Some(m) = missing.first() {
        eprintln!(
            "{what}: named subscriber {} is missing {} committed messages, e.g. {}/{}",
            ns.name,
            missing.len(),
            m.0,
            m.1
        );
    }
    t.lost += missing.len() as u64;
}

/// A replaying reader that survived: `received()` is what it logged, each producer's
/// messages come in order, `lost()` is exactly the sum of the gaps in each producer slot's
/// message numbers after the first one it got from it (a marker's number is its index among
/// the markers), and under policy `block` nothing after the tail it joined at is missing.
fn replay_audit(
    r: &Round,
    log: &LogFile,
    t: &mut Totals,
    what: &str,
    policy: Policy,
    by_producer: &HashMap<u32, Vec<u32>>,
) {
    let got: Vec<(u32, u32, u64)> = std::fs::read_to_string(&log.path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            Some((
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect();
    let stats = std::fs::read_to_string(format!("{}.stats", log.path)).unwrap_or_default();
    let v: Vec<u64> = stats
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [received, lost, joined_by] = v[..] else {
        eprintln!("{what}: {} wrote no stats", log.path);
        t.errors += 1;
        return;
    };
    t.replays += 1;
    t.replay_received += received;
    t.replay_lost += lost;
    if received != got.len() as u64 {
        eprintln!(
            "{what}: {} logged {} messages but received() says {received}",
            log.path,
            got.len()
        );
        t.errors += 1;
    }
    // Each producer's slot (written by the producer as it started).
    let mut slots: HashMap<u32, u32> = HashMap::new();
    slots.insert(0, r.marker_slot);
    for l in r.logs.iter().filter(|l| l.role == "producer") {
        let text = std::fs::read_to_string(format!("{}.slot", l.path)).unwrap_or_default();
        let mut it = text.split_whitespace().map(|x| x.parse::<u32>().ok());
        if let (Some(Some(id)), Some(Some(slot))) = (it.next(), it.next()) {
            slots.insert(id, slot);
        }
    }
    let mut expected: HashMap<u32, u64> = HashMap::new();
    let mut last: HashMap<u32, u64> = HashMap::new();
    let (mut counted, mut gaps, mut exact) = (0u64, 0u64, true);
    for &(p, s, _) in &got {
        let pseq = if p == 0 {
            match r.markers.binary_search(&s) {
                Ok(k) => k as u64,
                Err(_) => {
                    exact = false;
                    continue;
                }
            }
        } else {
            u64::from(s)
        };
        match last.get(&p) {
            Some(&l) if pseq <= l => {
                if pseq == l {
                    t.duplicated += 1;
                } else {
                    t.disorder += 1;
                }
                eprintln!("{what}: {} got {p}/{s} after a later one", log.path);
            }
            Some(&l) => gaps += pseq - l - 1,
            None => {}
        }
        last.insert(p, pseq);
        // The engine counts per slot: a new owner's first message after a smaller number
        // starts again; after a larger one it counts as the old owner's gap.
        let Some(&slot) = slots.get(&p) else {
            exact = false;
            continue;
        };
        if let Some(&e) = expected.get(&slot)
            && pseq > e
        {
            counted += pseq - e;
        }
        expected.insert(slot, pseq + 1);
    }
    t.replay_slot_reuse += counted.saturating_sub(gaps);
    t.replay_inexact += !exact as u64;
    if exact && lost != counted {
        eprintln!(
            "{what}: replaying {} lost() says {lost}, it missed {counted} ({gaps} between messages of one producer)",
            log.path
        );
        t.replay_miscounted += 1;
    } else if !exact && lost < gaps {
        eprintln!(
            "{what}: replaying {} lost() says {lost} < {gaps} gaps",
            log.path
        );
        t.replay_miscounted += 1;
    }
    if policy != Policy::Block {
        return;
    }
    // From the tail it joined at on, nothing is missing.
    let mut from: HashMap<u32, u32> = HashMap::new();
    for &(p, s, pos) in &got {
        if pos >= joined_by {
            from.entry(p).or_insert(s);
        }
    }
    let seen: HashSet<(u32, u32)> = got.iter().map(|&(p, s, _)| (p, s)).collect();
    let missing: Vec<(u32, u32)> = from
        .iter()
        .flat_map(|(&p, &f)| {
            by_producer
                .get(&p)
                .into_iter()
                .flatten()
                .filter(move |&&s| s > f)
                .map(move |&s| (p, s))
        })
        .filter(|m| !seen.contains(m))
        .collect();
    if let Some(m) = missing.first() {
        eprintln!(
            "{what}: replaying {} is missing {} committed messages after its join, e.g. {}/{}",
            log.path,
            missing.len(),
            m.0,
            m.1
        );
    }
    t.lost += missing.len() as u64;
}
