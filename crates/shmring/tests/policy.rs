//! What a full ring does to a publisher, per policy.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::time::Duration;

use common::{Unlink, expect_code, unique};
use shmring::{Channel, ErrorCode, OpenOptions, Policy, SyncMode};

/// Every test here runs in both sync modes: the full-ring rules are the same.
const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

const MSG: [u8; 100] = [3u8; 100];
/// record_len(100) = 128 bytes: 32 of them fit a 4096-byte ring.
const FIT: usize = 4096 / shmring::layout::record::record_len(100);

fn ring(name: &str, sync: SyncMode, policy: Option<Policy>) -> Channel {
    let opts = OpenOptions {
        capacity: Some(4096),
        sync: Some(sync),
        policy,
        ..OpenOptions::create()
    };
    Channel::open(name, &opts).unwrap()
}

#[test]
fn full_ring_with_policy_fail_is_ring_full() {
    for sync in MODES {
        let n = unique("fail");
        let _g = Unlink::new(&n);
        let ch = ring(&n, sync, Some(Policy::Fail));
        assert_eq!(ch.descriptor().policy, Policy::Fail);
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        for i in 0..FIT {
            assert!(p.try_publish(&MSG).unwrap(), "message {i}");
        }
        let msg = expect_code(p.try_publish(&MSG), ErrorCode::RingFull);
        assert!(msg.contains(&n), "{msg}");
        expect_code(
            p.publish_timeout(&MSG, Some(Duration::from_millis(10))),
            ErrorCode::RingFull,
        );
        // A batch stops at the full ring with the same error, which says none went in.
        let err = p.try_publish_many([&MSG[..]]).unwrap_err();
        assert_eq!(err.published(), Some(0), "{err}");
        expect_code(Err::<(), _>(err), ErrorCode::RingFull);
        // Other errors carry no batch count.
        assert_eq!(p.try_publish(&MSG).unwrap_err().published(), None);
        // After the subscriber drains, publishing works again.
        let mut out = Vec::new();
        let mut got = 0;
        while sub.try_recv(&mut out).unwrap() {
            got += 1;
        }
        assert_eq!(got, FIT);
        assert!(p.try_publish(&MSG).unwrap());
    }
}

#[test]
fn a_batch_filling_a_policy_fail_ring_says_how_many_went_in() {
    for sync in MODES {
        let n = unique("fail-batch");
        let _g = Unlink::new(&n);
        let ch = ring(&n, sync, Some(Policy::Fail));
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let err = p.try_publish_many(vec![&MSG[..]; FIT + 5]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RingFull, "{err}");
        assert_eq!(err.published(), Some(FIT), "{sync:?}: {err}");
        let mut out = Vec::new();
        let mut got = 0;
        while sub.try_recv(&mut out).unwrap() {
            got += 1;
        }
        assert_eq!(got, FIT, "{sync:?}: as many arrived as the error says");
    }
}

#[test]
fn full_ring_with_policy_block_returns_false_then_times_out() {
    for sync in MODES {
        let n = unique("block");
        let _g = Unlink::new(&n);
        let ch = ring(&n, sync, None);
        assert_eq!(ch.descriptor().policy, Policy::Block);
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        for i in 0..FIT {
            assert!(p.try_publish(&MSG).unwrap(), "message {i}");
        }
        assert!(!p.try_publish(&MSG).unwrap());
        assert_eq!(p.try_publish_many([&MSG[..], &MSG[..]]).unwrap(), 0);
        expect_code(
            p.publish_timeout(&MSG, Some(Duration::from_millis(30))),
            ErrorCode::Timeout,
        );
        expect_code(
            p.publish_timeout(&MSG, Some(Duration::ZERO)),
            ErrorCode::Timeout,
        );
        assert!(!ch.wait_for_space(MSG.len(), Some(Duration::from_millis(10))));
        // A small message still does not fit: the last 16 bytes of the ring are too few.
        assert!(!p.try_publish(&[0u8; 8]).unwrap());
        // Reading one message makes room for exactly one more.
        let mut out = Vec::new();
        assert!(sub.try_recv(&mut out).unwrap());
        assert!(ch.wait_for_space(MSG.len(), Some(Duration::ZERO)));
        p.publish_timeout(&MSG, Some(Duration::from_millis(30)))
            .unwrap();
        assert!(!p.try_publish(&MSG).unwrap());
        // Drain everything: publishing works again, across the wrap.
        let mut got = 1;
        while sub.try_recv(&mut out).unwrap() {
            got += 1;
        }
        assert_eq!(got, FIT + 1);
        for _ in 0..FIT {
            assert!(p.try_publish(&MSG).unwrap());
        }
        assert!(!p.try_publish(&MSG).unwrap());
        // A dropped subscriber no longer holds publishers back.
        drop(sub);
        for _ in 0..10 * FIT {
            assert!(p.try_publish(&MSG).unwrap());
        }
    }
}

#[test]
fn the_slowest_subscriber_holds_the_ring() {
    for sync in MODES {
        let n = unique("slowest");
        let _g = Unlink::new(&n);
        let ch = ring(&n, sync, None);
        let mut fast = ch.subscribe().unwrap();
        let mut slow = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let mut out = Vec::new();
        for _ in 0..FIT {
            assert!(p.try_publish(&MSG).unwrap());
            assert!(fast.try_recv(&mut out).unwrap());
        }
        assert!(
            !p.try_publish(&MSG).unwrap(),
            "the slow subscriber has read nothing"
        );
        assert!(slow.try_recv(&mut out).unwrap());
        assert!(p.try_publish(&MSG).unwrap());
        assert!(!p.try_publish(&MSG).unwrap());
    }
}

#[test]
fn no_subscriber_never_blocks() {
    for sync in MODES {
        let n = unique("nosub");
        let _g = Unlink::new(&n);
        let ch = ring(&n, sync, None);
        let mut p = ch.producer().unwrap();
        for _ in 0..10 * FIT {
            assert!(p.try_publish(&MSG).unwrap());
        }
        // A subscriber joining now starts at the tail: it gets only what comes next.
        let mut sub = ch.subscribe().unwrap();
        let mut out = Vec::new();
        assert!(!sub.try_recv(&mut out).unwrap());
        assert!(p.try_publish(b"next").unwrap());
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, b"next");
    }
}
