//! Real processes on one channel. The test binary re-runs itself: a parent test spawns
//! `current_exe() --exact child_<role> --nocapture --test-threads=1` with the role and channel
//! in the environment; the `child_*` test functions return at once in a normal test run.
//! Every child is killed and reaped, and every name unlinked, even when a test panics.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::time::{Duration, Instant};

use common::{
    Unlink, child_role, env_u64, fnv, frames, sleep_until_ns, spawn_child, tagged, unique, untag,
};
use shmring::{Channel, OpenOptions, Role, SyncMode};

const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

const PER_PRODUCER: u32 = 100_000;

/// Child: publishes `SHMRING_TEST_COUNT` tagged messages as producer `SHMRING_TEST_ID`.
#[test]
fn child_producer() {
    let Some(name) = child_role("producer") else {
        return;
    };
    let id = env_u64("SHMRING_TEST_ID") as u32;
    let count = env_u64("SHMRING_TEST_COUNT") as u32;
    // Attach with no options: the segment's own settings are adopted.
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    assert!(!ch.created());
    let mut p = ch.producer().unwrap();
    for seq in 0..count {
        let msg = tagged(id, seq, 8 + (seq as usize * 7 + id as usize) % 57);
        p.publish_timeout(&msg, Some(Duration::from_secs(30)))
            .unwrap();
    }
}

/// Two producer processes × 100,000 messages, one subscriber in this process: each
/// producer's sequence arrives in order, nothing is lost or duplicated, checksums agree.
#[test]
fn two_producer_processes_keep_per_producer_order() {
    for sync in MODES {
        let n = unique("mp");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(64 * 1024),
            max_message_size: Some(1024),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut children: Vec<_> = (0..2u32)
            .map(|id| {
                spawn_child(
                    "child_producer",
                    "producer",
                    &n,
                    &[
                        ("SHMRING_TEST_ID", id.to_string()),
                        ("SHMRING_TEST_COUNT", PER_PRODUCER.to_string()),
                    ],
                )
            })
            .collect();
        let mut next = [0u32; 2];
        let mut sum = 0u64;
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let mut idle_since = Instant::now();
        while total < 2 * PER_PRODUCER {
            let d = sub.drain_into(&mut buf, usize::MAX).unwrap();
            if d.count == 0 {
                // A child that died would leave us waiting: its failure is reported here.
                for c in &mut children {
                    let _ = c.exited();
                }
                assert!(
                    idle_since.elapsed() < Duration::from_secs(30),
                    "nothing for 30 s after {total} messages ({next:?})"
                );
                sub.wait(Some(Duration::from_millis(100)));
                continue;
            }
            idle_since = Instant::now();
            for f in frames(&buf[..d.bytes]) {
                let (id, seq) = untag(f);
                assert!(id < 2, "unknown producer {id}");
                assert_eq!(seq, next[id as usize], "producer {id} out of order");
                next[id as usize] += 1;
                sum = sum.wrapping_add(fnv(f));
                total += 1;
            }
        }
        for c in children {
            c.finish(Duration::from_secs(30));
        }
        let expected = (0..2u32)
            .flat_map(|id| {
                (0..PER_PRODUCER)
                    .map(move |seq| tagged(id, seq, 8 + (seq as usize * 7 + id as usize) % 57))
            })
            .fold(0u64, |s, m| s.wrapping_add(fnv(&m)));
        assert_eq!(sum, expected, "checksum");
        assert_eq!(next, [PER_PRODUCER; 2]);
        assert_eq!(sub.drain_into(&mut buf, usize::MAX).unwrap().count, 0);
        // The producers released their slots when they exited.
        assert!(
            ch.participants()
                .iter()
                .all(|p| p.role != Some(Role::Producer))
        );
    }
}

const RACE_ROUNDS: u64 = 50;
const RACE_GAP_NS: u64 = 20_000_000;

fn race_name(prefix: &str, round: u64) -> String {
    format!("{prefix}-{round}")
}

/// Child of the create race: round `i` at `SHMRING_TEST_T0 + i * RACE_GAP_NS` opens
/// `<prefix>-<i>` with create, subscribes, reports `[i, created]` on `<prefix>-ctl`, waits for
/// the parent's message there, answers with its own, and receives that too.
#[test]
fn child_racer() {
    let Some(prefix) = child_role("racer") else {
        return;
    };
    let t0 = env_u64("SHMRING_TEST_T0");
    let ctl = Channel::open(&format!("{prefix}-ctl"), &OpenOptions::default()).unwrap();
    let mut report = ctl.producer().unwrap();
    let mut out = Vec::new();
    let wait = Some(Duration::from_secs(10));
    for i in 0..RACE_ROUNDS {
        sleep_until_ns(t0 + i * RACE_GAP_NS);
        let ch = Channel::open(&race_name(&prefix, i), &OpenOptions::create()).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        report
            .publish_timeout(&[i as u8, ch.created() as u8], wait)
            .unwrap();
        assert!(sub.recv_timeout(&mut out, wait).unwrap(), "round {i}");
        assert_eq!(out, format!("parent {i}").as_bytes());
        p.publish_timeout(format!("child {i}").as_bytes(), wait)
            .unwrap();
        assert!(sub.recv_timeout(&mut out, wait).unwrap(), "round {i}");
        assert_eq!(out, format!("child {i}").as_bytes());
    }
}

/// This process and a child open the same fresh name with `create` at the same instant,
/// 50 times: exactly one of them reports `created()`, and both publish and receive.
#[test]
fn create_race_between_processes() {
    let prefix = unique("race");
    let mut guard = Unlink::new(&format!("{prefix}-ctl"));
    for i in 0..RACE_ROUNDS {
        guard.add(&race_name(&prefix, i));
    }
    let ctl = Channel::open(&format!("{prefix}-ctl"), &OpenOptions::create()).unwrap();
    let mut reports = ctl.subscribe().unwrap();
    // Leave the child time to start; if it is late, rounds just begin as soon as it is there.
    let t0 = shmring::process::now_ns() + 300_000_000;
    let child = spawn_child(
        "child_racer",
        "racer",
        &prefix,
        &[("SHMRING_TEST_T0", t0.to_string())],
    );
    let mut out = Vec::new();
    let wait = Some(Duration::from_secs(10));
    let mut child_created = 0;
    for i in 0..RACE_ROUNDS {
        sleep_until_ns(t0 + i * RACE_GAP_NS);
        let name = race_name(&prefix, i);
        let ch = Channel::open(&name, &OpenOptions::create()).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        assert!(reports.recv_timeout(&mut out, wait).unwrap(), "round {i}");
        assert_eq!(out[0], i as u8);
        let theirs = out[1] == 1;
        child_created += theirs as u32;
        assert!(
            ch.created() != theirs,
            "round {i}: parent created {}, child created {theirs}",
            ch.created()
        );
        p.publish_timeout(format!("parent {i}").as_bytes(), wait)
            .unwrap();
        assert!(sub.recv_timeout(&mut out, wait).unwrap());
        assert_eq!(out, format!("parent {i}").as_bytes());
        assert!(sub.recv_timeout(&mut out, wait).unwrap(), "round {i}");
        assert_eq!(out, format!("child {i}").as_bytes());
        shmring::unlink(&name).unwrap();
    }
    child.finish(Duration::from_secs(30));
    eprintln!(
        "create race: the child created {child_created} of {RACE_ROUNDS} segments, this process the rest"
    );
}

/// Child: subscribes and then sleeps, holding its cursor still, until killed (or 60 s).
#[test]
fn child_idle_subscriber() {
    let Some(name) = child_role("idle-subscriber") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let _sub = ch.subscribe().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// Child: takes a producer slot and then sleeps until killed (or 60 s).
#[test]
fn child_idle_producer() {
    let Some(name) = child_role("idle-producer") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let _p = ch.producer().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// Waits until the child `pid` holds an active slot of `role` in `ch`.
fn wait_for_slot(ch: &Channel, child: &mut common::ChildGuard, role: Role) {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ch
        .participants()
        .iter()
        .any(|s| s.pid == pid && s.role == Some(role) && s.alive)
    {
        assert!(!child.exited(), "the child exited before joining");
        assert!(Instant::now() < deadline, "the child never joined");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A full participant table: a new producer is refused while every owner lives, and gets the
/// slot of one that was SIGKILLed.
#[test]
fn dead_producer_slot_is_reclaimed_when_the_table_is_full() {
    for sync in MODES {
        let n = unique("deadprod");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(4096),
            max_participants: Some(2),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut child = spawn_child("child_idle_producer", "idle-producer", &n, &[]);
        wait_for_slot(&ch, &mut child, Role::Producer);
        let msg = match ch.producer() {
            Ok(_) => panic!("a third participant in a table of 2"),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains(
                "no free participant slot (all 2 held by live processes: 1 producer, 1 subscriber)"
            ),
            "{msg}"
        );
        child.kill();
        let mut p = ch
            .producer()
            .expect("the dead producer's slot is reclaimed");
        assert!(p.try_publish(b"after").unwrap());
        let mut out = Vec::new();
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, b"after");
    }
}

/// A subscriber process SIGKILLed while the ring is full of messages it never read: a
/// publisher waiting for room gets it, because the dead subscriber's slot is reclaimed.
#[test]
fn dead_subscriber_is_reclaimed() {
    for sync in MODES {
        let n = unique("deadsub");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(4096),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let mut p = ch.producer().unwrap();
        let mut child = spawn_child("child_idle_subscriber", "idle-subscriber", &n, &[]);
        let pid = child.id();
        wait_for_slot(&ch, &mut child, Role::Subscriber);
        let mut sent = 0;
        while p.try_publish(&[9u8; 64]).unwrap() {
            sent += 1;
        }
        assert_eq!(
            sent,
            4096 / shmring::layout::record::record_len(64),
            "the ring holds 4096 / record_len(64) messages"
        );
        assert!(
            !p.try_publish(&[9u8; 64]).unwrap(),
            "the live subscriber holds the ring full"
        );
        child.kill();
        p.publish_timeout(&[10u8; 64], Some(Duration::from_secs(10)))
            .expect("the dead subscriber's slot is reclaimed");
        assert!(ch.participants().iter().all(|s| s.pid != pid));
    }
}

/// Same, but the producer is already waiting when the subscriber dies.
#[test]
fn subscriber_killed_while_a_producer_waits() {
    for sync in MODES {
        let n = unique("deadsub-wait");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(4096),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let mut child = spawn_child("child_idle_subscriber", "idle-subscriber", &n, &[]);
        wait_for_slot(&ch, &mut child, Role::Subscriber);
        let ch2 = ch.clone();
        let t = std::thread::spawn(move || {
            let mut p = ch2.producer().unwrap();
            let mut sent = 0u32;
            while sent < 1000 {
                p.publish_timeout(&sent.to_le_bytes(), Some(Duration::from_secs(10)))?;
                sent += 1;
            }
            Ok::<_, shmring::Error>(sent)
        });
        // Let the producer fill the ring and start waiting, then kill the subscriber.
        while ch.wait_for_space(4, Some(Duration::ZERO)) {
            assert!(!t.is_finished(), "the producer finished without waiting");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill();
        assert_eq!(t.join().unwrap().unwrap(), 1000);
    }
}
