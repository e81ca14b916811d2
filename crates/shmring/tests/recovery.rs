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
    let mut p = ch.producer().unwrap();
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
    let points: &[(SyncMode, &str)] = &[
        (SyncMode::LockFree, "after_claim"),
        (SyncMode::LockFree, "mid_payload"),
        (SyncMode::LockFree, "before_commit"),
        (SyncMode::Semaphore, "holding_mutex"),
        (SyncMode::Semaphore, "after_claim"),
        (SyncMode::Semaphore, "mid_payload"),
        (SyncMode::Semaphore, "before_commit"),
    ];
    for kind in [Kind::Topic, Kind::Queue] {
        for &(sync, point) in points {
            let what = format!("{kind:?} {sync:?} {point}");
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
            let mut child = spawn_child(
                "child_hooked_producer",
                "hooked-producer",
                &n,
                &[("SHMRING_HOOK", format!("{point}:5"))],
            );
            let pid = child.id();
            wait_stopped(pid);
            let committed = 4;
            let killed = Instant::now();
            child.kill();
            // Another producer goes on; the subscriber must get past the dead claim.
            let mut p = ch.producer().unwrap();
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
