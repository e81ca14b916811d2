//! Single-process behaviour of the ring: framing, wrap-around, fan-out, batch receive.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use common::{Rng, Unlink, expect_code, frames, unique};
use proptest::prelude::*;
use shmring::{Channel, ErrorCode, OpenOptions};

fn small_ring(name: &str, capacity: u64, max: u32) -> Channel {
    let opts = OpenOptions {
        capacity: Some(capacity),
        max_message_size: Some(max),
        ..OpenOptions::create()
    };
    Channel::open(name, &opts).unwrap()
}

fn payload(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[test]
fn smoke() {
    let n = unique("smoke");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    assert!(ch.created());
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    assert!(p.try_publish(b"hello").unwrap());
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, b"hello");
    assert!(!sub.try_recv(&mut out).unwrap());
    assert_eq!(sub.received(), 1);
    shmring::unlink(&n).unwrap();
    expect_code(shmring::unlink(&n), ErrorCode::NotFound);
}

#[test]
fn wraps_with_padding() {
    let n = unique("wrap");
    let _g = Unlink::new(&n);
    let ch = small_ring(&n, 4096, 1000);
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let mut out = Vec::new();
    let mut rng = Rng(12345);
    for i in 0..20_000u32 {
        let msg = payload(i, rng.upto(1000));
        assert!(p.try_publish(&msg).unwrap(), "publish {i}");
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, msg, "message {i}");
    }
    assert!(!sub.try_recv(&mut out).unwrap());
}

/// Random sizes 0..=max, published until the ring is full, drained through `drain_into` with
/// small (and varying) buffers, so batches stop at the buffer's end and at padding.
#[test]
fn wraps_with_padding_through_drain_into() {
    let n = unique("wrap-drain");
    let _g = Unlink::new(&n);
    let max = 1000usize;
    let ch = small_ring(&n, 4096, max as u32);
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let mut rng = Rng(987_654_321);
    let mut sent = std::collections::VecDeque::new();
    let mut next = 0u32;
    let mut received = 0u32;
    let mut buf = vec![0u8; 4 * max + 4];
    while received < 20_000 {
        // Fill until full.
        loop {
            let msg = payload(next, rng.upto(max));
            if !p.try_publish(&msg).unwrap() {
                break;
            }
            sent.push_back(msg);
            next += 1;
        }
        // Drain with a buffer between "one largest frame" and four of them.
        let size = max + 4 + rng.upto(3 * max);
        let max_count = 1 + rng.upto(5);
        let d = sub.drain_into(&mut buf[..size], max_count).unwrap();
        assert!(d.count >= 1 && d.count <= max_count, "drained {d:?}");
        let got = frames(&buf[..d.bytes]);
        assert_eq!(got.len(), d.count);
        for g in got {
            let want = sent.pop_front().expect("more received than sent");
            assert_eq!(g, &want[..], "message {received}");
            received += 1;
        }
    }
    // Drain the rest.
    while !sent.is_empty() {
        let d = sub.drain_into(&mut buf, usize::MAX).unwrap();
        assert!(d.count > 0);
        for g in frames(&buf[..d.bytes]) {
            assert_eq!(g, &sent.pop_front().unwrap()[..]);
        }
    }
    assert_eq!(sub.drain_into(&mut buf, usize::MAX).unwrap().count, 0);
}

#[test]
fn drain_into_refuses_a_buffer_too_small_for_the_next_message() {
    let n = unique("drain-small");
    let _g = Unlink::new(&n);
    let ch = small_ring(&n, 4096, 100);
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    assert!(p.try_publish(&[7u8; 10]).unwrap());
    assert!(p.try_publish(&[8u8; 20]).unwrap());
    let mut buf = [0u8; 64];
    let msg = expect_code(
        sub.drain_into(&mut buf[..13], 10),
        ErrorCode::InvalidArgument,
    );
    assert!(msg.contains("10-byte"), "{msg}");
    // Nothing was consumed: a big enough buffer gets the first message, then stops.
    let d = sub.drain_into(&mut buf[..14], 10).unwrap();
    assert_eq!((d.count, d.bytes), (1, 14));
    assert_eq!(frames(&buf[..14]), vec![&[7u8; 10][..]]);
    let d = sub.drain_into(&mut buf, 0).unwrap();
    assert_eq!(d.count, 0);
    let d = sub.drain_into(&mut buf, 10).unwrap();
    assert_eq!(frames(&buf[..d.bytes]), vec![&[8u8; 20][..]]);
    assert_eq!(sub.received(), 2);
}

#[test]
fn largest_and_empty_messages() {
    let n = unique("sizes");
    let _g = Unlink::new(&n);
    let ch = small_ring(&n, 4096, shmring::layout::max_message_size_for(4096) as u32);
    let max = ch.descriptor().geometry.max_message_size as usize;
    // A record of the largest message takes at most half the ring.
    assert!(shmring::layout::record::record_len(max) <= 2048);
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    assert_eq!(p.max_message_size(), max);
    let mut out = Vec::new();
    for i in 0..1000u32 {
        let len = if i % 2 == 0 { max } else { 0 };
        let msg = payload(i, len);
        assert!(p.try_publish(&msg).unwrap());
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, msg);
    }
    expect_code(
        p.try_publish(&vec![0u8; max + 1]),
        ErrorCode::MessageTooLarge,
    );
}

#[test]
fn every_subscriber_gets_every_message_published_after_it_joined() {
    let n = unique("fanout");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    let mut p = ch.producer().unwrap();
    assert!(p.try_publish(b"before anyone").unwrap());
    let mut early = ch.subscribe().unwrap();
    assert!(p.try_publish(b"one").unwrap());
    let mut late = ch.subscribe().unwrap();
    assert!(p.try_publish(b"two").unwrap());
    let mut out = Vec::new();
    let mut all = |s: &mut shmring::Subscriber| {
        let mut v = Vec::new();
        while s.try_recv(&mut out).unwrap() {
            v.push(out.clone());
        }
        v
    };
    assert_eq!(all(&mut early), vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(all(&mut late), vec![b"two".to_vec()]);
    let subs = ch
        .participants()
        .into_iter()
        .filter(|p| p.role == Some(shmring::Role::Subscriber))
        .count();
    assert_eq!(subs, 2);
}

#[test]
fn publish_many_wakes_once_and_counts() {
    let n = unique("many");
    let _g = Unlink::new(&n);
    let ch = small_ring(&n, 4096, 100);
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let msgs: Vec<Vec<u8>> = (0..1000u32).map(|i| payload(i, 40)).collect();
    // 4096 / record_len(40) = 4096 / 64 = 64 records fit.
    let n1 = p.try_publish_many(msgs.iter().map(|m| &m[..])).unwrap();
    assert_eq!(n1, 4096 / shmring::layout::record::record_len(40));
    let mut buf = vec![0u8; 8192];
    let d = sub.drain_into(&mut buf, usize::MAX).unwrap();
    assert_eq!(d.count, n1);
    for (i, f) in frames(&buf[..d.bytes]).into_iter().enumerate() {
        assert_eq!(f, &msgs[i][..]);
    }
    // An oversize message in a batch stops it with an error that says how many went in.
    let batch = [
        &[1u8; 10][..],
        &[2u8; 10][..],
        &[3u8; 101][..],
        &[4u8; 10][..],
    ];
    let err = p.try_publish_many(batch).unwrap_err();
    assert_eq!(err.published(), Some(2), "{err}");
    let msg = expect_code(Err::<(), _>(err), ErrorCode::MessageTooLarge);
    assert!(msg.contains("after 2 messages"), "{msg}");
    let d = sub.drain_into(&mut buf, usize::MAX).unwrap();
    assert_eq!(d.count, 2);
}

#[test]
fn waiter_sees_data_from_another_thread() {
    let n = unique("waiter");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let waiter = sub.waiter();
    assert!(!waiter.has_data());
    assert!(!sub.wait(Some(std::time::Duration::from_millis(1))));
    let ch2 = ch.clone();
    let t = std::thread::spawn(move || {
        let mut p = ch2.producer().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.try_publish(b"ping").unwrap()
    });
    let mut out = Vec::new();
    assert!(
        sub.recv_timeout(&mut out, Some(std::time::Duration::from_secs(10)))
            .unwrap()
    );
    assert_eq!(out, b"ping");
    assert!(t.join().unwrap());
    // interrupt() wakes a waiting thread even without data.
    let w2 = sub.waiter();
    let t = std::thread::spawn(move || w2.wait(None));
    std::thread::sleep(std::time::Duration::from_millis(20));
    while !t.is_finished() {
        waiter.interrupt();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!t.join().unwrap());
}

/// `wait_unless`: a cancelled wait ends after one `interrupt`, whatever the strategy and
/// however the cancelling thread's flag-then-interrupt falls against the sleeper's checks
/// (many rounds, so the interrupt lands before, during and after the sleeper's futex call);
/// a wait that is not cancelled still reports data.
#[test]
fn wait_unless_ends_on_one_interrupt() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let n = unique("unless");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    assert!(
        !sub.waiter().wait_unless(None, || true),
        "cancelled before: no wait"
    );
    for strategy in [
        shmring::WaitStrategy::Adaptive,
        shmring::WaitStrategy::Block,
        shmring::WaitStrategy::Spin,
    ] {
        sub.set_wait_strategy(strategy);
        let rounds = if strategy == shmring::WaitStrategy::Spin {
            50
        } else {
            300
        };
        for round in 0..rounds {
            let stop = Arc::new(AtomicBool::new(false));
            let (waiter, flag) = (sub.waiter(), stop.clone());
            let t = std::thread::spawn(move || {
                // SeqCst, as in any caller: pairs with the store below through the doorbell.
                waiter.wait_unless(None, || flag.load(Ordering::SeqCst))
            });
            if round % 3 == 1 {
                std::thread::yield_now();
            } else if round % 3 == 2 {
                std::thread::sleep(Duration::from_micros(200));
            }
            stop.store(true, Ordering::SeqCst);
            sub.waiter().interrupt(); // once: a missed wake-up would leave `t` asleep
            let deadline = Instant::now() + Duration::from_secs(20);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let ended = t.is_finished();
            while !t.is_finished() {
                sub.waiter().interrupt(); // free the thread before failing
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                ended,
                "{strategy:?} round {round}: one interrupt did not end the wait"
            );
            assert!(!t.join().unwrap(), "a cancelled wait reports no data");
        }
    }
    // Not cancelled: data ends the wait with true.
    sub.set_wait_strategy(shmring::WaitStrategy::Adaptive);
    let ch2 = ch.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        ch2.producer().unwrap().try_publish(b"x").unwrap()
    });
    assert!(
        sub.waiter()
            .wait_unless(Some(Duration::from_secs(30)), || false)
    );
    assert!(t.join().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Record framing through `drain_into`: whatever the sizes, the buffer sizes and the
    /// batch limits, every payload comes out whole, in order, once.
    #[test]
    fn framing_survives_any_sizes(
        lens in prop::collection::vec(0usize..=500, 1..200),
        bufs in prop::collection::vec((504usize..3000, 1usize..8), 1..20),
    ) {
        let n = unique("prop");
        let _g = Unlink::new(&n);
        let ch = small_ring(&n, 4096, 500);
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let mut pending = std::collections::VecDeque::new();
        let mut buf = vec![0u8; 3000];
        let mut k = 0;
        let mut i = 0;
        while i < lens.len() || !pending.is_empty() {
            if i < lens.len() {
                let msg = payload(i as u32, lens[i]);
                if p.try_publish(&msg).unwrap() {
                    pending.push_back(msg);
                    i += 1;
                    continue;
                }
            }
            let (size, max_count) = bufs[k % bufs.len()];
            k += 1;
            let d = sub.drain_into(&mut buf[..size], max_count).unwrap();
            prop_assert!(d.count >= 1 && d.count <= max_count);
            for f in frames(&buf[..d.bytes]) {
                let want = pending.pop_front().unwrap();
                prop_assert_eq!(f, &want[..]);
            }
        }
        prop_assert_eq!(sub.drain_into(&mut buf, usize::MAX).unwrap().count, 0);
        prop_assert_eq!(sub.received(), lens.len() as u64);
    }
}
