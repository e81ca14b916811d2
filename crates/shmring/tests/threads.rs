//! Several threads of one process on one channel.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Rng, Unlink, fnv, frames, tagged, unique, untag};
use shmring::{Channel, OpenOptions, SyncMode};

const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

/// Four producer threads interleave random-size messages through a small ring; the
/// subscriber sees each producer's messages in order, none lost, none duplicated, and the
/// checksum of everything received equals the checksum of everything sent.
#[test]
fn four_producer_threads_keep_per_producer_order() {
    const PRODUCERS: u32 = 4;
    const PER: u32 = 25_000;
    for sync in MODES {
        let n = unique("mt");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(16 * 1024),
            max_message_size: Some(256),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let threads: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    let mut p = ch.producer().unwrap();
                    let mut rng = Rng(0x9e37_79b9 + id as u64);
                    let mut sum = 0u64;
                    for seq in 0..PER {
                        let msg = tagged(id, seq, 8 + rng.upto(248));
                        sum = sum.wrapping_add(fnv(&msg));
                        p.publish_timeout(&msg, Some(Duration::from_secs(30)))
                            .unwrap();
                    }
                    sum
                })
            })
            .collect();
        let mut next = [0u32; PRODUCERS as usize];
        let mut sum = 0u64;
        let mut total = 0u32;
        let mut buf = vec![0u8; 4096];
        let mut idle_since = Instant::now();
        while total < PRODUCERS * PER {
            let all_done = threads.iter().all(|t| t.is_finished());
            let d = sub.drain_into(&mut buf, usize::MAX).unwrap();
            if d.count == 0 {
                assert!(
                    !all_done,
                    "every producer ended, but only {total} messages arrived"
                );
                // `wait` may return early without data (a later record was committed while the
                // one at our cursor is still being written): only a long silence is a failure.
                assert!(
                    idle_since.elapsed() < Duration::from_secs(30),
                    "no message for 30 s after {total}"
                );
                sub.wait(Some(Duration::from_millis(100)));
                continue;
            }
            idle_since = Instant::now();
            for f in frames(&buf[..d.bytes]) {
                let (id, seq) = untag(f);
                assert_eq!(seq, next[id as usize], "producer {id} out of order");
                next[id as usize] += 1;
                sum = sum.wrapping_add(fnv(f));
                total += 1;
            }
        }
        let sent = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold(0u64, u64::wrapping_add);
        assert_eq!(sum, sent, "checksum of received messages");
        assert_eq!(next, [PER; PRODUCERS as usize]);
        assert_eq!(sub.drain_into(&mut buf, usize::MAX).unwrap().count, 0);
    }
}

/// Threads that open the same fresh name with `create` at the same instant: exactly one
/// creates it, and all of them can publish and receive on it (rounds alternate sync modes).
#[test]
fn create_race_between_threads() {
    const THREADS: usize = 3;
    for round in 0..50 {
        let n = unique("trace");
        let _g = Unlink::new(&n);
        let start = Arc::new(Barrier::new(THREADS));
        let joined = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|id| {
                let (n, start, joined) = (n.clone(), start.clone(), joined.clone());
                std::thread::spawn(move || {
                    let opts = OpenOptions {
                        capacity: Some(4096),
                        sync: Some(MODES[round % 2]),
                        ..OpenOptions::create()
                    };
                    start.wait();
                    let ch = Channel::open(&n, &opts).unwrap();
                    let mut sub = ch.subscribe().unwrap();
                    let mut p = ch.producer().unwrap();
                    joined.wait();
                    assert!(p.try_publish(&[id as u8]).unwrap());
                    let mut got = Vec::new();
                    let mut out = Vec::new();
                    while got.len() < THREADS {
                        assert!(
                            sub.recv_timeout(&mut out, Some(Duration::from_secs(10)))
                                .unwrap()
                        );
                        got.push(out[0]);
                    }
                    got.sort();
                    assert_eq!(got, (0..THREADS as u8).collect::<Vec<_>>());
                    ch.created()
                })
            })
            .collect();
        let created = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|c| *c)
            .count();
        assert_eq!(created, 1, "round {round}: creators");
    }
}

/// A producer blocked on a full ring goes on when the subscriber holding it back is dropped.
#[test]
fn dropping_the_subscriber_frees_a_blocked_producer() {
    for sync in MODES {
        let n = unique("dropsub");
        let _g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(4096),
            sync: Some(sync),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&n, &opts).unwrap();
        let sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        while p.try_publish(&[1u8; 100]).unwrap() {}
        let t = std::thread::spawn(move || {
            p.publish_timeout(&[2u8; 100], Some(Duration::from_secs(10)))
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(sub);
        t.join().unwrap().unwrap();
    }
}
