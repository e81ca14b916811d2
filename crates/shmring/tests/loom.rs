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
    model_with(1_000, f);
}

/// As [`model`], allowing `branches` scheduling points per execution (loom's default is
/// 1,000): the recovery models run readers that poll a dead claim, judge it and skip it,
/// which takes more atomic steps per execution than a plain hand-off.
fn model_with(branches: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = branches;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// A 64-byte ring: two records of 8-byte payloads (32 bytes each) fill it; an empty message
/// (24 bytes) before them makes the next one wrap with padding.
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
/// record (loom reports a race if it does). An empty message (0..24) puts the first 8-byte
/// one at 24..56, so the second pads 56..64 and goes to 64..96, over both.
#[test]
fn wrap_and_reuse_under_back_pressure() {
    wrap_and_reuse(false);
}

/// As `wrap_and_reuse_under_back_pressure` with an exclusive producer, which claims with a
/// Release store of `tail` instead of a CAS.
#[test]
fn exclusive_producer_wraps_and_reuses_under_back_pressure() {
    wrap_and_reuse(true);
}

/// A shared and an exclusive producer, in two threads, each join once (one may be refused
/// with `Busy`, or both) and publish one message and leave. Whoever joins second claims after
/// the first one's record, never over it (the hand-over: the first one's slot release, the
/// second one's join checks and its load of `tail`; loom reports a race if one writes bytes
/// the other wrote or the subscriber copies): the subscriber gets exactly what was
/// published, whole.
#[test]
fn shared_and_exclusive_producers_one_after_the_other() {
    model(|| {
        let ch = Channel::model("m", &tiny4(Kind::Topic, Policy::Block)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let publisher = |exclusive: bool, m: [u8; 8]| {
            let ch = ch.clone();
            loom::thread::spawn(move || {
                let p = if exclusive {
                    ch.exclusive_producer()
                } else {
                    ch.producer()
                };
                // Busy if the other one lives; two 8-byte records fit the empty ring.
                p.ok()
                    .map(|mut p| assert!(p.try_publish(&m).unwrap()))
                    .is_some()
            })
        };
        let shared = publisher(false, msg(1, 0));
        let exclusive = publisher(true, msg(2, 0));
        let mut want = Vec::new();
        if shared.join().unwrap() {
            want.push(msg(1, 0).to_vec());
        }
        if exclusive.join().unwrap() {
            want.push(msg(2, 0).to_vec());
        }
        let mut got = Vec::new();
        let mut out = Vec::new();
        while sub.try_recv(&mut out).unwrap() {
            got.push(out.clone());
        }
        got.sort();
        assert_eq!(got, want);
    });
}

/// A plain and an exclusive producer join at once on one handle: never both (the handle's
/// word and the slots, with the fences between; the file lock that other handles and
/// processes see is the kernel's, and not modelled).
#[test]
fn exclusive_and_plain_producers_never_both_join() {
    model(|| {
        let ch = Channel::model("m", &tiny4(Kind::Topic, Policy::Block)).unwrap();
        let other = {
            let ch = ch.clone();
            // The producer is handed back, not dropped: it lives until both have tried.
            loom::thread::spawn(move || ch.producer().ok())
        };
        let exclusive = ch.exclusive_producer();
        let plain = other.join().unwrap();
        assert!(!(plain.is_some() && exclusive.is_ok()), "both joined");
    });
}

fn wrap_and_reuse(exclusive: bool) {
    model(move || {
        let ch = Channel::model("m", &tiny(Kind::Topic)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let producer = {
            let ch = ch.clone();
            loom::thread::spawn(move || {
                let mut prod = if exclusive {
                    ch.exclusive_producer().unwrap()
                } else {
                    ch.producer().unwrap()
                };
                assert!(prod.try_publish(&[]).unwrap());
                for seq in 0..2u8 {
                    while !prod.try_publish(&msg(7, seq)).unwrap() {
                        loom::thread::yield_now();
                    }
                }
            })
        };
        let mut out = Vec::new();
        while !sub.try_recv(&mut out).unwrap() {
            loom::thread::yield_now();
        }
        assert!(out.is_empty());
        for seq in 0..2u8 {
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
    model(|| blocking_handoffs(Channel::model("m", &tiny(Kind::Topic)).unwrap(), 3));
}

/// A blocking subscriber of `ch` receives `n` messages that a producer thread publishes,
/// blocking too when the ring is full.
fn blocking_handoffs(ch: Channel, n: u8) {
    let mut sub = ch.subscribe().unwrap();
    sub.set_wait_strategy(WaitStrategy::Block);
    let producer = {
        let ch = ch.clone();
        loom::thread::spawn(move || {
            let mut prod = ch.producer().unwrap();
            for seq in 0..n {
                prod.publish_timeout(&msg(1, seq), None).unwrap();
            }
        })
    };
    let mut out = Vec::new();
    for seq in 0..n {
        assert!(sub.recv_timeout(&mut out, None).unwrap());
        assert_eq!(out, msg(1, seq));
    }
    producer.join().unwrap();
}

/// The readers' doorbell without the fence on the publish side: producers in a process
/// registered for the membarrier skip it, and a reader that cannot issue the membarrier has
/// marked the waiter word (`WAITERS_FENCED`, when it subscribed, before the producer thread
/// started) so that they fence after all, and load the count again. In every interleaving the
/// blocked subscriber is woken (a lost wake-up deadlocks, which loom reports; without the
/// second load it does). Not modelled: a mark set while a producer is publishing (what the
/// 50 ms nap cap covers), and the membarrier pair itself, which stands for the two fences
/// `blocking_waits_are_always_woken` checks (`barrier.rs`).
#[test]
fn fenceless_publishes_wake_readers_that_marked_the_doorbell() {
    model(|| {
        let ch = Channel::model_without_membarrier("m", &tiny(Kind::Topic)).unwrap();
        blocking_handoffs(ch, 2);
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

/// `tiny` with room for a dead producer, a live one and two readers.
fn tiny4(kind: Kind, policy: Policy) -> OpenOptions {
    OpenOptions {
        policy: Some(policy),
        max_participants: Some(4),
        ..tiny(kind)
    }
}

/// Two queue consumers recover the same dead claim (at 0, nothing written; both have waited
/// at it once, so their next look judges it) while a producer publishes a message that reuses
/// the dead claim's bytes (position 64, offset 0) once the queue head is past them. In every
/// interleaving, including a consumer preempted between judging the claim dead and acting on
/// it, each message is taken exactly once and whole, and no byte is read while it is written.
#[test]
fn queue_recoverers_race_while_the_space_is_reused() {
    model_with(5_000, || {
        let ch = Channel::model("m", &tiny4(Kind::Queue, Policy::Block)).unwrap();
        assert!(ch.producer().unwrap().claim_and_die(8));
        let mut prod = ch.producer().unwrap();
        assert!(prod.try_publish(&msg(2, 0)).unwrap()); // at 24
        let mut out = Vec::new();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut c = ch.subscribe().unwrap();
                c.set_recovery_poll(std::time::Duration::ZERO);
                assert!(
                    !c.try_recv(&mut out).unwrap(),
                    "waits at the dead claim once"
                );
                c
            })
            .collect();
        let threads: Vec<_> = consumers
            .into_iter()
            .enumerate()
            .map(|(k, mut c)| {
                let mut prod =
                    (k == 1).then(|| std::mem::replace(&mut prod, ch.producer().unwrap()));
                loom::thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut mine = Vec::new();
                    if c.try_recv(&mut out).unwrap() {
                        mine.push(out.clone());
                    }
                    // Padding 48..64, the record at 64: the dead claim's offset.
                    let sent = prod
                        .as_mut()
                        .is_some_and(|p| p.try_publish(&msg(2, 1)).unwrap());
                    (mine, sent)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut sent = 1;
        for t in threads {
            let (mine, s) = t.join().unwrap();
            all.extend(mine);
            sent += s as usize;
        }
        let mut c = ch.subscribe().unwrap();
        c.set_recovery_poll(std::time::Duration::ZERO);
        for _ in 0..4 {
            if c.try_recv(&mut out).unwrap() {
                all.push(out.clone());
            }
        }
        all.sort();
        let want: Vec<Vec<u8>> = (0..sent as u8).map(|s| msg(2, s).to_vec()).collect();
        assert_eq!(all, want);
    });
}

/// Overwrite policy: a dead claim with nothing written 16 bytes before the end of the lap
/// (too short for a record, so it padded and put its record at the next lap's start), two
/// subscribers recovering it at once (both have waited at it once), then a message after it.
/// No recovery ever errs, and both get the message, whole, with nothing counted lost, in
/// every interleaving (recoverers that wrote padding and an abandoned record could make each
/// other see a record that "splits a header").
#[test]
fn two_subscribers_recover_a_padded_empty_claim() {
    model_with(5_000, || {
        let ch = Channel::model("m", &tiny4(Kind::Topic, Policy::Overwrite)).unwrap();
        let mut subs: Vec<_> = (0..2).map(|_| ch.subscribe().unwrap()).collect();
        let mut out = Vec::new();
        {
            // Two empty messages of 24 bytes each (header and the overwrite word): 0..48.
            let mut filler = ch.producer().unwrap();
            assert!(filler.try_publish(&[]).unwrap());
            assert!(filler.try_publish(&[]).unwrap());
        }
        for s in &mut subs {
            s.set_recovery_poll(std::time::Duration::ZERO);
            for k in 0..2 {
                assert!(s.try_recv(&mut out).unwrap(), "filler {k}");
                assert!(out.is_empty());
            }
        }
        // 32 bytes do not fit in the 16 left: padding 48..64, the record at 64..96.
        assert!(ch.producer().unwrap().claim_and_die(8));
        for s in &mut subs {
            assert!(
                !s.try_recv(&mut out).unwrap(),
                "waits at the dead claim once"
            );
        }
        // Both recover the dead claim at once (one on a thread of its own, one here).
        let mut second = subs.pop().unwrap();
        let mut first = subs.pop().unwrap();
        let t = loom::thread::spawn(move || {
            let mut out = Vec::new();
            assert!(!first.try_recv(&mut out).unwrap(), "nothing committed yet");
            first
        });
        assert!(!second.try_recv(&mut out).unwrap(), "nothing committed yet");
        let first = t.join().unwrap();
        let mut prod = ch.producer().unwrap();
        assert!(prod.try_publish(&msg(3, 0)).unwrap());
        for mut s in [first, second] {
            let mut got = None;
            for _ in 0..4 {
                if got.is_none() {
                    let mut out = Vec::new();
                    got = s.try_recv(&mut out).unwrap().then_some(out);
                }
            }
            assert_eq!(got, Some(msg(3, 0).to_vec()));
            assert_eq!(s.lost(), 0);
        }
    });
}

/// A named subscriber reads ahead of what it consumed: a message it holds (received, not yet
/// consumed by its next receive) is never overwritten, even once the producer needs its space
/// (loom reports a race if a producer writes bytes the subscriber still copies), and it gets
/// every message in order across the wrap. Then it leaves (its slot goes away, its cursor
/// stays) and a new subscription of the name resumes after what was consumed.
#[test]
fn named_subscriber_holds_what_it_read_until_consumed() {
    model(|| {
        let ch = Channel::model("m", &tiny(Kind::Topic)).unwrap();
        let mut sub = ch.subscribe_named("audit").unwrap();
        let producer = {
            let ch = ch.clone();
            loom::thread::spawn(move || {
                let mut prod = ch.producer().unwrap();
                for seq in 0..3u8 {
                    while !prod.try_publish(&msg(5, seq)).unwrap() {
                        loom::thread::yield_now();
                    }
                }
            })
        };
        let mut out = Vec::new();
        for seq in 0..2u8 {
            while !sub.try_recv(&mut out).unwrap() {
                loom::thread::yield_now();
            }
            assert_eq!(out, msg(5, seq));
        }
        producer.join().unwrap();
        // Message 1 is in hand: leaving does not consume it.
        drop(sub);
        let mut again = ch.subscribe_named("audit").unwrap();
        for seq in 1..3u8 {
            assert!(again.try_recv(&mut out).unwrap());
            assert_eq!(out, msg(5, seq));
        }
    });
}

// ---- at-least-once queues -------------------------------------------------------------------

/// `tiny4` as an at-least-once queue.
fn tiny_acked() -> OpenOptions {
    OpenOptions {
        delivery: Some(shmring::Delivery::AtLeastOnce),
        ..tiny4(Kind::Queue, Policy::Block)
    }
}

/// Receives once and acknowledges what it got (by the next receive, which is the auto-ack).
fn take_once(c: &mut shmring::Subscriber, mine: &mut Vec<Vec<u8>>) {
    let mut out = Vec::new();
    if c.try_recv(&mut out).unwrap() {
        mine.push(out);
        if let Some(p) = c.last_position() {
            c.ack(p);
        }
    }
}

/// A consumer took the first message and died without acknowledging it. A live consumer
/// takes it over while a producer tries to publish a third message into the space the first
/// one holds (the ring is full). In every interleaving the first message is delivered again
/// exactly once, the second exactly once, the third (if the space was freed) once, and no
/// byte is read while it is written: the dead consumer's range holds the ring until whoever
/// took it over acknowledged it. (Two live consumers racing for a range are the next model.)
#[test]
fn a_dead_consumers_range_is_delivered_again_once() {
    model_with(20_000, || {
        let ch = Channel::model("m", &tiny_acked()).unwrap();
        let mut prod = ch.producer().unwrap();
        assert!(prod.try_publish(&msg(1, 0)).unwrap());
        assert!(prod.try_publish(&msg(1, 1)).unwrap());
        let mut dead = ch.subscribe().unwrap();
        dead.set_auto_commit(false);
        let mut out = Vec::new();
        assert!(dead.try_recv(&mut out).unwrap());
        assert_eq!(out, msg(1, 0));
        dead.die();
        let mut c = ch.subscribe().unwrap();
        let consumer = loom::thread::spawn(move || {
            let mut mine = Vec::new();
            take_once(&mut c, &mut mine);
            (mine, c)
        });
        let sent = prod.try_publish(&msg(1, 2)).unwrap();
        let (mut all, mut c) = consumer.join().unwrap();
        for _ in 0..3 {
            take_once(&mut c, &mut all);
        }
        all.sort();
        let mut want = vec![msg(1, 0).to_vec(), msg(1, 1).to_vec()];
        if sent {
            want.push(msg(1, 2).to_vec());
        }
        assert_eq!(all, want);
    });
}

/// A consumer published a take of both messages (with `acquire`, it also got `taker`) and
/// died before completing it. Two live consumers race: whoever finds the take completes it
/// (the range is then the dead consumer's, and one of them takes it over) or, if it never got
/// `taker`, fails it. Each message is delivered once.
#[test]
fn a_take_left_by_a_dead_consumer_is_completed_or_failed() {
    for acquire in [false, true] {
        model_with(20_000, move || {
            let ch = Channel::model("m", &tiny_acked()).unwrap();
            {
                let mut prod = ch.producer().unwrap();
                assert!(prod.try_publish(&msg(1, 0)).unwrap());
                assert!(prod.try_publish(&msg(1, 1)).unwrap());
            }
            assert_eq!(ch.subscribe().unwrap().take_and_die(acquire), 2);
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let mut c = ch.subscribe().unwrap();
                    loom::thread::spawn(move || {
                        let mut mine = Vec::new();
                        take_once(&mut c, &mut mine);
                        mine
                    })
                })
                .collect();
            let mut all: Vec<Vec<u8>> = consumers
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            let mut c = ch.subscribe().unwrap();
            for _ in 0..3 {
                take_once(&mut c, &mut all);
            }
            all.sort();
            assert_eq!(all, vec![msg(1, 0).to_vec(), msg(1, 1).to_vec()]);
        });
    }
}
