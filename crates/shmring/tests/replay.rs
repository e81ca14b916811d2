//! Replay, positions and named subscribers, with real processes: a channel's messages are
//! there for a subscriber that joins after they were published (`Start::Earliest`, a
//! position), a replay racing producers that wrap over it never gets a torn message and
//! counts exactly what it skipped, and a named subscriber resumes after the last message it
//! consumed, across SIGKILLs. Every child is killed and reaped and every name unlinked, even
//! when a test panics.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Rng, Unlink, child_role, env_or, env_u64, expect_code, spawn_child, tagged, unique,
    untag,
};
use shmring::{
    Channel, ErrorCode, OpenOptions, Policy, Role, Start, SubscribeOptions, Subscriber, SyncMode,
};

const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

fn replay(ch: &Channel, from: Start) -> Subscriber {
    ch.subscribe_with(&SubscribeOptions { from, name: None })
        .unwrap()
}

/// Receives until nothing arrives for `quiet`, returning (producer, seq) of each message.
fn collect(sub: &mut Subscriber, quiet: Duration) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while sub.recv_timeout(&mut buf, Some(quiet)).unwrap() {
        out.push(untag(&buf));
    }
    out
}

/// Child: publishes `SHMRING_TEST_COUNT` tagged messages as producer `SHMRING_TEST_ID` (or
/// forever when the count is 0), then exits.
#[test]
fn child_replay_producer() {
    let Some(name) = child_role("replay_producer") else {
        return;
    };
    let id = env_u64("SHMRING_TEST_ID") as u32;
    let count = env_u64("SHMRING_TEST_COUNT") as u32;
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = ch.producer().unwrap();
    let mut seq = 0u32;
    while count == 0 || seq < count {
        let msg = tagged(id, seq, 8 + (seq as usize * 13 + id as usize) % 50);
        p.publish_timeout(&msg, Some(Duration::from_secs(60)))
            .unwrap();
        seq += 1;
        if count == 0 && seq.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A producer process publishes 10,000 messages and exits; a subscriber that joins later
/// replays all of them from `Earliest`, in order. Then positions: `from` a record's position
/// starts at that record, `position + 1` right after it.
#[test]
fn replay_from_earliest_after_the_producer_exited() {
    for sync in MODES {
        let n = unique("replay");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(1 << 20),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let env = [
            ("SHMRING_TEST_ID", "3".to_owned()),
            ("SHMRING_TEST_COUNT", "10000".to_owned()),
        ];
        spawn_child("child_replay_producer", "replay_producer", &n, &env)
            .finish(Duration::from_secs(60));

        // Nobody was subscribed: `Latest` gets nothing, `Earliest` everything.
        let mut late = ch.subscribe().unwrap();
        assert!(collect(&mut late, Duration::from_millis(50)).is_empty());
        let mut sub = replay(&ch, Start::Earliest);
        let mut positions = Vec::new();
        let mut buf = Vec::new();
        while sub.try_recv(&mut buf).unwrap() {
            assert_eq!(untag(&buf), (3, positions.len() as u32), "{sync:?}");
            positions.push(sub.last_position().unwrap());
        }
        assert_eq!(positions.len(), 10_000, "{sync:?}");
        assert_eq!(sub.lost(), 0);
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "positions increase"
        );

        for k in [0usize, 1, 4321, 9999] {
            let mut at = replay(&ch, Start::Position(positions[k]));
            assert!(at.try_recv(&mut buf).unwrap());
            assert_eq!(untag(&buf), (3, k as u32));
            assert_eq!(at.last_position(), Some(positions[k]));
            let mut after = replay(&ch, Start::Position(positions[k] + 1));
            let got = collect(&mut after, Duration::from_millis(20));
            assert_eq!(got.len(), 9_999 - k, "after {k}");
            assert_eq!(
                got.first().map(|m| m.1),
                (k < 9_999).then_some(k as u32 + 1)
            );
        }
        // A position not reached yet waits for it: the next message published starts there.
        let mut future = replay(&ch, Start::Position(u64::MAX / 8));
        let mut p = ch.producer().unwrap();
        p.try_publish(&tagged(9, 0, 16)).unwrap();
        assert!(!future.try_recv(&mut buf).unwrap());
        let mut next = replay(&ch, Start::Position(positions[9999] + 1));
        assert_eq!(collect(&mut next, Duration::from_millis(20)), vec![(9, 0)]);
    }
}

/// The producer is SIGKILLed mid-stream: a replay is an exact prefix of what it published,
/// nothing torn (a claim it died in is skipped once judged dead). In /dev/shm and in a
/// channel on disk (a directory under the temp dir, which is removed afterwards).
#[test]
fn replay_after_a_producer_was_killed_is_an_exact_prefix() {
    let disk = std::env::temp_dir().join(unique("replaydir"));
    std::fs::create_dir(&disk).unwrap();
    let _rm = RemoveDir(disk.clone());
    for dir in [None, Some(disk.clone())] {
        for sync in MODES {
            let n = unique("replaykill");
            let opts = OpenOptions {
                capacity: Some(1 << 22),
                sync: Some(sync),
                dir: dir.clone(),
                ..OpenOptions::create()
            };
            let ch = Channel::open(&n, &opts).unwrap();
            let _g = UnlinkIn(dir.clone(), n.clone());
            let mut env = vec![
                ("SHMRING_TEST_ID", "1".to_owned()),
                ("SHMRING_TEST_COUNT", "0".to_owned()),
            ];
            if let Some(d) = &dir {
                env.push(("SHMRING_DIR", d.display().to_string()));
            }
            let mut child = spawn_child("child_replay_producer", "replay_producer", &n, &env);
            let deadline = Instant::now() + Duration::from_secs(60);
            while published_by_producers(&ch) < 2_000 {
                assert!(
                    Instant::now() < deadline,
                    "the producer published too little"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            child.kill();
            // A new handle, as a process would open it after the crash.
            let again = Channel::open(
                &n,
                &OpenOptions {
                    dir: dir.clone(),
                    ..OpenOptions::default()
                },
            )
            .unwrap();
            let mut sub = replay(&again, Start::Earliest);
            let got = collect(&mut sub, Duration::from_millis(300));
            assert!(
                got.len() >= 2_000,
                "{sync:?} {dir:?}: replayed {}",
                got.len()
            );
            for (i, m) in got.iter().enumerate() {
                assert_eq!(*m, (1, i as u32), "{sync:?} {dir:?}: not a prefix at {i}");
            }
        }
    }
}

/// Unlinks a channel in a directory (or the default one) when dropped.
struct UnlinkIn(Option<std::path::PathBuf>, String);
impl Drop for UnlinkIn {
    fn drop(&mut self) {
        let _ = match &self.0 {
            Some(d) => shmring::unlink_in(d, &self.1),
            None => shmring::unlink(&self.1),
        };
    }
}

/// Removes a directory and what is in it when dropped.
struct RemoveDir(std::path::PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn published_by_producers(ch: &Channel) -> u64 {
    ch.participants()
        .iter()
        .filter(|p| p.role == Some(Role::Producer))
        .map(|p| p.messages)
        .sum()
}

/// Child: replays from `Earliest` slowly (a pause after 8 messages, then now and then) while
/// producers wrap over it, and writes what it got to `SHMRING_TEST_OUT`: one line per message
/// `producer seq`, then `lost N`.
#[test]
fn child_slow_replayer() {
    let Some(name) = child_role("slow_replayer") else {
        return;
    };
    let out_path = std::env::var("SHMRING_TEST_OUT").unwrap();
    let total = env_u64("SHMRING_TEST_COUNT");
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = replay(&ch, Start::Earliest);
    let pause = Duration::from_millis(env_u64("SHMRING_TEST_PAUSE_MS"));
    let mut lines = String::new();
    let mut buf = Vec::new();
    let mut last = BTreeMap::new();
    let mut seen = 0u64;
    let mut rng = Rng(0x5eed);
    while sub
        .recv_timeout(&mut buf, Some(Duration::from_secs(5)))
        .unwrap()
    {
        let (p, s) = untag(&buf);
        lines.push_str(&format!("{p} {s}\n"));
        last.insert(p, s);
        seen += 1;
        if seen == 8 {
            // A few old messages read: producers may now wrap over the rest of the replay.
            std::thread::sleep(pause);
        }
        if seen < total / 4 && rng.upto(16) == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    lines.push_str(&format!("lost {}\n", sub.lost()));
    std::fs::write(out_path, lines).unwrap();
}

/// A replay from `Earliest` that producers wrap over (a small ring, a fast live subscriber
/// keeping them going, a slow replayer): never a torn message (each payload checks), each
/// producer's messages in order, and `lost` equals the gaps exactly.
#[test]
fn replay_racing_wrapping_producers_counts_exactly_what_it_skipped() {
    let per = env_or("SHMRING_REPLAY_RACE", 20_000) as u32;
    for sync in MODES {
        let (n, ch, out, _g) = small_ring("replayrace", sync);
        let mut fast = ch.subscribe().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // Producer 7 (this process) wraps the ring a few times with `fast` keeping up, so the
        // replayer joins where the whole ring is free space for producers: its replay is
        // unprotected until it reaches the tail it joined at.
        let mut p = ch.producer().unwrap();
        let mut seq7 = 0u32;
        let mut fast_got = 0u64;
        while seq7 < 2_000 {
            while p.try_publish(&tagged(7, seq7, 40)).unwrap() {
                seq7 += 1;
            }
            fast_got += fast.drain_into(&mut buf, 1024).unwrap().count as u64;
        }
        // `fast` is caught up: one more message makes producers recompute the lowest needed
        // position there, so a whole ring is free for them while it still holds old records.
        assert!(p.try_publish(&tagged(7, seq7, 40)).unwrap());
        seq7 += 1;
        let replayer = spawn_child(
            "child_slow_replayer",
            "slow_replayer",
            &n,
            &[
                ("SHMRING_TEST_OUT", out.display().to_string()),
                ("SHMRING_TEST_COUNT", (per * 2).to_string()),
                ("SHMRING_TEST_PAUSE_MS", "300".to_owned()),
            ],
        );
        wait_for_subscribers(&ch, 2);
        let mut producers: Vec<ChildGuard> = (0..2u32)
            .map(|id| {
                spawn_child(
                    "child_replay_producer",
                    "replay_producer",
                    &n,
                    &[
                        ("SHMRING_TEST_ID", id.to_string()),
                        ("SHMRING_TEST_COUNT", per.to_string()),
                    ],
                )
            })
            .collect();
        // `fast` drains everything; producer 7 goes on now and then, so that a replayer
        // lapped past its messages sees the gap in them.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut round = 0u32;
        while fast_got < (seq7 + 2 * per) as u64 || !producers.iter_mut().all(|c| c.exited()) {
            assert!(
                Instant::now() < deadline,
                "{sync:?}: the fast subscriber got {fast_got}"
            );
            round += 1;
            if round.is_multiple_of(4)
                && seq7 < 2_000 + per
                && p.try_publish(&tagged(7, seq7, 40)).unwrap()
            {
                seq7 += 1;
            }
            let d = fast.drain_into(&mut buf, 1024).unwrap();
            fast_got += d.count as u64;
            if d.count == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        for c in producers.drain(..) {
            c.finish(Duration::from_secs(60));
        }
        replayer.finish(Duration::from_secs(60));
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lost_reported = None;
        let mut by_producer: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(l) = line.strip_prefix("lost ") {
                lost_reported = Some(l.parse::<u64>().unwrap());
                continue;
            }
            let (p, s) = line.split_once(' ').unwrap();
            by_producer
                .entry(p.parse().unwrap())
                .or_default()
                .push(s.parse().unwrap());
        }
        let mut gaps = 0u64;
        for (p, seqs) in &by_producer {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{sync:?}: producer {p} out of order"
            );
            gaps += seqs
                .windows(2)
                .map(|w| (w[1] - w[0] - 1) as u64)
                .sum::<u64>();
        }
        // Every producer's last message arrived (the replayer caught up before the end).
        for (p, last) in [(0u32, per - 1), (1, per - 1), (7, seq7 - 1)] {
            assert_eq!(
                by_producer.get(&p).and_then(|v| v.last()).copied(),
                Some(last),
                "{sync:?}: producer {p}'s last message"
            );
        }
        assert_eq!(lost_reported, Some(gaps), "{sync:?}: lost vs gaps");
        // The replayer paused after a few messages, so producers did wrap over it.
        assert!(gaps > 0, "{sync:?}: the replay was never lapped");
        eprintln!(
            "{sync:?}: replayer got {} messages, skipped {gaps}",
            by_producer.values().map(Vec::len).sum::<usize>()
        );
    }
}

fn wait_for_subscribers(ch: &Channel, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ch
        .participants()
        .iter()
        .filter(|p| p.role == Some(Role::Subscriber) && p.alive)
        .count()
        < n
    {
        assert!(Instant::now() < deadline, "subscribers did not join");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A 16 KiB channel (messages up to 256 bytes) for the racing tests, its name, and a log file
/// path for a child; the guard unlinks the one and removes the other.
fn small_ring(
    tag: &str,
    sync: SyncMode,
) -> (String, Channel, std::path::PathBuf, (Unlink, RemoveFile)) {
    let n = unique(tag);
    let unlink = Unlink::new(&n);
    let out = std::env::temp_dir().join(format!("{n}.out"));
    let rm = RemoveFile(out.clone());
    let opts = OpenOptions {
        capacity: Some(16 * 1024),
        max_message_size: Some(256),
        sync: Some(sync),
        ..OpenOptions::create()
    };
    let ch = Channel::open(&n, &opts).unwrap();
    (n, ch, out, (unlink, rm))
}

struct RemoveFile(std::path::PathBuf);
impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A named subscriber: resumes after what it consumed (a message in hand is delivered
/// again), a second attach of the name is `Busy`, an away name holds producers back under
/// `fail`, removal frees them, and `participants` shows it away.
#[test]
fn named_subscriber_resumes_and_holds_producers() {
    let n = unique("named");
    let _g = Unlink::new(&n);
    let opts = OpenOptions {
        capacity: Some(4096),
        max_message_size: Some(64),
        policy: Some(Policy::Fail),
        ..OpenOptions::create()
    };
    let ch = Channel::open(&n, &opts).unwrap();
    let mut p = ch.producer().unwrap();
    let mut billing = ch.subscribe_named("billing").unwrap();
    expect_code(ch.subscribe_named("billing"), ErrorCode::Busy);
    expect_code(ch.remove_subscriber("billing"), ErrorCode::Busy);
    expect_code(ch.subscribe_named("no spaces"), ErrorCode::InvalidName);
    expect_code(ch.subscribe_named(&"x".repeat(33)), ErrorCode::InvalidName);
    for s in 0..10 {
        assert!(p.try_publish(&tagged(0, s, 24)).unwrap());
    }
    let mut buf = Vec::new();
    for s in 0..5 {
        assert!(billing.try_recv(&mut buf).unwrap());
        assert_eq!(untag(&buf), (0, s));
    }
    // Message 4 is in hand (no later call consumed it): it comes again.
    drop(billing);
    let info: Vec<_> = ch
        .participants()
        .into_iter()
        .filter(|p| p.name.is_some())
        .collect();
    assert_eq!(info.len(), 1);
    assert!(info[0].away && !info[0].alive);
    assert_eq!(info[0].name.as_deref(), Some("billing"));
    let mut billing = ch.subscribe_named("billing").unwrap();
    let got = collect(&mut billing, Duration::from_millis(10));
    assert_eq!(
        got.iter().map(|m| m.1).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    drop(billing); // the last call found nothing: everything was consumed

    // Away, the name holds producers back: the ring fills and `fail` says so.
    let mut published = 0;
    let full = loop {
        match p.try_publish(&tagged(1, published, 56)) {
            Ok(true) => published += 1,
            other => break other,
        }
        assert!(
            published < 1000,
            "an away named subscriber did not hold producers"
        );
    };
    assert_eq!(full.unwrap_err().code(), ErrorCode::RingFull);
    let mut billing = ch.subscribe_named("billing").unwrap();
    let got = collect(&mut billing, Duration::from_millis(10));
    assert_eq!(
        got.len(),
        published as usize,
        "the name got all it held back"
    );
    drop(billing);
    assert!(ch.remove_subscriber("billing").unwrap());
    assert!(!ch.remove_subscriber("billing").unwrap());
    assert!(ch.participants().iter().all(|p| p.name.is_none()));
    // Nobody holds them now: the ring takes whatever is published.
    for s in 0..1000 {
        assert!(p.try_publish(&tagged(2, s, 56)).unwrap());
    }
    // A queue has no named subscribers or replay.
    let q = unique("namedq");
    let _gq = Unlink::new(&q);
    let qch = Channel::open(
        &q,
        &OpenOptions {
            kind: Some(shmring::Kind::Queue),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    expect_code(qch.subscribe_named("w"), ErrorCode::InvalidArgument);
    expect_code(
        qch.subscribe_with(&SubscribeOptions {
            from: Start::Earliest,
            name: None,
        }),
        ErrorCode::InvalidArgument,
    );
}

/// Child: the named subscriber `audit`; appends each message's seq to `SHMRING_TEST_OUT`
/// (one 16-byte line each, written before the next receive consumes it) until killed.
#[test]
fn child_named_subscriber() {
    let Some(name) = child_role("named_subscriber") else {
        return;
    };
    let out_path = std::env::var("SHMRING_TEST_OUT").unwrap();
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe_named("audit").unwrap();
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out_path)
        .unwrap();
    let mut buf = Vec::new();
    loop {
        if sub
            .recv_timeout(&mut buf, Some(Duration::from_millis(100)))
            .unwrap()
        {
            let (_, s) = untag(&buf);
            // One fixed-width line: 16 bytes never straddle a page of the file, and a write
            // that does can be cut short by the SIGKILL between its two pages, leaving part
            // of a line for the next life to append to.
            out.write_all(format!("{s:>15}\n").as_bytes()).unwrap();
        }
    }
}

/// A named subscriber SIGKILLed at random instants and restarted while a producer publishes:
/// across its lives it sees every message in order; a message is seen twice only where a
/// life ended (at most one per kill, the one in hand). Under `block` the name holds the
/// producer back while it is away, so nothing is lost.
#[test]
fn named_subscriber_killed_and_restarted_sees_everything() {
    let kills = env_or(
        "SHMRING_NAMED_KILLS",
        if std::env::var("CI").is_ok() { 20 } else { 50 },
    );
    for sync in MODES {
        let (n, ch, out, _g) = small_ring("namedkill", sync);
        // Create the name before publishing, so it holds back everything from message 0.
        drop(ch.subscribe_named("audit").unwrap());
        let mut p = ch.producer().unwrap();
        let mut rng = Rng(0xa5a5 ^ sync as u64);
        let mut seq = 0u32;
        let env = [("SHMRING_TEST_OUT", out.display().to_string())];
        for _ in 0..kills {
            let mut child = spawn_child("child_named_subscriber", "named_subscriber", &n, &env);
            let until = Instant::now() + Duration::from_micros(2_000 + rng.upto(20_000) as u64);
            while Instant::now() < until {
                if p.try_publish(&tagged(0, seq, 8 + seq as usize % 100))
                    .unwrap()
                {
                    seq += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            child.kill();
        }
        // A last life drains the rest.
        let mut child = spawn_child("child_named_subscriber", "named_subscriber", &n, &env);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().last().map(str::trim) == Some(&(seq - 1).to_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{sync:?}: the last life did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill();
        let text = std::fs::read_to_string(&out).unwrap();
        let seen: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
        let mut expect = 0u32;
        let mut duplicates = 0u32;
        for &s in &seen {
            if s == expect {
                expect += 1;
            } else {
                assert!(
                    s + 1 == expect,
                    "{sync:?}: got {s} where {expect} was due (or {} again)",
                    expect - 1
                );
                duplicates += 1;
            }
        }
        assert_eq!(expect, seq, "{sync:?}: every message seen");
        assert!(
            duplicates <= kills as u32,
            "{sync:?}: {duplicates} duplicates"
        );
        eprintln!("{sync:?}: {seq} messages, {kills} kills, {duplicates} seen twice");
    }
}

/// A named subscriber that joined with a replay and left with its cursor below the
/// producers' cached head (it consumed less than the replay had read) is not protected
/// there: when it resumes after the producers lapped that space, what it reads is validated
/// (never torn, never a wedge) and it goes on from the oldest record left. (What was
/// overwritten before its first message of the new life is not in `lost()`: a lost count is
/// per subscription, from the first message it gets of each producer.)
#[test]
fn a_named_replay_resumed_after_being_lapped_is_validated() {
    for sync in MODES {
        let (_n, ch, _out, _g) = small_ring("namedlap", sync);
        let mut fast = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seq = 0u32;
        // Wrap a few times with `fast` keeping up, then one more message so that producers'
        // cached head is where `fast` is: the whole ring is free space for them.
        let mut publish_round = |p: &mut shmring::Producer, fast: &mut Subscriber, n: u32| {
            let mut sent = 0;
            while sent < n {
                while sent < n && p.try_publish(&tagged(7, seq, 40)).unwrap() {
                    seq += 1;
                    sent += 1;
                }
                fast.drain_into(&mut buf, 1024).unwrap();
            }
        };
        publish_round(&mut p, &mut fast, 2_000);
        assert!(p.try_publish(&tagged(7, seq, 40)).unwrap()); // refreshes the cached head
        seq += 1;
        let named = SubscribeOptions {
            from: Start::Earliest,
            name: Some("late".into()),
        };
        let mut late = ch.subscribe_with(&named).unwrap();
        let mut out = Vec::new();
        let mut first = Vec::new();
        for _ in 0..3 {
            assert!(late.try_recv(&mut out).unwrap());
            first.push(untag(&out).1);
        }
        drop(late); // two consumed, the third in hand
        // The away cursor is below the cached head: producers reuse the space between them
        // (then the name holds them: publish until no more goes in).
        let mut stuck = 0;
        while stuck < 100 {
            if p.try_publish(&tagged(7, seq, 40)).unwrap() {
                seq += 1;
                stuck = 0;
            } else {
                stuck += 1;
            }
            fast.drain_into(&mut buf, 1024).unwrap();
        }
        let mut late = ch.subscribe_with(&named).unwrap();
        let mut got = Vec::new();
        while late.try_recv(&mut out).unwrap() {
            let (prod, s) = untag(&out); // checks every byte: nothing torn
            assert_eq!(prod, 7);
            got.push(s);
        }
        assert!(
            got.windows(2).all(|w| w[0] + 1 == w[1]),
            "{sync:?}: in order, no gap"
        );
        assert_eq!(
            got.last().copied(),
            Some(seq - 1),
            "{sync:?}: up to the last one"
        );
        assert!(got[0] > first[2], "{sync:?}: the away name was lapped");
        assert_eq!(late.lost(), 0, "{sync:?}");
    }
}
