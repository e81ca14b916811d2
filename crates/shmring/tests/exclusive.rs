//! Exclusive producers (`Channel::exclusive_producer`): the only producer of a channel while
//! it lives, in this process or any other; every message it publishes arrives, in order; a
//! killed one lets the next producer in. (Killed at each point of a publish:
//! `tests/recovery.rs`.)
#![cfg(not(loom))] // real shared memory and processes; the models are in tests/loom.rs

mod common;

use std::time::Duration;

use common::*;
use shmring::{Channel, ErrorCode, OpenOptions, SyncMode};

fn open(name: &str) -> Channel {
    let opts = OpenOptions {
        capacity: Some(1 << 16),
        ..OpenOptions::create()
    };
    Channel::open(name, &opts).unwrap()
}

#[test]
fn an_exclusive_producer_excludes_every_other_producer() {
    let name = unique("excl");
    let _g = Unlink::new(&name);
    let ch = open(&name);
    // A second handle has an open file description of its own: it stands for another
    // process's view of the locks.
    let other = Channel::open(&name, &OpenOptions::default()).unwrap();
    let ex = ch.exclusive_producer().unwrap();
    for c in [&ch, &other] {
        let msg = expect_code(c.producer(), ErrorCode::Busy);
        assert!(msg.contains("exclusive producer"), "{msg}");
        expect_code(c.exclusive_producer(), ErrorCode::Busy);
    }
    drop(ex);
    // Gone: a plain producer may join; while it lives, no exclusive one.
    let p = other.producer().unwrap();
    for c in [&ch, &other] {
        let msg = expect_code(c.exclusive_producer(), ErrorCode::Busy);
        assert!(msg.contains("another live producer"), "{msg}");
    }
    let p2 = ch.producer().unwrap();
    drop((p, p2));
    let ex = other.exclusive_producer().unwrap();
    expect_code(ch.producer(), ErrorCode::Busy);
    drop(ex);
    ch.exclusive_producer().unwrap();
}

#[test]
fn semaphore_channels_have_no_exclusive_producer() {
    let name = unique("excl-sem");
    let _g = Unlink::new(&name);
    let opts = OpenOptions {
        sync: Some(SyncMode::Semaphore),
        ..OpenOptions::create()
    };
    let ch = Channel::open(&name, &opts).unwrap();
    let msg = expect_code(ch.exclusive_producer(), ErrorCode::InvalidArgument);
    assert!(msg.contains("lockfree"), "{msg}");
    // Refusing it took nothing: a plain producer joins.
    ch.producer().unwrap();
}

/// Child: publishes `SHMRING_N` tagged messages as an exclusive producer (batches and single
/// publishes alternating, through wraps of the ring), writes `SHMRING_OUT`, then sleeps
/// until it is killed.
#[test]
fn child_exclusive_producer() {
    let Some(name) = child_role("exclusive-producer") else {
        return;
    };
    let n = env_u64("SHMRING_N") as u32;
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = ch.exclusive_producer().unwrap();
    let mut seq = 0;
    while seq < n {
        if seq % 3 == 0 && seq + 8 <= n {
            let batch: Vec<Vec<u8>> = (seq..seq + 8).map(|s| tagged(1, s, 40)).collect();
            let k = p.try_publish_many(batch.iter().map(|m| &m[..])).unwrap();
            seq += k as u32;
            if k == 0 {
                std::thread::yield_now();
            }
        } else {
            p.publish_timeout(&tagged(1, seq, 40), Some(Duration::from_secs(60)))
                .unwrap();
            seq += 1;
        }
    }
    std::fs::write(std::env::var("SHMRING_OUT").unwrap(), "done").unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn exclusive_producer_in_another_process_delivers_all_and_its_death_frees_the_channel() {
    let n = env_or("SHMRING_EXCLUSIVE_N", 200_000) as u32;
    let name = unique("excl-x");
    let _g = Unlink::new(&name);
    let ch = open(&name);
    let mut sub = ch.subscribe().unwrap();
    let out = std::env::temp_dir().join(format!("{name}.done"));
    let _ = std::fs::remove_file(&out);
    let mut child = spawn_child(
        "child_exclusive_producer",
        "exclusive-producer",
        &name,
        &[
            ("SHMRING_N", n.to_string()),
            ("SHMRING_OUT", out.to_string_lossy().into_owned()),
        ],
    );
    let mut msg = Vec::new();
    for want in 0..n {
        assert!(
            sub.recv_timeout(&mut msg, Some(Duration::from_secs(60)))
                .unwrap(),
            "message {want} never came"
        );
        assert_eq!(untag(&msg), (1, want), "in order, each once");
        assert_eq!(msg, tagged(1, want, 40), "whole");
    }
    while !out.exists() {
        assert!(!child.exited(), "the producer exited early");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = std::fs::remove_file(&out);
    // Alive in another process: it excludes us.
    expect_code(ch.producer(), ErrorCode::Busy);
    expect_code(ch.exclusive_producer(), ErrorCode::Busy);
    child.kill();
    // Its lock went with it: the next exclusive producer joins and goes on.
    let mut p = ch.exclusive_producer().unwrap();
    for seq in 0..100 {
        p.publish_timeout(&tagged(2, seq, 40), Some(Duration::from_secs(60)))
            .unwrap();
    }
    for want in 0..100 {
        assert!(
            sub.recv_timeout(&mut msg, Some(Duration::from_secs(60)))
                .unwrap()
        );
        assert_eq!(untag(&msg), (2, want));
    }
    assert!(!sub.try_recv(&mut msg).unwrap(), "nothing else");
    eprintln!("{n} messages from an exclusive producer in another process, in order");
}
