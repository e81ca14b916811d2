//! At-least-once queues: deliveries held until acknowledged, given back by `nack`, by a
//! consumer closing or dying (a real process, SIGKILLed), or after the ack timeout.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Unlink, child_role, expect_code, spawn_child, unique};
use shmring::{Channel, Delivery, ErrorCode, Kind, OpenOptions, Role, SyncMode};

const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

fn opts(sync: SyncMode) -> OpenOptions {
    OpenOptions {
        kind: Some(Kind::Queue),
        delivery: Some(Delivery::AtLeastOnce),
        sync: Some(sync),
        capacity: Some(1 << 16),
        ..OpenOptions::create()
    }
}

fn publish_n(ch: &Channel, n: u32) {
    let mut p = ch.producer().unwrap();
    for i in 0..n {
        assert!(p.try_publish(&i.to_le_bytes()).unwrap());
    }
}

fn num(m: &[u8]) -> u32 {
    u32::from_le_bytes(m[..4].try_into().unwrap())
}

/// Receives everything there is (waiting up to `wait` for more), acking each; returns the
/// numbers and how many came as redeliveries.
fn drain(sub: &mut shmring::Subscriber, wait: Duration) -> (Vec<u32>, u64) {
    let mut out = Vec::new();
    let mut got = Vec::new();
    let mut again = 0;
    while sub.recv_timeout(&mut out, Some(wait)).unwrap() {
        got.push(num(&out));
        if sub.last_deliveries() > 1 {
            again += 1;
        }
    }
    (got, again)
}

#[test]
fn options_are_checked() {
    let n = unique("ackopts");
    let _g = Unlink::new(&n);
    let topic = OpenOptions {
        delivery: Some(Delivery::AtLeastOnce),
        ..OpenOptions::create()
    };
    let msg = expect_code(Channel::open(&n, &topic), ErrorCode::InvalidArgument);
    assert!(msg.contains("for queues"), "{msg}");
    let timeout_alone = OpenOptions {
        kind: Some(Kind::Queue),
        ack_timeout_ms: Some(10),
        ..OpenOptions::create()
    };
    expect_code(
        Channel::open(&n, &timeout_alone),
        ErrorCode::InvalidArgument,
    );
    let _ch = Channel::open(&n, &opts(SyncMode::LockFree)).unwrap();
    let other = OpenOptions {
        delivery: Some(Delivery::AtMostOnce),
        ..OpenOptions::default()
    };
    let msg = expect_code(Channel::open(&n, &other), ErrorCode::IncompatibleSegment);
    assert!(msg.contains("delivery at-least-once"), "{msg}");
    let attached = Channel::open(&n, &OpenOptions::default()).unwrap();
    assert_eq!(attached.descriptor().delivery, Delivery::AtLeastOnce);
}

#[test]
fn a_closed_consumer_gives_back_what_it_did_not_ack() {
    for sync in MODES {
        let n = unique("ackclose");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(sync)).unwrap();
        publish_n(&ch, 10);
        let mut a = ch.subscribe().unwrap();
        a.set_auto_commit(false);
        let mut buf = vec![0u8; 1 << 12];
        let d = a.drain_into(&mut buf, 4).unwrap();
        assert_eq!(d.count, 4);
        assert_eq!(a.in_flight(), 4);
        assert!(a.ack_through(first_position(&ch)), "the first is ours");
        assert_eq!(a.in_flight(), 3);
        // Receiving more with deliveries open is refused, not silently acked.
        expect_code(a.drain_into(&mut buf, 4), ErrorCode::Busy);
        drop(a);
        let mut b = ch.subscribe().unwrap();
        let (mut got, again) = drain(&mut b, Duration::from_millis(50));
        got.sort();
        assert_eq!(got, (1..10).collect::<Vec<_>>(), "{sync:?}");
        assert_eq!(again, 3, "three were delivered before");
        assert_eq!(b.redelivered(), 3);
    }
}

/// The position of the first record (the queue's first message is at 0).
fn first_position(_ch: &Channel) -> u64 {
    0
}

#[test]
fn nack_gives_back_at_once_and_to_this_consumer_too() {
    for sync in MODES {
        let n = unique("acknack");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(sync)).unwrap();
        publish_n(&ch, 3);
        let mut a = ch.subscribe().unwrap();
        let mut out = Vec::new();
        assert!(a.try_recv(&mut out).unwrap());
        assert_eq!((num(&out), a.last_deliveries()), (0, 1));
        let pos = a.last_position().unwrap();
        assert!(a.nack(pos));
        assert!(!a.ack(pos), "given back: no longer ours");
        assert!(a.try_recv(&mut out).unwrap());
        assert_eq!((num(&out), a.last_deliveries()), (0, 2), "{sync:?}");
        let (got, _) = drain(&mut a, Duration::from_millis(20));
        assert_eq!(got, vec![1, 2]);
    }
}

#[test]
fn unacknowledged_records_hold_the_ring() {
    for sync in MODES {
        let n = unique("ackhold");
        let _g = Unlink::new(&n);
        let o = OpenOptions {
            capacity: Some(4096),
            policy: Some(shmring::Policy::Fail),
            ..opts(sync)
        };
        let ch = Channel::open(&n, &o).unwrap();
        let mut p = ch.producer().unwrap();
        let mut c = ch.subscribe().unwrap();
        c.set_auto_commit(false);
        let mut sent = 0u32;
        while p.try_publish(&sent.to_le_bytes()).unwrap_or(false) {
            sent += 1;
        }
        let mut buf = vec![0u8; 1 << 16];
        let d = c.drain_into(&mut buf, usize::MAX).unwrap();
        assert_eq!(d.count as u32, sent);
        // Taken but not acknowledged: the producers still may not reuse the space.
        expect_code(p.try_publish(b"more"), ErrorCode::RingFull);
        assert!(c.ack_through(u64::MAX - 8));
        assert!(p.try_publish(b"more").unwrap(), "{sync:?}");
    }
}

#[test]
fn the_ack_timeout_hands_a_stalled_consumers_deliveries_on() {
    let n = unique("acktimeout");
    let _g = Unlink::new(&n);
    let o = OpenOptions {
        ack_timeout_ms: Some(30),
        ..opts(SyncMode::LockFree)
    };
    let ch = Channel::open(&n, &o).unwrap();
    publish_n(&ch, 5);
    let mut slow = ch.subscribe().unwrap();
    slow.set_auto_commit(false);
    let mut buf = vec![0u8; 4096];
    assert_eq!(slow.drain_into(&mut buf, 5).unwrap().count, 5);
    let mut other = ch.subscribe().unwrap();
    let mut out = Vec::new();
    assert!(
        !other.try_recv(&mut out).unwrap(),
        "held by a live consumer"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 5 {
        assert!(Instant::now() < deadline, "never handed on: {got:?}");
        if other
            .recv_timeout(&mut out, Some(Duration::from_millis(20)))
            .unwrap()
        {
            assert_eq!(other.last_deliveries(), 2);
            got.push(num(&out));
        }
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert!(!slow.ack(0), "the stalled consumer lost them");
}

/// Child: consumes from an at-least-once queue without acknowledging, then sleeps until
/// killed (or 60 s).
#[test]
fn child_holding_consumer() {
    let Some(name) = child_role("holding-consumer") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut c = ch.subscribe().unwrap();
    c.set_auto_commit(false);
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.drain_into(&mut buf, 100).unwrap().count == 0 {
        assert!(Instant::now() < deadline);
        c.wait(Some(Duration::from_millis(10)));
    }
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_consumer_process_loses_nothing() {
    for sync in MODES {
        let n = unique("ackkill");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(sync)).unwrap();
        publish_n(&ch, 300);
        let mut child = spawn_child("child_holding_consumer", "holding-consumer", &n, &[]);
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ch
            .participants()
            .iter()
            .any(|p| p.pid == pid && p.role == Some(Role::Consumer) && p.in_flight == 100)
        {
            assert!(!child.exited(), "the child exited");
            assert!(Instant::now() < deadline, "the child never took its 100");
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut c = ch.subscribe().unwrap();
        child.kill();
        let mut seen: HashMap<u32, u32> = HashMap::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut again = 0;
        while seen.len() < 300 {
            assert!(
                Instant::now() < deadline,
                "lost: {} of 300",
                300 - seen.len()
            );
            if c.recv_timeout(&mut out, Some(Duration::from_millis(50)))
                .unwrap()
            {
                *seen.entry(num(&out)).or_default() += 1;
                again += (c.last_deliveries() > 1) as u32;
            }
        }
        assert!(
            seen.values().all(|&k| k == 1),
            "{sync:?}: delivered twice here"
        );
        assert_eq!(again, 100, "{sync:?}: the dead consumer's 100 came again");
        drop(c);
        // The dead consumer's slot is freed once its range is settled.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = ch.subscribe().map(drop); // a join reclaims dead slots
            if ch.participants().iter().all(|p| p.pid != pid) {
                break;
            }
            assert!(Instant::now() < deadline, "the dead consumer's slot stays");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Three consumer threads, one returning every 7th delivery: every message is acknowledged;
/// a message comes more than once only after a `nack`.
#[test]
fn competing_consumers_with_nacks_lose_nothing() {
    for sync in MODES {
        let n = unique("ackrace");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(sync)).unwrap();
        const N: u32 = 20_000;
        let prod = {
            let ch = ch.clone();
            std::thread::spawn(move || {
                let mut p = ch.producer().unwrap();
                for i in 0..N {
                    p.publish_timeout(&i.to_le_bytes(), Some(Duration::from_secs(30)))
                        .unwrap();
                }
            })
        };
        let workers: Vec<_> = (0..3)
            .map(|k| {
                let mut c = ch.subscribe().unwrap();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut nacked = 0u32;
                    let mut out = Vec::new();
                    let mut quiet = Instant::now();
                    let mut turn = 0u32;
                    while quiet.elapsed() < Duration::from_millis(500) {
                        if !c
                            .recv_timeout(&mut out, Some(Duration::from_millis(20)))
                            .unwrap()
                        {
                            continue;
                        }
                        quiet = Instant::now();
                        turn += 1;
                        let pos = c.last_position().unwrap();
                        if k == 0 && turn.is_multiple_of(7) {
                            assert!(c.nack(pos));
                            nacked += 1;
                        } else {
                            assert!(c.ack(pos));
                            acked.push(num(&out));
                        }
                    }
                    (acked, nacked)
                })
            })
            .collect();
        prod.join().unwrap();
        let mut count = vec![0u32; N as usize];
        let mut nacks = 0;
        for w in workers {
            let (acked, nacked) = w.join().unwrap();
            nacks += nacked;
            for m in acked {
                count[m as usize] += 1;
            }
        }
        let missing = count.iter().filter(|&&c| c == 0).count();
        let twice = count.iter().filter(|&&c| c > 1).count();
        assert_eq!(missing, 0, "{sync:?}: lost messages");
        assert_eq!(twice, 0, "{sync:?}: acknowledged twice without a death");
        assert!(nacks > 0);
    }
}

/// A consumer that took over a range, delivered only part of it (a small buffer), settled
/// that part and closed: the rest goes back to the queue for the next consumer, not held by
/// a closed consumer of a live process.
#[test]
fn a_closed_consumer_gives_back_the_rest_of_a_range_it_took_over() {
    for sync in MODES {
        let n = unique("ackrest");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(sync)).unwrap();
        publish_n(&ch, 10);
        let mut a = ch.subscribe().unwrap();
        a.set_auto_commit(false);
        let mut buf = vec![0u8; 4096];
        let d = a.drain_into(&mut buf, 10).unwrap();
        assert_eq!(d.count, 10, "{sync:?}");
        let first = {
            let mut b = ch.subscribe().unwrap();
            b.set_auto_commit(false);
            // `a` gives all ten back; `b` takes the range over and delivers three of them.
            assert!(a.nack(0), "{sync:?}");
            let d = b.drain_into(&mut buf, 3).unwrap();
            assert_eq!(d.count, 3, "{sync:?}");
            assert_eq!(b.last_deliveries(), 2, "{sync:?}");
            let p = b.last_position().unwrap();
            assert!(b.ack_through(p), "{sync:?}");
            p
        }; // `b` closes with seven records of the range not delivered
        drop(a);
        let mut c = ch.subscribe().unwrap();
        let (got, again) = drain(&mut c, Duration::from_millis(300));
        assert_eq!(got, (3..10).collect::<Vec<_>>(), "{sync:?}: after {first}");
        assert_eq!(again, 7, "{sync:?}");
    }
}
