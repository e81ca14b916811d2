//! Joining and leaving under fire: processes SIGKILLed at random instants while they join and
//! leave a small participant table, and participants the pids cannot vouch for (another PID
//! namespace, another user). A slot's owner is alive while a process holds the slot's lock
//! (docs/LAYOUT.md, "Participant slots"), so none of this can lock anyone out or evict anyone.
//! Every child is killed and reaped and every name unlinked, even when a test panics.
#![cfg(not(loom))] // real processes; the loom models are in tests/loom.rs

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, Unlink, child_role, env_or, env_u64, spawn_child, spawn_child_under, unique};
use shmring::{Channel, Kind, OpenOptions, Policy, Role, SyncMode};

const SLOTS: u32 = 16;

/// Child: joins and leaves the channel as fast as it can, as a producer, a subscriber or a
/// consumer chosen at random each round (publishing or reading one message), until killed.
#[test]
fn child_joiner() {
    let Some(name) = child_role("joiner") else {
        return;
    };
    let mut rng = Rng(env_u64("SHMRING_TEST_SEED") | 1);
    let mut out = Vec::new();
    loop {
        // A full table (every slot held by a joiner of a sibling) is expected now and then.
        let Ok(ch) = Channel::open(&name, &OpenOptions::default()) else {
            continue;
        };
        if rng.upto(1) == 0 {
            if let Ok(mut p) = ch.producer() {
                let _ = p.try_publish(b"joiner");
            }
        } else if let Ok(mut s) = ch.subscribe() {
            let _ = s.try_recv(&mut out);
        }
    }
}

/// Takes every slot of `ch` in this process, half producers and half readers, and checks
/// that the table is then full of live owners and that a message goes through all of them.
fn take_every_slot(ch: &Channel) {
    let mut producers = Vec::new();
    let mut readers = Vec::new();
    for i in 0..SLOTS {
        if i % 2 == 0 {
            producers.push(ch.producer().unwrap_or_else(|e| {
                panic!("slot {i} of {SLOTS} cannot be taken as a producer: {e}")
            }));
        } else {
            readers.push(ch.subscribe().unwrap_or_else(|e| {
                panic!("slot {i} of {SLOTS} cannot be taken as a reader: {e}")
            }));
        }
    }
    let me = std::process::id();
    let parts = ch.participants();
    assert_eq!(parts.len(), SLOTS as usize);
    assert!(parts.iter().all(|p| p.alive && p.pid == me), "{parts:?}");
    let e = ch
        .producer()
        .err()
        .expect("a 17th participant in a table of 16");
    assert!(
        e.message().contains("no free participant slot"),
        "{}",
        e.message()
    );
    // What the joiners left queued goes first; then one message through every reader (a
    // topic's subscribers joined after the joiners' messages and see only ours).
    if ch.descriptor().kind == Kind::Queue {
        let mut out = Vec::new();
        while readers[0].try_recv(&mut out).unwrap() {
            assert_eq!(out, b"joiner");
        }
    }
    let mut out = Vec::new();
    for (k, r) in readers.iter_mut().enumerate() {
        assert!(producers[k].try_publish(b"after the kills").unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !r.try_recv(&mut out).unwrap() {
            assert!(
                Instant::now() < deadline,
                "reader {k} never got its message"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out, b"after the kills");
    }
}

/// A 16-slot channel; processes join and leave it in a loop (every role) and are SIGKILLed
/// at random instants, thousands of times (`SHMRING_JOIN_KILLS`, default 2,000 per channel),
/// many of them mid-join. Afterwards every one of the 16 slots can be taken.
#[test]
fn join_crash_loop_leaves_every_slot_takeable() {
    let kills = env_or("SHMRING_JOIN_KILLS", 2_000);
    let configs = [
        (Kind::Topic, SyncMode::LockFree),
        (Kind::Queue, SyncMode::Semaphore),
    ];
    for (kind, sync) in configs {
        let name = unique("joinkill");
        let _g = Unlink::new(&name);
        let opts = OpenOptions {
            kind: Some(kind),
            sync: Some(sync),
            policy: Some(Policy::Fail),
            capacity: Some(4096),
            max_participants: Some(SLOTS),
            ..OpenOptions::create()
        };
        let ch = Channel::open(&name, &opts).unwrap();
        let done = AtomicU64::new(0);
        let started = Instant::now();
        // Two killers, each with one joiner in flight: spawn it, let it run 0-12 ms (its
        // start-up included), SIGKILL it, reap it.
        std::thread::scope(|s| {
            for k in 0..2u64 {
                let (name, done) = (&name, &done);
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((k + 1) * 0x1234_5678_9abc));
                    while done.fetch_add(1, Ordering::Relaxed) < kills {
                        let seed = rng.next().to_string();
                        let mut child = spawn_child(
                            "child_joiner",
                            "joiner",
                            name,
                            &[("SHMRING_TEST_SEED", seed)],
                        );
                        std::thread::sleep(Duration::from_micros(rng.upto(12_000) as u64));
                        child.kill();
                    }
                });
            }
        });
        let dead = ch.participants().iter().filter(|p| !p.alive).count();
        eprintln!(
            "{kind:?}/{sync:?}: {kills} SIGKILLs in {:.1} s; {dead} of {SLOTS} slots held by \
             dead processes afterwards",
            started.elapsed().as_secs_f64()
        );
        take_every_slot(&ch);
    }
}

const NS_MESSAGES: u32 = 200_000;
const NS_PAUSE_EVERY: u32 = 20_000;

/// Child (in another PID namespace, perhaps as another user): subscribes, says so through
/// its slot, and receives `NS_MESSAGES` tagged messages in order, pausing 300 ms every
/// `NS_PAUSE_EVERY` (long enough for the producer to sweep for dead participants many times).
#[test]
fn child_ns_subscriber() {
    let Some(name) = child_role("ns-subscriber") else {
        return;
    };
    // Run as another user in the second round: the channel is root's.
    let opts = OpenOptions {
        allow_foreign_owner: true,
        ..OpenOptions::default()
    };
    let ch = Channel::open(&name, &opts).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut out = Vec::new();
    for seq in 0..NS_MESSAGES {
        if seq % NS_PAUSE_EVERY == NS_PAUSE_EVERY - 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(
            sub.recv_timeout(&mut out, Some(Duration::from_secs(60)))
                .unwrap(),
            "message {seq} never came"
        );
        assert_eq!(common::untag(&out), (0, seq), "out of order or lost");
    }
    assert_eq!(sub.lost(), 0);
}

/// A subscriber whose pid means nothing here (it runs in a PID namespace of its own, the way
/// containers sharing `/dev/shm` do; in the second round also as another user) pauses now
/// and then while a producer here publishes into a small `block` ring and sweeps for dead
/// participants whenever the ring is full: its slot is never taken from it, and it gets
/// every message, in order.
#[test]
fn subscriber_in_another_pid_namespace_keeps_its_slot() {
    if !common::can_unshare("subscriber_in_another_pid_namespace_keeps_its_slot") {
        return;
    }
    let ns = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let as_nobody = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let copy = common::ExeCopy::new();
    for (wrapper, exe) in [(&ns[..], None), (&as_nobody[..], Some(copy.0.as_path()))] {
        let name = unique("pidns");
        let _g = Unlink::new(&name);
        let opts = OpenOptions {
            capacity: Some(64 * 1024),
            policy: Some(Policy::Block),
            mode: 0o666,
            ..OpenOptions::create()
        };
        let ch = Channel::open(&name, &opts).unwrap();
        let mut p = ch.producer().unwrap();
        let mut child = spawn_child_under(
            wrapper,
            exe,
            "child_ns_subscriber",
            "ns-subscriber",
            &name,
            &[],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ch
            .participants()
            .iter()
            .any(|s| s.role == Some(Role::Subscriber))
        {
            assert!(!child.exited(), "the subscriber exited before joining");
            assert!(Instant::now() < deadline, "the subscriber never joined");
            std::thread::sleep(Duration::from_millis(2));
        }
        let parts = ch.participants();
        assert!(
            parts.iter().all(|s| s.alive),
            "{wrapper:?}: a live participant is judged dead: {parts:?}"
        );
        for seq in 0..NS_MESSAGES {
            p.publish_timeout(&common::tagged(0, seq, 24), Some(Duration::from_secs(60)))
                .unwrap_or_else(|e| panic!("publish {seq} ({wrapper:?}): {e}"));
        }
        child.finish(Duration::from_secs(120));
    }
}

/// A child forked without `exec` shares its parent's slot locks; dropping its copy of the
/// parent's producer must not release the parent's slot (nor its lock): the parent's producer
/// stays listed and alive, to this handle and to another open file description.
#[test]
fn a_forked_child_never_releases_its_parents_slot() {
    let name = unique("fork");
    let _g = Unlink::new(&name);
    let ch = Channel::open(&name, &OpenOptions::create()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    // SAFETY: the child only drops the producer (atomics and one fcntl) and _exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        drop(p);
        // SAFETY: _exit ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    let me = std::process::id();
    let other = Channel::open(&name, &OpenOptions::default()).unwrap();
    for parts in [ch.participants(), other.participants()] {
        assert!(
            parts
                .iter()
                .any(|s| s.role == Some(Role::Producer) && s.alive && s.pid == me),
            "the parent's producer slot was released by its child: {parts:?}"
        );
    }
    assert!(p.try_publish(b"still mine").unwrap());
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, b"still mine");
}
