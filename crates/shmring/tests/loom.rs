//! Model checks of the ring with loom: `RUSTFLAGS="--cfg loom" cargo test -p shmring --test
//! loom --release` (or `npm run loom`). The real ring code runs on a modelled segment (every
//! word a loom atomic, every payload byte a loom cell that reports racing accesses, a futex
//! as a loom condvar), so these check the code that ships, not a copy of it.
#![cfg(loom)]

use shmring::{Channel, Kind, OpenOptions, Policy, WaitStrategy};

/// Explores every interleaving with at most `LOOM_PREEMPTIONS` (default 2) forced
/// preemptions per execution: the usual bound that keeps a model of this size tractable
/// while still covering the races that need one or two untimely context switches.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// A 64-byte ring: with 8-byte payloads (24-byte records) the third message wraps with
/// padding into the space the first one freed.
fn tiny(kind: Kind) -> OpenOptions {
    OpenOptions {
        kind: Some(kind),
        policy: Some(Policy::Block),
        capacity: Some(64),
        max_message_size: Some(8),
        max_participants: Some(3),
        ..OpenOptions::create()
    }
}

fn msg(producer: u8, seq: u8) -> [u8; 8] {
    [
        producer,
        seq,
        producer ^ seq,
        0xa5,
        producer,
        seq,
        0x5a,
        0xff,
    ]
}

/// Two producers claim, write and commit concurrently; the subscriber gets both messages,
/// whole, and no payload byte is ever read while it is written (loom would report it).
#[test]
fn two_producers_claim_commit_read() {
    model(|| {
        let ch = Channel::model("m", &tiny(Kind::Topic)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let threads: Vec<_> = (0..2u8)
            .map(|p| {
                let ch = ch.clone();
                loom::thread::spawn(move || {
                    let mut prod = ch.producer().unwrap();
                    while !prod.try_publish(&msg(p, 0)).unwrap() {
                        loom::thread::yield_now();
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        let mut out = Vec::new();
        while got.len() < 2 {
            if sub.try_recv(&mut out).unwrap() {
                got.push(out.clone());
            } else {
                loom::thread::yield_now();
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![msg(0, 0).to_vec(), msg(1, 0).to_vec()]);
    });
}

/// One producer laps a 64-byte ring (padding, then reuse of freed space) while the
/// subscriber reads: order kept, nothing torn, and the producer never overwrites an unread
/// record (loom reports a race if it does).
#[test]
fn wrap_and_reuse_under_back_pressure() {
    model(|| {
        let ch = Channel::model("m", &tiny(Kind::Topic)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let producer = {
            let ch = ch.clone();
            loom::thread::spawn(move || {
                let mut prod = ch.producer().unwrap();
                for seq in 0..3u8 {
                    while !prod.try_publish(&msg(7, seq)).unwrap() {
                        loom::thread::yield_now();
                    }
                }
            })
        };
        let mut out = Vec::new();
        for seq in 0..3u8 {
            while !sub.try_recv(&mut out).unwrap() {
                loom::thread::yield_now();
            }
            assert_eq!(out, msg(7, seq));
        }
        producer.join().unwrap();
    });
}

/// The wait/notify protocol with no timeouts: a subscriber blocks (condvar futex) until the
/// producer's commit wakes it, and a producer blocked on a full ring is woken when the
/// subscriber frees space. A lost wake-up deadlocks, which loom reports.
#[test]
fn blocking_waits_are_always_woken() {
    model(|| {
        let ch = Channel::model("m", &tiny(Kind::Topic)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        sub.set_wait_strategy(WaitStrategy::Block);
        let producer = {
            let ch = ch.clone();
            loom::thread::spawn(move || {
                let mut prod = ch.producer().unwrap();
                for seq in 0..3u8 {
                    prod.publish_timeout(&msg(1, seq), None).unwrap();
                }
            })
        };
        let mut out = Vec::new();
        for seq in 0..3u8 {
            assert!(sub.recv_timeout(&mut out, None).unwrap());
            assert_eq!(out, msg(1, seq));
        }
        producer.join().unwrap();
    });
}

/// Queue kind, two competing consumers: each message is taken exactly once.
#[test]
fn queue_consumers_take_each_message_once() {
    model(|| {
        let ch = Channel::model("m", &tiny(Kind::Queue)).unwrap();
        {
            let mut prod = ch.producer().unwrap();
            assert!(prod.try_publish(&msg(1, 0)).unwrap());
            assert!(prod.try_publish(&msg(1, 1)).unwrap());
        }
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut c = ch.subscribe().unwrap();
                loom::thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut mine = Vec::new();
                    if c.try_recv(&mut out).unwrap() {
                        mine.push(out.clone());
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<Vec<u8>> = consumers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let mut c = ch.subscribe().unwrap();
        let mut out = Vec::new();
        while c.try_recv(&mut out).unwrap() {
            all.push(out.clone());
        }
        all.sort();
        assert_eq!(all, vec![msg(1, 0).to_vec(), msg(1, 1).to_vec()]);
    });
}
