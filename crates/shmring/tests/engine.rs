//! The engine in every combination: topic and queue, lock-free and semaphore, block and
//! overwrite, with threads and with real processes. Each behaviour runs against both sync
//! modes. Heavy counts scale down by default and run in full from `npm run stress`
//! (`SHMRING_STRESS_COUNT`, `SHMRING_HANDOFFS`).
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use shmring::{Channel, Kind, OpenOptions, Policy, SyncMode, WaitStrategy, layout};

const MODES: [SyncMode; 2] = [SyncMode::LockFree, SyncMode::Semaphore];

fn opts(kind: Kind, sync: SyncMode, policy: Policy, capacity: u64) -> OpenOptions {
    OpenOptions {
        kind: Some(kind),
        sync: Some(sync),
        policy: Some(policy),
        capacity: Some(capacity),
        max_message_size: Some(512),
        ..OpenOptions::create()
    }
}

fn count_from_env(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Publishes `n` tagged messages of varying size as `producer`, waiting for room.
fn produce(ch: &Channel, producer: u32, n: u32) {
    let mut p = ch.producer().unwrap();
    let mut rng = Rng(0x9e37_79b9 ^ producer as u64);
    for seq in 0..n {
        let msg = tagged(producer, seq, 8 + rng.upto(200));
        p.publish_timeout(&msg, Some(Duration::from_secs(120)))
            .unwrap();
    }
}

/// Receives until `n` messages arrived; returns (per-producer order violations, the sum of
/// FNV hashes, the set of (producer, seq) seen).
fn consume(
    sub: &mut shmring::Subscriber,
    n: u64,
    distinct: bool,
) -> (u64, u64, HashSet<(u32, u32)>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = std::collections::HashMap::<u32, u32>::new();
    let mut seen = HashSet::new();
    let (mut got, mut disorder, mut sum) = (0u64, 0u64, 0u64);
    while got < n {
        let d = sub.drain_into(&mut buf, 256).unwrap();
        if d.count == 0 {
            sub.wait(Some(Duration::from_millis(200)));
            continue;
        }
        for f in frames(&buf[..d.bytes]) {
            let (p, s) = untag(f);
            let e = next.entry(p).or_insert(0);
            if distinct {
                // Queue: each consumer sees an increasing subsequence of each producer.
                if s < *e {
                    disorder += 1;
                }
            } else if s != *e {
                disorder += 1;
            }
            *e = s + 1;
            sum = sum.wrapping_add(fnv(f));
            seen.insert((p, s));
            got += 1;
        }
    }
    (disorder, sum, seen)
}

fn expected_sum(producers: u32, n: u32) -> u64 {
    let mut sum = 0u64;
    for p in 0..producers {
        let mut rng = Rng(0x9e37_79b9 ^ p as u64);
        for s in 0..n {
            sum = sum.wrapping_add(fnv(&tagged(p, s, 8 + rng.upto(200))));
        }
    }
    sum
}

#[test]
fn topic_fans_out_every_message_to_every_subscriber() {
    for sync in MODES {
        let n = unique("fanout");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(Kind::Topic, sync, Policy::Block, 16384)).unwrap();
        let per = 5_000u32;
        let subs: Vec<_> = (0..3).map(|_| ch.subscribe().unwrap()).collect();
        std::thread::scope(|s| {
            let readers: Vec<_> = subs
                .into_iter()
                .map(|mut sub| s.spawn(move || consume(&mut sub, 2 * per as u64, false)))
                .collect();
            for p in 0..2 {
                let ch = &ch;
                s.spawn(move || produce(ch, p, per));
            }
            for r in readers {
                let (disorder, sum, seen) = r.join().unwrap();
                assert_eq!(disorder, 0, "{sync:?}: per-producer order");
                assert_eq!(seen.len(), 2 * per as usize, "{sync:?}: every message");
                assert_eq!(sum, expected_sum(2, per), "{sync:?}: checksum");
            }
        });
    }
}

#[test]
fn queue_hands_each_message_to_exactly_one_consumer() {
    for sync in MODES {
        let n = unique("queue");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(Kind::Queue, sync, Policy::Block, 16384)).unwrap();
        let per = 5_000u32;
        let total = 2 * per as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    let mut sub = ch.subscribe().unwrap();
                    let done = &done;
                    s.spawn(move || {
                        let mut buf = vec![0u8; 8192];
                        let mut mine = Vec::new();
                        while done.load(std::sync::atomic::Ordering::SeqCst) < total {
                            let d = sub.drain_into(&mut buf, 16).unwrap();
                            if d.count == 0 {
                                sub.wait(Some(Duration::from_millis(20)));
                                continue;
                            }
                            done.fetch_add(d.count as u64, std::sync::atomic::Ordering::SeqCst);
                            for f in frames(&buf[..d.bytes]) {
                                mine.push(untag(f));
                            }
                        }
                        mine
                    })
                })
                .collect();
            for p in 0..2 {
                let ch = &ch;
                s.spawn(move || produce(ch, p, per));
            }
            let mut all = Vec::new();
            let mut busy = 0;
            for c in consumers {
                let mine = c.join().unwrap();
                busy += usize::from(!mine.is_empty());
                all.extend(mine);
            }
            let distinct: HashSet<_> = all.iter().copied().collect();
            assert_eq!(all.len() as u64, total, "{sync:?}: delivered count");
            assert_eq!(distinct.len() as u64, total, "{sync:?}: no duplicates");
            assert!(busy >= 1, "{sync:?}: consumers took work");
        });
    }
}

#[test]
fn queue_keeps_messages_until_a_consumer_comes() {
    for sync in MODES {
        let n = unique("qbuffer");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(Kind::Queue, sync, Policy::Block, 16384)).unwrap();
        let mut p = ch.producer().unwrap();
        for i in 0..10u32 {
            assert!(p.try_publish(&tagged(0, i, 16)).unwrap());
        }
        let mut c = ch.subscribe().unwrap();
        let mut out = Vec::new();
        for i in 0..10u32 {
            assert!(c.try_recv(&mut out).unwrap(), "{sync:?}: message {i}");
            assert_eq!(untag(&out), (0, i));
        }
        assert!(!c.try_recv(&mut out).unwrap());
    }
}

#[test]
fn overwrite_laps_a_slow_subscriber_which_counts_what_it_lost() {
    for sync in MODES {
        let n = unique("overwrite");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &opts(Kind::Topic, sync, Policy::Overwrite, 8192)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let total = 20_000u32;
        for seq in 0..total {
            // Never full: the slow subscriber does not hold the producer back.
            assert!(p.try_publish(&tagged(0, seq, 64)).unwrap(), "{sync:?}");
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = None;
        let mut received = 0u64;
        loop {
            let d = sub.drain_into(&mut buf, 1024).unwrap();
            if d.count == 0 {
                break;
            }
            for f in frames(&buf[..d.bytes]) {
                let (_, s) = untag(f); // whole, undamaged
                assert!(last.is_none_or(|l| s > l), "{sync:?}: in order");
                last = Some(s);
                received += 1;
            }
        }
        assert_eq!(last, Some(total - 1), "{sync:?}: ends with the newest");
        assert!(sub.lost() > 0, "{sync:?}: it was lapped");
        assert_eq!(
            received + sub.lost(),
            total as u64,
            "{sync:?}: lost is exact"
        );
    }
}

#[test]
fn wait_strategies_all_deliver() {
    for strategy in [
        WaitStrategy::Adaptive,
        WaitStrategy::Spin,
        WaitStrategy::Block,
    ] {
        let n = unique("wait");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
        let mut sub = ch.subscribe().unwrap();
        sub.set_wait_strategy(strategy);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut p = ch.producer().unwrap();
                for i in 0..1000u32 {
                    p.publish_timeout(&tagged(0, i, 16), None).unwrap();
                }
            });
            let mut out = Vec::new();
            for i in 0..1000u32 {
                assert!(
                    sub.recv_timeout(&mut out, Some(Duration::from_secs(60)))
                        .unwrap()
                );
                assert_eq!(untag(&out), (0, i), "{strategy:?}");
            }
        });
    }
}

// ---- across processes ---------------------------------------------------------------------

/// Child: publishes `SHMRING_N` tagged messages as producer `SHMRING_ID`.
#[test]
fn child_stress_producer() {
    let Some(name) = child_role("stress-producer") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    produce(
        &ch,
        env_u64("SHMRING_ID") as u32,
        env_u64("SHMRING_N") as u32,
    );
}

/// Child: subscribes (or consumes), writes `ready` to `SHMRING_OUT.ready`, receives until
/// the channel's producers are done, and writes `count disorder sum distinct` to
/// `SHMRING_OUT`.
#[test]
fn child_stress_reader() {
    let Some(name) = child_role("stress-reader") else {
        return;
    };
    let out = std::env::var("SHMRING_OUT").unwrap();
    let expect = env_u64("SHMRING_EXPECT");
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    std::fs::write(format!("{out}.ready"), "ready").unwrap();
    let queue = ch.descriptor().kind == Kind::Queue;
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = std::collections::HashMap::<u32, u32>::new();
    let (mut got, mut disorder, mut sum) = (0u64, 0u64, 0u64);
    let stop = format!("{out}.stop");
    loop {
        let d = sub.drain_into(&mut buf, 256).unwrap();
        if d.count == 0 {
            if (!queue && got >= expect) || std::path::Path::new(&stop).exists() {
                // Queue consumers stop when told that all messages were taken.
                if sub.drain_into(&mut buf, 256).unwrap().count == 0 {
                    break;
                }
                continue;
            }
            sub.wait(Some(Duration::from_millis(50)));
            continue;
        }
        for f in frames(&buf[..d.bytes]) {
            let (p, s) = untag(f);
            let e = next.entry(p).or_insert(0);
            if (queue && s < *e) || (!queue && s != *e) {
                disorder += 1;
            }
            *e = s + 1;
            sum = sum.wrapping_add(fnv(f));
            got += 1;
        }
    }
    std::fs::write(&out, format!("{got} {disorder} {sum}")).unwrap();
}

fn wait_for_file(path: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !std::path::Path::new(path).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 4 producer processes into a topic with 3 subscriber processes (each gets everything, in
/// per-producer order) and into a queue with 3 consumer processes (each message exactly once
/// across them), in both sync modes.
#[test]
fn stress_four_producer_processes_three_readers_both_kinds_both_modes() {
    let per = count_from_env("SHMRING_STRESS_COUNT", 10_000) as u32;
    let producers = 4u32;
    let total = (producers * per) as u64;
    let dir = std::env::temp_dir();
    for sync in MODES {
        for kind in [Kind::Topic, Kind::Queue] {
            let started = std::time::Instant::now();
            let n = unique("stress");
            let _g = Unlink::new(&n);
            let _creator = Channel::open(&n, &opts(kind, sync, Policy::Block, 1 << 16)).unwrap();
            let outs: Vec<String> = (0..3)
                .map(|i| {
                    dir.join(format!("{n}.{i}.out"))
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            let mut readers: Vec<_> = outs
                .iter()
                .map(|o| {
                    spawn_child(
                        "child_stress_reader",
                        "stress-reader",
                        &n,
                        &[
                            ("SHMRING_OUT", o.clone()),
                            ("SHMRING_EXPECT", total.to_string()),
                        ],
                    )
                })
                .collect();
            for o in &outs {
                wait_for_file(&format!("{o}.ready"));
            }
            let writers: Vec<_> = (0..producers)
                .map(|id| {
                    spawn_child(
                        "child_stress_producer",
                        "stress-producer",
                        &n,
                        &[
                            ("SHMRING_ID", id.to_string()),
                            ("SHMRING_N", per.to_string()),
                        ],
                    )
                })
                .collect();
            for w in writers {
                w.finish(Duration::from_secs(600));
            }
            if kind == Kind::Queue {
                // Every message is in the ring or taken; tell consumers to stop once it is empty.
                for o in &outs {
                    std::fs::write(format!("{o}.stop"), "").unwrap();
                }
            }
            for r in readers.drain(..) {
                r.finish(Duration::from_secs(600));
            }
            let results: Vec<(u64, u64, u64)> = outs
                .iter()
                .map(|o| {
                    let s = std::fs::read_to_string(o).unwrap();
                    let v: Vec<u64> = s.split(' ').map(|x| x.parse().unwrap()).collect();
                    for suffix in ["", ".ready", ".stop"] {
                        let _ = std::fs::remove_file(format!("{o}{suffix}"));
                    }
                    (v[0], v[1], v[2])
                })
                .collect();
            let want = expected_sum(producers, per);
            eprintln!(
                "stress {sync:?} {kind:?}: {producers} producer processes x {per}, 3 readers got {:?} \
                 (order violations {:?}) in {:.2} s",
                results.iter().map(|r| r.0).collect::<Vec<_>>(),
                results.iter().map(|r| r.1).collect::<Vec<_>>(),
                started.elapsed().as_secs_f64()
            );
            if kind == Kind::Topic {
                for (got, disorder, sum) in &results {
                    assert_eq!(*got, total, "{sync:?} topic: every subscriber gets all");
                    assert_eq!(*disorder, 0, "{sync:?} topic: per-producer order");
                    assert_eq!(*sum, want, "{sync:?} topic: checksum");
                }
            } else {
                let got: u64 = results.iter().map(|r| r.0).sum();
                let sum = results.iter().fold(0u64, |a, r| a.wrapping_add(r.2));
                assert_eq!(got, total, "{sync:?} queue: each message once");
                assert_eq!(
                    sum, want,
                    "{sync:?} queue: checksum (no duplicates or losses)"
                );
                assert!(results.iter().all(|r| r.1 == 0), "{sync:?} queue: order");
            }
        }
    }
}

/// Child: echoes every message of channel `ping` back on `SHMRING_PONG`, blocking with no
/// timeout, `SHMRING_N` times.
#[test]
fn child_echo() {
    let Some(ping) = child_role("echo") else {
        return;
    };
    let pong = std::env::var("SHMRING_PONG").unwrap();
    let n = env_u64("SHMRING_N");
    let ping = Channel::open(&ping, &OpenOptions::default()).unwrap();
    let pong = Channel::open(&pong, &OpenOptions::default()).unwrap();
    let mut sub = ping.subscribe().unwrap();
    sub.set_wait_strategy(WaitStrategy::Block);
    std::fs::write(std::env::var("SHMRING_OUT").unwrap(), "ready").unwrap();
    let mut p = pong.producer().unwrap();
    let mut msg = Vec::new();
    for _ in 0..n {
        assert!(sub.recv_timeout(&mut msg, None).unwrap());
        p.publish_timeout(&msg, None).unwrap();
    }
}

/// Blocking hand-offs between two processes with no wait timeout: any lost wake-up would
/// hang one side forever (and fail the generous deadline). Both processes use the
/// membarrier where the kernel has it: publishes without a fence, sleepers with the barrier.
#[test]
fn blocking_handoffs_between_processes_never_lose_a_wakeup() {
    handoffs(false);
}

/// As above with the echoing child unable to use the membarrier (`SHMRING_MEMBARRIER=off`):
/// its subscription marks the readers' doorbell `WAITERS_FENCED`, so our fence-free
/// publishes fence after all, and its own publishes fence as before.
#[test]
fn blocking_handoffs_with_a_reader_that_cannot_use_the_membarrier() {
    handoffs(true);
}

/// The readers' doorbell's waiter word of channel `name`, read through its file.
fn waiter_word(name: &str) -> u32 {
    let bytes = std::fs::read(shm_file(name)).unwrap();
    let at = layout::DATA_WAITERS_OFFSET;
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Whether this process may issue `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (listed by the query and
/// allowed when tried, as the crate decides it; the child inherits our sandbox).
fn membarrier_here() -> bool {
    // SAFETY: MEMBARRIER_CMD_QUERY (0) reads and writes no memory of ours.
    let cmds = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    // SAFETY: MEMBARRIER_CMD_GLOBAL_EXPEDITED (2) likewise.
    cmds > 0 && cmds & 0b10 != 0 && unsafe { libc::syscall(libc::SYS_membarrier, 2, 0, 0) } == 0
}

fn handoffs(child_fenced: bool) {
    let n = count_from_env("SHMRING_HANDOFFS", 20_000);
    let ping_name = unique("ping");
    let pong_name = unique("pong");
    let mut g = Unlink::new(&ping_name);
    g.add(&pong_name);
    let ping = Channel::open(&ping_name, &OpenOptions::create()).unwrap();
    let pong = Channel::open(&pong_name, &OpenOptions::create()).unwrap();
    let mut back = pong.subscribe().unwrap();
    back.set_wait_strategy(WaitStrategy::Block);
    let out = std::env::temp_dir()
        .join(format!("{ping_name}.ready"))
        .to_string_lossy()
        .into_owned();
    let child = spawn_child(
        "child_echo",
        "echo",
        &ping_name,
        &[
            ("SHMRING_PONG", pong_name.clone()),
            ("SHMRING_N", n.to_string()),
            ("SHMRING_OUT", out.clone()),
            (
                "SHMRING_MEMBARRIER",
                (if child_fenced { "off" } else { "on" }).to_owned(),
            ),
        ],
    );
    wait_for_file(&out);
    let _ = std::fs::remove_file(&out);
    let marked = waiter_word(&ping_name) & layout::WAITERS_FENCED != 0;
    // A kernel without the global expedited membarrier marks it either way.
    let want = child_fenced || !membarrier_here();
    assert_eq!(marked, want, "doorbell marked WAITERS_FENCED");
    let mut p = ping.producer().unwrap();
    let mut msg = Vec::new();
    for i in 0..n {
        p.publish_timeout(&i.to_le_bytes(), None).unwrap();
        // The deadline only turns a hang into a failure; no wait inside has a timeout.
        assert!(
            back.recv_timeout(&mut msg, Some(Duration::from_secs(120)))
                .unwrap(),
            "hand-off {i} hung"
        );
        assert_eq!(msg, i.to_le_bytes());
    }
    child.finish(Duration::from_secs(60));
    eprintln!("{n} blocking hand-offs (round trips) between two processes: 0 hangs");
}
