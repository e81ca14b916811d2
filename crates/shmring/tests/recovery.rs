//! Crash recovery with real processes stopped at named points and SIGKILLed there (feature
//! `test-hooks`). In both sync modes: a producer killed anywhere between claim and commit
//! (or holding the robust mutex) never wedges the channel, its uncommitted message is dropped
//! whole, and every committed message arrives exactly once.
mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::{Channel, Kind, OpenOptions, Policy, SyncMode};

fn opts(kind: Kind, sync: SyncMode) -> OpenOptions {
    OpenOptions {
        kind: Some(kind),
        sync: Some(sync),
        policy: Some(Policy::Block),
        capacity: Some(16384),
        max_message_size: Some(512),
        ..OpenOptions::create()
    }
}

/// Waits until process `pid` is stopped (state `T` in /proc), i.e. it reached its hook.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if state == Some("T") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never reached its hook"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Child role `role`: publishes tagged messages 0.. as producer `id` until its hook stops it.
fn hooked_producer(role: &str, id: u32) {
    let Some(name) = child_role(role) else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = if std::env::var_os("SHMRING_TEST_EXCLUSIVE").is_some() {
        ch.exclusive_producer().unwrap()
    } else {
        ch.producer().unwrap()
    };
    for seq in 0..u32::MAX {
        p.publish_timeout(&tagged(id, seq, 64), Some(Duration::from_secs(60)))
            .unwrap();
    }
}

/// Child: producer 1 (see `hooked_producer`).
#[test]
fn child_hooked_producer() {
    hooked_producer("hooked-producer", 1);
}

/// Child: producer 3 (see `hooked_producer`).
#[test]
fn child_hooked_producer_3() {
    hooked_producer("hooked-producer-3", 3);
}

/// Child: publishes tagged messages 0.. as producer 1 in batches of 4 (`try_publish_many`,
/// which claims a batch with one CAS) until its hook stops it.
#[test]
fn child_hooked_batch_producer() {
    let Some(name) = child_role("hooked-batch-producer") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = ch.producer().unwrap();
    for first in (0..u32::MAX - 4).step_by(4) {
        let batch: Vec<Vec<u8>> = (first..first + 4).map(|s| tagged(1, s, 64)).collect();
        let mut done = 0;
        while done < batch.len() {
            done += p
                .try_publish_many(batch[done..].iter().map(|m| &m[..]))
                .unwrap();
        }
    }
}

/// Child: subscribes and reads until its hook stops it.
#[test]
fn child_hooked_reader() {
    let Some(name) = child_role("hooked-reader") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    std::fs::write(std::env::var("SHMRING_OUT").unwrap(), "ready").unwrap();
    let mut buf = vec![0u8; 4096];
    loop {
        if sub.drain_into(&mut buf, 1).unwrap().count == 0 {
            sub.wait(Some(Duration::from_millis(50)));
        }
    }
}

fn receive(sub: &mut shmring::Subscriber, n: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut msg = Vec::new();
    while out.len() < n {
        assert!(
            sub.recv_timeout(&mut msg, Some(Duration::from_secs(30)))
                .unwrap(),
            "wedged after {} messages",
            out.len()
        );
        out.push(untag(&msg));
    }
    out
}

#[test]
fn producer_killed_at_every_point_never_wedges() {
    // (sync, point, exclusive): an exclusive producer claims with a store, not a CAS, and its
    // successor is exclusive too (it may join once the dead one's lock went with it).
    let points: &[(SyncMode, &str, bool)] = &[
        (SyncMode::LockFree, "after_claim", false),
        (SyncMode::LockFree, "mid_payload", false),
        (SyncMode::LockFree, "before_commit", false),
        (SyncMode::LockFree, "after_claim", true),
        (SyncMode::LockFree, "mid_payload", true),
        (SyncMode::LockFree, "before_commit", true),
        (SyncMode::Semaphore, "holding_mutex", false),
        (SyncMode::Semaphore, "after_claim", false),
        (SyncMode::Semaphore, "mid_payload", false),
        (SyncMode::Semaphore, "before_commit", false),
    ];
    for kind in [Kind::Topic, Kind::Queue] {
        for &(sync, point, exclusive) in points {
            let what = format!("{kind:?} {sync:?} {point} exclusive={exclusive}");
            let n = unique("kill");
            let _g = Unlink::new(&n);
            let ch = Channel::open(&n, &opts(kind, sync)).unwrap();
            let mut sub = ch.subscribe().unwrap();
            // The recovery bound is an option: exercise a short and a long one.
            sub.set_recovery_poll(Duration::from_millis(if point.len() % 2 == 0 {
                1
            } else {
                20
            }));
            // The 5th pass stops it: messages 0..4 are committed, number 4 is in flight.
            let mut env = vec![("SHMRING_HOOK", format!("{point}:5"))];
            if exclusive {
                env.push(("SHMRING_TEST_EXCLUSIVE", "1".into()));
            }
            let mut child = spawn_child("child_hooked_producer", "hooked-producer", &n, &env);
            let pid = child.id();
            wait_stopped(pid);
            let committed = 4;
            if exclusive {
                // Stopped, not dead: it still excludes every other producer.
                expect_code(ch.producer(), shmring::ErrorCode::Busy);
                expect_code(ch.exclusive_producer(), shmring::ErrorCode::Busy);
            }
            let killed = Instant::now();
            child.kill();
            // Another producer goes on; the subscriber must get past the dead claim.
            let mut p = if exclusive {
                ch.exclusive_producer().unwrap()
            } else {
                ch.producer().unwrap()
            };
            for seq in 0..10 {
                p.publish_timeout(&tagged(2, seq, 64), Some(Duration::from_secs(30)))
                    .unwrap_or_else(|e| panic!("{what}: publisher wedged: {e}"));
            }
            let got = receive(&mut sub, committed + 10);
            let recovered = killed.elapsed();
            let mine: Vec<_> = got.iter().filter(|m| m.0 == 1).map(|m| m.1).collect();
            let theirs: Vec<_> = got.iter().filter(|m| m.0 == 2).map(|m| m.1).collect();
            assert_eq!(
                mine,
                (0..committed as u32).collect::<Vec<_>>(),
                "{what}: committed ones, once"
            );
            assert_eq!(
                theirs,
                (0..10).collect::<Vec<_>>(),
                "{what}: the survivor's"
            );
            let mut rest = Vec::new();
            assert!(
                !sub.try_recv(&mut rest).unwrap(),
                "{what}: nothing else (no half message)"
            );
            eprintln!("{what}: recovered in {recovered:?}");
        }
    }
}

#[test]
fn reader_killed_mid_read_does_not_wedge_or_lose() {
    for sync in [SyncMode::LockFree, SyncMode::Semaphore] {
        for kind in [Kind::Topic, Kind::Queue] {
            let what = format!("{kind:?} {sync:?}");
            let n = unique("rkill");
            let _g = Unlink::new(&n);
            let ch = Channel::open(&n, &opts(kind, sync)).unwrap();
            let out = std::env::temp_dir()
                .join(format!("{n}.ready"))
                .to_string_lossy()
                .into_owned();
            let mut child = spawn_child(
                "child_hooked_reader",
                "hooked-reader",
                &n,
                &[
                    ("SHMRING_HOOK", "mid_read:3".into()),
                    ("SHMRING_OUT", out.clone()),
                ],
            );
            wait_for(&out);
            let _ = std::fs::remove_file(&out);
            let mut p = ch.producer().unwrap();
            for seq in 0..3 {
                p.publish_timeout(&tagged(1, seq, 64), Some(Duration::from_secs(30)))
                    .unwrap();
            }
            wait_stopped(child.id());
            child.kill();
            // A new reader and the producer go on; a queue's stopped take never happened,
            // so the message it was reading is still there for the next consumer.
            let mut sub = ch.subscribe().unwrap();
            let first = if kind == Kind::Queue { 2 } else { 3 };
            std::thread::scope(|s| {
                s.spawn(|| {
                    for seq in 3..2000 {
                        p.publish_timeout(&tagged(1, seq, 64), Some(Duration::from_secs(30)))
                            .unwrap_or_else(|e| panic!("{what}: publisher wedged at {seq}: {e}"));
                    }
                });
                let got = receive(&mut sub, (2000 - first) as usize);
                let want: Vec<_> = (first..2000).map(|s| (1, s)).collect();
                assert_eq!(
                    got, want,
                    "{what}: every message after the kill, once, in order"
                );
            });
        }
    }
}

fn wait_for(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(path).exists() {
        assert!(Instant::now() < deadline, "{path} never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn batch_producer_killed_mid_batch_never_wedges() {
    // Batches of 4 records, each claimed with one CAS, every header written before the first
    // payload. (point, nth pass, messages committed before the stop)
    let points: &[(&str, u32, u32)] = &[
        ("after_claim", 2, 4),   // second batch claimed, nothing of it written
        ("mid_payload", 6, 5), // second batch: record 4 committed, 5 half written, 6 and 7 claimed
        ("before_commit", 8, 7), // second batch: its last record written, not committed
    ];
    for kind in [Kind::Topic, Kind::Queue] {
        for &(point, nth, committed) in points {
            for resume in [true, false] {
                let what = format!("{kind:?} batch {point}:{nth}, resumed: {resume}");
                let n = unique("bkill");
                let _g = Unlink::new(&n);
                let ch = Channel::open(&n, &opts(kind, SyncMode::LockFree)).unwrap();
                let mut sub = ch.subscribe().unwrap();
                let mut child = spawn_child(
                    "child_hooked_batch_producer",
                    "hooked-batch-producer",
                    &n,
                    &[("SHMRING_HOOK", format!("{point}:{nth}"))],
                );
                wait_stopped(child.id());
                // Stopped, not dead: its claim is waited for, never taken.
                let mut msg = Vec::new();
                let mut early = Vec::new();
                while sub
                    .recv_timeout(&mut msg, Some(Duration::from_millis(30)))
                    .unwrap()
                {
                    early.push(untag(&msg));
                }
                assert_eq!(
                    early.len(),
                    committed as usize,
                    "{what}: a stopped producer's claim"
                );
                if resume {
                    // Its claim was left alone: it finishes the batch and goes on, in order.
                    // SAFETY: plain kill(2) on our own child.
                    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
                    let mut got = early;
                    got.extend(receive(&mut sub, 16));
                    let mine: Vec<_> = got.iter().map(|m| m.1).collect();
                    assert_eq!(mine, (0..committed + 16).collect::<Vec<_>>(), "{what}");
                    child.kill();
                    continue;
                }
                child.kill();
                let mut p = ch.producer().unwrap();
                for seq in 0..10 {
                    p.publish_timeout(&tagged(2, seq, 64), Some(Duration::from_secs(30)))
                        .unwrap_or_else(|e| panic!("{what}: publisher wedged: {e}"));
                }
                let mut got = early;
                got.extend(receive(&mut sub, 10));
                let mine: Vec<_> = got.iter().filter(|m| m.0 == 1).map(|m| m.1).collect();
                let theirs: Vec<_> = got.iter().filter(|m| m.0 == 2).map(|m| m.1).collect();
                assert_eq!(
                    mine,
                    (0..committed).collect::<Vec<_>>(),
                    "{what}: committed ones, once"
                );
                assert_eq!(
                    theirs,
                    (0..10).collect::<Vec<_>>(),
                    "{what}: the survivor's"
                );
                assert!(
                    !sub.try_recv(&mut msg).unwrap(),
                    "{what}: nothing else (no half message)"
                );
            }
        }
    }
}

/// A dead claim with nothing written, followed by a *live* claim with nothing written yet
/// (its producer stopped between its CAS and its header): recovery abandons the dead claim
/// only, up to where the live producer's slot says its claim starts, and the live producer's
/// messages all arrive once it goes on. (Abandoning up to `tail` would swallow its first.)
#[test]
fn dead_claim_before_a_stalled_live_claim_takes_only_its_own_bytes() {
    for kind in [Kind::Topic, Kind::Queue] {
        let what = format!("{kind:?}");
        let n = unique("stall");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(kind, SyncMode::LockFree)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        sub.set_recovery_poll(Duration::from_millis(1));
        // A: messages 0..3 committed, its 5th claim made and nothing of it written.
        let mut dead = spawn_child(
            "child_hooked_producer",
            "hooked-producer",
            &n,
            &[("SHMRING_HOOK", "after_claim:5".to_string())],
        );
        wait_stopped(dead.id());
        // B: its first claim, right after A's, made and nothing of it written.
        let mut live = spawn_child(
            "child_hooked_producer_3",
            "hooked-producer-3",
            &n,
            &[("SHMRING_HOOK", "after_claim:1".to_string())],
        );
        wait_stopped(live.id());
        dead.kill();
        let mut got = receive(&mut sub, 4);
        // The reader now waits at A's dead claim, recovers it and waits at B's live one.
        let mut msg = Vec::new();
        assert!(
            !sub.recv_timeout(&mut msg, Some(Duration::from_millis(200)))
                .unwrap(),
            "{what}: nothing committed while B is stopped"
        );
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(live.id() as i32, libc::SIGCONT) };
        got.extend(receive(&mut sub, 3));
        live.kill();
        let a: Vec<_> = got.iter().filter(|m| m.0 == 1).map(|m| m.1).collect();
        let b: Vec<_> = got.iter().filter(|m| m.0 == 3).map(|m| m.1).collect();
        assert_eq!(a, vec![0, 1, 2, 3], "{what}: A's committed ones");
        assert_eq!(b, vec![0, 1, 2], "{what}: B's, its first included");
    }
}

/// Semaphore mode, policy `fail`: a producer killed holding the mutex leaves its claim in its
/// slot too. The next mutex holder repairs the record *and* withdraws that claim, so the
/// space behind it can be reused again: publishing goes on, lap after lap, without a
/// `RingFull` that no waiting publisher would ever clear (under `fail` nobody waits).
#[test]
fn semaphore_holder_killed_under_policy_fail_does_not_pin_the_ring() {
    let n = unique("semfail");
    let _g = Unlink::new(&n);
    let ch = Channel::open(
        &n,
        &OpenOptions {
            policy: Some(Policy::Fail),
            ..opts(Kind::Topic, SyncMode::Semaphore)
        },
    )
    .unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut child = spawn_child(
        "child_hooked_producer",
        "hooked-producer",
        &n,
        &[("SHMRING_HOOK", "mid_payload:5".to_string())],
    );
    wait_stopped(child.id());
    child.kill();
    let first = receive(&mut sub, 4);
    assert_eq!(
        first.iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    // 2,000 messages of 64 bytes: about ten laps of the 16 KiB ring, read as they go.
    let mut p = ch.producer().unwrap();
    let mut msg = Vec::new();
    let mut got = Vec::new();
    for seq in 0..2000 {
        let m = tagged(2, seq, 64);
        let mut tries = 0;
        loop {
            match p.try_publish(&m) {
                Ok(true) => break,
                Err(e) if e.code() == shmring::ErrorCode::RingFull && tries < 2 => {
                    // The subscriber catches up; then there must be room again.
                    while sub.try_recv(&mut msg).unwrap() {
                        got.push(untag(&msg));
                    }
                    tries += 1;
                }
                other => panic!("message {seq}: {other:?} after the subscriber caught up"),
            }
        }
    }
    while sub.try_recv(&mut msg).unwrap() {
        got.push(untag(&msg));
    }
    assert_eq!(
        got.iter().map(|m| m.1).collect::<Vec<_>>(),
        (0..2000).collect::<Vec<_>>()
    );
}

/// Publishes `msg` with `try_publish` alone (no waiting call), retrying for up to 3 s while
/// `drain` reads; panics if the ring stays full that long: a wedge.
fn publish_retrying(p: &mut shmring::Producer, msg: &[u8], what: &str, mut drain: impl FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match p.try_publish(msg) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) if e.code() == shmring::ErrorCode::RingFull => {}
            Err(e) => panic!("{what}: {e}"),
        }
        drain();
        assert!(
            Instant::now() < deadline,
            "{what}: the ring stayed full for 3 s though every live reader kept up (wedged)"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A topic subscriber SIGKILLed while a live one keeps reading everything: under policy
/// `fail` (and for a `try_publish`-only caller under `block`), nobody waits for room, so the
/// dead subscriber's slot must be reclaimed on the ring-full path itself, or its cursor holds
/// the ring full for ever. Both sync modes; 2,000 64-byte messages through a 4 KiB ring.
#[test]
fn dead_subscriber_never_wedges_callers_that_do_not_wait() {
    for sync in [SyncMode::LockFree, SyncMode::Semaphore] {
        for policy in [Policy::Fail, Policy::Block] {
            let what = format!("{sync:?} {policy:?}");
            let n = unique("deadsub");
            let _g = Unlink::new(&n);
            let ch = Channel::open(
                &n,
                &OpenOptions {
                    policy: Some(policy),
                    capacity: Some(4096),
                    max_message_size: Some(64),
                    ..opts(Kind::Topic, sync)
                },
            )
            .unwrap();
            let mut sub = ch.subscribe().unwrap();
            let out = std::env::temp_dir()
                .join(format!("{n}.ready"))
                .to_string_lossy()
                .into_owned();
            let mut child = spawn_child(
                "child_hooked_reader",
                "hooked-reader",
                &n,
                &[("SHMRING_OUT", out.clone())],
            );
            wait_for(&out);
            let _ = std::fs::remove_file(&out);
            child.kill();
            let mut p = ch.producer().unwrap();
            let mut got = Vec::new();
            let mut msg = Vec::new();
            for seq in 0..2000 {
                publish_retrying(
                    &mut p,
                    &tagged(1, seq, 64),
                    &format!("{what} #{seq}"),
                    || {
                        while sub.try_recv(&mut msg).unwrap() {
                            got.push(untag(&msg).1);
                        }
                    },
                );
            }
            while sub.try_recv(&mut msg).unwrap() {
                got.push(untag(&msg).1);
            }
            assert_eq!(got, (0..2000).collect::<Vec<_>>(), "{what}");
        }
    }
}

/// A lock-free producer killed mid-claim under policy `fail`: the reader recovers its
/// record, and the dead slot's `claim` must not keep holding back the reuse of space (it is
/// withdrawn with the recovery, and the slot is reclaimed when the ring is full), or every
/// publish is `RingFull` a lap later. Killed at each point, with nothing, half or all of its
/// record written.
#[test]
fn dead_producer_claim_never_pins_a_ring_nobody_waits_on() {
    for point in ["after_claim", "mid_payload", "before_commit"] {
        for kind in [Kind::Topic, Kind::Queue] {
            let what = format!("{kind:?} {point}");
            let n = unique("deadclaim");
            let _g = Unlink::new(&n);
            let ch = Channel::open(
                &n,
                &OpenOptions {
                    policy: Some(Policy::Fail),
                    capacity: Some(4096),
                    max_message_size: Some(64),
                    ..opts(kind, SyncMode::LockFree)
                },
            )
            .unwrap();
            let mut sub = ch.subscribe().unwrap();
            sub.set_recovery_poll(Duration::from_millis(1));
            let mut child = spawn_child(
                "child_hooked_producer",
                "hooked-producer",
                &n,
                &[("SHMRING_HOOK", format!("{point}:5"))],
            );
            wait_stopped(child.id());
            child.kill();
            let mut got = receive(&mut sub, 4);
            let mut p = ch.producer().unwrap();
            let mut msg = Vec::new();
            for seq in 0..2000 {
                publish_retrying(
                    &mut p,
                    &tagged(2, seq, 64),
                    &format!("{what} #{seq}"),
                    || {
                        while sub.try_recv(&mut msg).unwrap() {
                            got.push(untag(&msg));
                        }
                    },
                );
            }
            while got.len() < 2004
                && sub
                    .recv_timeout(&mut msg, Some(Duration::from_secs(10)))
                    .unwrap()
            {
                got.push(untag(&msg));
            }
            let mine: Vec<_> = got.iter().filter(|m| m.0 == 1).map(|m| m.1).collect();
            let theirs: Vec<_> = got.iter().filter(|m| m.0 == 2).map(|m| m.1).collect();
            assert_eq!(
                mine,
                vec![0, 1, 2, 3],
                "{what}: the dead producer's committed ones"
            );
            assert_eq!(
                theirs,
                (0..2000).collect::<Vec<_>>(),
                "{what}: every one, once"
            );
        }
    }
}

/// Two producers killed right after adjacent claims, nothing of either written, and both
/// slots reclaimed before a reader gets there (the normal order under back-pressure; here a
/// full participant table makes the next join sweep them): the reader cannot tell where one
/// dead claim ends and the other begins, and need not: it skips both as one extent, however
/// long, and every message after them arrives.
#[test]
fn adjacent_dead_claims_are_skipped_as_one() {
    for kind in [Kind::Topic, Kind::Queue] {
        for dead in [2u32, 3] {
            let what = format!("{kind:?}, {dead} adjacent dead claims");
            let n = unique("adjacent");
            let _g = Unlink::new(&n);
            let ch = Channel::open(
                &n,
                &OpenOptions {
                    max_message_size: Some(64),
                    max_participants: Some(dead + 1),
                    ..opts(kind, SyncMode::LockFree)
                },
            )
            .unwrap();
            let mut sub = ch.subscribe().unwrap();
            sub.set_recovery_poll(Duration::from_millis(1));
            let roles = ["hooked-producer", "hooked-producer-3", "hooked-producer"];
            let tests = [
                "child_hooked_producer",
                "child_hooked_producer_3",
                "child_hooked_producer",
            ];
            let mut children: Vec<_> = (0..dead as usize)
                .map(|k| {
                    let c = spawn_child(
                        tests[k],
                        roles[k],
                        &n,
                        &[("SHMRING_HOOK", "after_claim:1".to_string())],
                    );
                    wait_stopped(c.id());
                    c
                })
                .collect();
            for c in &mut children {
                c.kill();
            }
            // The table is full (the subscriber and the dead producers): this join sweeps
            // the dead slots and takes one of them.
            let mut p = ch.producer().unwrap();
            for seq in 0..20 {
                p.publish_timeout(&tagged(2, seq, 64), Some(Duration::from_secs(30)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            let got = receive(&mut sub, 20);
            assert_eq!(
                got,
                (0..20).map(|s| (2, s)).collect::<Vec<_>>(),
                "{what}: every message after the dead claims"
            );
        }
    }
}

/// Child: a reader (topic subscriber or queue consumer) that writes what it received to
/// `SHMRING_OUT`, one `producer seq ok` line per message (`ok`: the payload is whole), and
/// `error <message>` if a receive failed. It stops once nothing arrived for 3 s.
#[test]
fn child_recording_reader() {
    let Some(name) = child_role("recording-reader") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    sub.set_recovery_poll(Duration::from_millis(1));
    let out = std::env::var("SHMRING_OUT").unwrap();
    std::fs::write(format!("{out}.ready"), "ready").unwrap();
    let mut lines = String::new();
    let mut msg = Vec::new();
    loop {
        match sub.recv_timeout(&mut msg, Some(Duration::from_secs(3))) {
            Ok(true) => {
                let producer = u32::from_le_bytes(msg[0..4].try_into().unwrap());
                let seq = u32::from_le_bytes(msg[4..8].try_into().unwrap());
                let ok = msg == tagged(producer, seq, msg.len());
                lines.push_str(&format!("{producer} {seq} {ok}\n"));
            }
            Ok(false) => break,
            Err(e) => {
                lines.push_str(&format!("error {e}\n"));
                break;
            }
        }
    }
    std::fs::write(&out, lines).unwrap();
}

/// Reads a [`child_recording_reader`]'s record: its messages, or panics with its error or a
/// damaged message.
fn recorded(path: &str, what: &str) -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
    let _ = std::fs::remove_file(path);
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_ne!(f[0], "error", "{what}: the paused recoverer failed: {l}");
            assert_eq!(
                f[2], "true",
                "{what}: the paused recoverer got a torn message: {l}"
            );
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect()
}

/// Two queue consumers recover the same dead claim, one of them paused between judging it
/// dead and acting on it (the `judged_dead` test point): the other skips it, takes past it,
/// and producers reuse its bytes on the next lap before the paused one goes on. A recoverer
/// that then wrote over the dead claim would destroy a committed message of the new lap;
/// one that moves only the queue head, with a CAS from the position it judged, changes
/// nothing. Every committed message is delivered exactly once, whole.
#[test]
fn paused_queue_recoverer_loses_nothing_when_the_space_is_reused() {
    let n = unique("qrace");
    let _g = Unlink::new(&n);
    let ch = Channel::open(
        &n,
        &OpenOptions {
            capacity: Some(4096),
            max_message_size: Some(64),
            ..opts(Kind::Queue, SyncMode::LockFree)
        },
    )
    .unwrap();
    // A dead producer: messages 0..=3 committed at 0, 80, 160, 240; its claim at 320 is dead.
    let mut dead = spawn_child(
        "child_hooked_producer",
        "hooked-producer",
        &n,
        &[("SHMRING_HOOK", "after_claim:5".to_string())],
    );
    wait_stopped(dead.id());
    dead.kill();
    // The first consumer takes what is committed, judges the claim at 320 dead and stops.
    let out = std::env::temp_dir()
        .join(format!("{n}.c1"))
        .to_string_lossy()
        .into_owned();
    let c1 = spawn_child(
        "child_recording_reader",
        "recording-reader",
        &n,
        &[
            ("SHMRING_HOOK", "judged_dead:1".to_string()),
            ("SHMRING_OUT", out.clone()),
        ],
    );
    wait_stopped(c1.id());
    let _ = std::fs::remove_file(format!("{out}.ready"));
    // The second consumer recovers the same claim and takes past it; a producer then fills
    // this lap (messages at 400 + 80k up to 4080, padding to 4096) and the next one up to
    // position 4096 + 320, the dead claim's offset, and beyond: those last records stay
    // unread while the first consumer goes on.
    let mut c2 = ch.subscribe().unwrap();
    c2.set_recovery_poll(Duration::from_millis(1));
    let mut p = ch.producer().unwrap();
    let mut got = Vec::new();
    let mut msg = Vec::new();
    for seq in 0..54u32 {
        p.publish_timeout(&tagged(2, seq, 64), Some(Duration::from_secs(30)))
            .unwrap();
        if seq < 50 {
            assert!(
                c2.recv_timeout(&mut msg, Some(Duration::from_secs(30)))
                    .unwrap(),
                "the live consumer got past the dead claim"
            );
            got.push(untag(&msg));
        }
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(c1.id() as i32, libc::SIGCONT) };
    while c2
        .recv_timeout(&mut msg, Some(Duration::from_secs(4)))
        .unwrap()
    {
        got.push(untag(&msg));
    }
    c1.finish(Duration::from_secs(60));
    got.extend(recorded(&out, "queue"));
    got.sort_unstable();
    let mut want: Vec<_> = (0..4)
        .map(|s| (1, s))
        .chain((0..54).map(|s| (2, s)))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "every committed message exactly once");
}

/// A dead claim with nothing written, 16 bytes before the end of the lap in an `overwrite`
/// channel (too short for a record: the claim padded to the end and put its record at the
/// start of the next lap). Two subscribers recover it, one paused between reading the
/// header and scanning for the claim's end while the other recovers it and reads on. The
/// paused one must go on with no error (a recoverer that wrote padding and an abandoned
/// record made the other's scan find a record 16 bytes after the claim: "splits a
/// header", `CorruptSegment` for ever). The same with 8 bytes left in a `block` channel.
#[test]
fn two_recoverers_of_a_padded_empty_claim_agree() {
    // (policy, bytes of filler messages before the dead claim, so that it starts 16 or 8
    // bytes before the end of the 4 KiB lap)
    let cases: &[(Policy, &[usize])] = &[
        // records of 88 bytes (24 + 64), then one of 120 (24 + 96): 45 * 88 + 120 = 4080
        (Policy::Overwrite, &[64; 45]),
        // the same, then one of 128 (24 + 104): 45 * 88 + 128 = 4088
        (Policy::Block, &[64; 45]),
    ];
    for &(policy, filler) in cases {
        let last = if policy == Policy::Overwrite { 96 } else { 104 };
        let what = format!("{policy:?}");
        let n = unique("padrace");
        let _g = Unlink::new(&n);
        let ch = Channel::open(
            &n,
            &OpenOptions {
                policy: Some(policy),
                capacity: Some(4096),
                max_message_size: Some(128),
                ..opts(Kind::Topic, SyncMode::LockFree)
            },
        )
        .unwrap();
        let mut r1 = ch.subscribe().unwrap();
        r1.set_recovery_poll(Duration::from_millis(1));
        let out = std::env::temp_dir()
            .join(format!("{n}.r2"))
            .to_string_lossy()
            .into_owned();
        let r2 = spawn_child(
            "child_recording_reader",
            "recording-reader",
            &n,
            &[
                ("SHMRING_HOOK", "judged_dead:1".to_string()),
                ("SHMRING_OUT", out.clone()),
            ],
        );
        wait_for(&format!("{out}.ready"));
        let _ = std::fs::remove_file(format!("{out}.ready"));
        let mut p = ch.producer().unwrap();
        let mut count = 0u32;
        for &len in filler.iter().chain(&[last]) {
            p.publish_timeout(&tagged(2, count, len), Some(Duration::from_secs(30)))
                .unwrap();
            count += 1;
        }
        // Both readers get to the end of the filler before the claim is made (the ring has
        // room for it then, and an overwrite reader is not lapped).
        let mut got = receive(&mut r1, count as usize);
        let mut dead = spawn_child(
            "child_hooked_producer",
            "hooked-producer",
            &n,
            &[("SHMRING_HOOK", "after_claim:1".to_string())],
        );
        wait_stopped(dead.id());
        dead.kill();
        wait_stopped(r2.id());
        for seq in count..count + 10 {
            p.publish_timeout(&tagged(2, seq, 64), Some(Duration::from_secs(30)))
                .unwrap();
        }
        got.extend(receive(&mut r1, 10));
        assert_eq!(
            got,
            (0..count + 10).map(|s| (2, s)).collect::<Vec<_>>(),
            "{what}: the first recoverer"
        );
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(r2.id() as i32, libc::SIGCONT) };
        r2.finish(Duration::from_secs(60));
        assert_eq!(
            recorded(&out, &what),
            (0..count + 10).map(|s| (2, s)).collect::<Vec<_>>(),
            "{what}: the paused recoverer"
        );
    }
}

/// A producer in a PID namespace of its own (its pid means nothing here), stopped between
/// its claim and its commit for 60 times the recovery poll: readers here never take its
/// claim (they would have after one poll, by pid); once it goes on, every message arrives,
/// the stopped one included.
#[test]
fn stopped_producer_in_another_pid_namespace_is_never_judged_dead() {
    if !can_unshare("stopped_producer_in_another_pid_namespace_is_never_judged_dead") {
        return;
    }
    for kind in [Kind::Topic, Kind::Queue] {
        let what = format!("{kind:?}");
        let n = unique("nsprod");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(kind, SyncMode::LockFree)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        sub.set_recovery_poll(Duration::from_millis(5));
        let mut child = spawn_child_under(
            &IN_PID_NAMESPACE,
            None,
            "child_hooked_producer",
            "hooked-producer",
            &n,
            &[("SHMRING_HOOK", "mid_payload:5".to_string())],
        );
        let pid = find_stopped_child(&n);
        let mut got = receive(&mut sub, 4);
        let mut msg = Vec::new();
        assert!(
            !sub.recv_timeout(&mut msg, Some(Duration::from_millis(300)))
                .unwrap(),
            "{what}: nothing committed while the producer is stopped"
        );
        // SAFETY: plain kill(2) on our own grandchild.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        got.extend(receive(&mut sub, 3));
        // SAFETY: as above. It goes first, so that it is gone before the name is unlinked.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        child.kill();
        let seqs: Vec<_> = got.iter().map(|m| m.1).collect();
        assert_eq!(
            seqs,
            (0..7).collect::<Vec<_>>(),
            "{what}: every message, once"
        );
    }
}

/// Semaphore mode: a mutex holder killed inside its unlock, after it released the lock word
/// and before it woke the sleepers (simulated: the holder is stopped holding the mutex while
/// a publisher here sleeps on it; the word is then cleared through the file and the holder
/// killed, so the kernel's robust-list cleanup finds nothing to do and wakes nobody). The
/// sleeper is not left asleep on a free mutex: it takes it within a lock slice and publishes.
#[test]
fn semaphore_sleeper_survives_a_holder_killed_inside_its_unlock() {
    let n = unique("semwake");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &opts(Kind::Topic, SyncMode::Semaphore)).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut child = spawn_child(
        "child_hooked_producer",
        "hooked-producer",
        &n,
        &[("SHMRING_HOOK", "holding_mutex:5".to_string())],
    );
    wait_stopped(child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (ch, done) = (ch.clone(), done.clone());
        std::thread::spawn(move || {
            let mut p = ch.producer().unwrap();
            p.publish_timeout(&tagged(2, 0, 64), Some(Duration::from_secs(60)))
                .unwrap();
            done.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    // Long enough for the publisher to be asleep on the mutex (its waiter bit set).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(std::sync::atomic::Ordering::Acquire),
        "published past a held mutex"
    );
    patch(&n, shmring::layout::MUTEX_OFFSET, &0u32.to_ne_bytes());
    child.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done.load(std::sync::atomic::Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "the publisher sleeps on a free mutex (a lost wake-up)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    publisher.join().unwrap();
    let got = receive(&mut sub, 5);
    let mine: Vec<_> = got.iter().filter(|m| m.0 == 2).collect();
    assert_eq!(mine, vec![&(2, 0)], "{got:?}");
}
