//! The lifecycle of a segment with real processes (issue 4, items 3, 4 and 7): the create
//! race, stale and never-ready segments and `recover`, a channel larger than `/dev/shm`,
//! unlink or removal while participants are attached, a segment shrunk under its users,
//! segments of other users, and the header mismatches `errors.rs` does not cover.
//!
//! Children re-run this test binary (see `common::spawn_child`). A child that has set itself
//! up makes a small *marker* channel `<name>-<mark>` that the parent waits for.
//!
//! Sizes: `SHMRING_LIFECYCLE_ROUNDS` (default 20) rounds of the 16-process create race, and a
//! quarter of that of the 16-process recover race. The full run is 200.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::ffi::CString;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Unlink, child_role, env_or, env_u64, expect_code, patch, peek, set_file_len,
    shm_file, sleep_until_ns, spawn_child, unique, wait_for_file,
};
use shmring::layout;
use shmring::{Channel, ErrorCode, Kind, OpenOptions, Policy, SyncMode};

const LONG: Option<Duration> = Some(Duration::from_secs(20));
const CHILD_WAIT: Duration = Duration::from_secs(30);

fn mark_of(name: &str, mark: &str) -> String {
    format!("{name}-{mark}")
}

/// Child side of a marker: makes `<channel>-<SHMRING_TEST_MARK>`.
fn mark_ready(name: &str) {
    let mark = std::env::var("SHMRING_TEST_MARK").unwrap_or_else(|_| "ready".into());
    Channel::open(
        &mark_of(name, &mark),
        &OpenOptions {
            capacity: Some(4096),
            max_participants: Some(1),
            ..OpenOptions::create()
        },
    )
    .expect("marker channel");
}

/// Spawns `test`/`role` on `name` and waits until it has made its marker `mark`.
fn spawn_ready(
    guard: &mut Unlink,
    test: &str,
    role: &str,
    name: &str,
    mark: &str,
    env: &[(&str, String)],
) -> ChildGuard {
    guard.add(&mark_of(name, mark));
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.push(("SHMRING_TEST_MARK", mark.to_owned()));
    let mut child = spawn_child(test, role, name, &env);
    wait_for_file(&mark_of(name, mark), &mut child, CHILD_WAIT);
    child
}

fn recover() -> OpenOptions {
    OpenOptions {
        recover: true,
        ..OpenOptions::default()
    }
}

/// Child: holds the channel as `SHMRING_TEST_HOLD` says, then sleeps until killed:
/// `create` (creates it with capacity 8192 and publishes one message), `subscribe` (a topic
/// subscriber), `handle` (an open channel without any slot).
#[test]
fn child_holder() {
    let Some(name) = child_role("holder") else {
        return;
    };
    let how = std::env::var("SHMRING_TEST_HOLD").expect("SHMRING_TEST_HOLD");
    let ch = match how.as_str() {
        "create" => {
            let ch = Channel::open(
                &name,
                &OpenOptions {
                    capacity: Some(8192),
                    exclusive: true,
                    ..OpenOptions::create()
                },
            )
            .unwrap();
            ch.producer().unwrap().try_publish(b"old").unwrap();
            ch
        }
        _ => Channel::open(&name, &OpenOptions::default()).unwrap(),
    };
    let _sub = (how == "subscribe").then(|| ch.subscribe().unwrap());
    mark_ready(&name);
    std::thread::sleep(Duration::from_secs(60));
}

// ---- the create race -------------------------------------------------------------------------

const RACERS: u64 = 16;
const RACE_GAP_NS: u64 = 15_000_000;

fn race_name(prefix: &str, round: u64) -> String {
    format!("{prefix}-{round}")
}

/// The options of round `r`: they vary, so that a half-written header could not pass.
fn race_opts(r: u64) -> OpenOptions {
    OpenOptions {
        capacity: Some(4096 << (r % 3)),
        max_message_size: Some(100 + r as u32 % 7),
        max_participants: Some(RACERS as u32 + 1 + (r % 5) as u32),
        kind: Some(if r.is_multiple_of(2) {
            Kind::Topic
        } else {
            Kind::Queue
        }),
        sync: Some(if (r / 2).is_multiple_of(2) {
            SyncMode::LockFree
        } else {
            SyncMode::Semaphore
        }),
        policy: Some(if r.is_multiple_of(4) {
            Policy::Fail
        } else {
            Policy::Block
        }),
        ..OpenOptions::create()
    }
}

/// Whether `ch`'s header is exactly what round `r`'s creator wrote (every field, not just
/// the ones `open` checks), and the channel works.
fn whole_header(ch: &Channel, r: u64) -> bool {
    let want = race_opts(r);
    let d = ch.descriptor();
    let header_ok = d.geometry == want.geometry()
        && Some(d.kind) == want.kind
        && Some(d.sync) == want.sync
        && Some(d.policy) == want.policy
        && d.mode == 0o600
        && d.creator_pid != 0
        && d.creator_start_time != 0
        && d.created_at_ns != 0
        && d.seq_key != 0
        && d.seq_key & 7 == 0
        && (d.creator_pid != std::process::id() || ch.created());
    // The descriptor as read again from the file agrees with what was adopted.
    let file_ok = u64::from_ne_bytes(peek(ch.name(), layout::SEQ_KEY_OFFSET)) == d.seq_key
        && u32::from_ne_bytes(peek(ch.name(), layout::READY_OFFSET)) == layout::READY;
    header_ok && file_ok
}

/// Child of the create race: round `r` at `T0 + r * gap` opens `<prefix>-<r>` with create
/// (odd ids with `recover` as well) and reports `[r u32, created, whole, id]` on
/// `<prefix>-ctl`.
#[test]
fn child_racer() {
    let Some(prefix) = child_role("racer") else {
        return;
    };
    let t0 = env_u64("SHMRING_TEST_T0");
    let rounds = env_u64("SHMRING_TEST_ROUNDS");
    let id = env_u64("SHMRING_TEST_ID");
    let (mut report, mut done) = race_control(&prefix);
    let mut held = Vec::new();
    for r in 0..rounds {
        sleep_until_ns(t0 + r * RACE_GAP_NS);
        let opts = OpenOptions {
            recover: id % 2 == 1,
            ..race_opts(r)
        };
        let (created, whole) = match Channel::open(&race_name(&prefix, r), &opts) {
            Ok(ch) => {
                let r = (ch.created(), whole_header(&ch, r));
                held.push(ch);
                r
            }
            Err(e) => {
                eprintln!("racer {id}, round {r}: {e}");
                (false, false)
            }
        };
        let mut msg = (r as u32).to_le_bytes().to_vec();
        msg.extend([created as u8, whole as u8, id as u8]);
        report.publish_timeout(&msg, LONG).unwrap();
    }
    race_done(&mut done);
}

/// A racer's report producer and its subscription to the parent's "done".
fn race_control(prefix: &str) -> (shmring::Producer, shmring::Subscriber) {
    let ctl = Channel::open(&format!("{prefix}-ctl"), &OpenOptions::default()).unwrap();
    let done = Channel::open(&format!("{prefix}-done"), &OpenOptions::default()).unwrap();
    (ctl.producer().unwrap(), done.subscribe().unwrap())
}

/// A racer stays (attached to every segment of the race) until the parent has every report:
/// a segment whose processes all left would be stale, and a late recoverer would rightly
/// replace it.
fn race_done(done: &mut shmring::Subscriber) {
    let mut out = Vec::new();
    assert!(
        done.recv_timeout(&mut out, Some(CHILD_WAIT)).unwrap(),
        "no done"
    );
}

/// The parent's side: the report queue, and the "done" topic (both created before the
/// children start, so that they can subscribe).
fn race_channels(prefix: &str, guard: &mut Unlink) -> (Channel, Channel) {
    guard.add(&format!("{prefix}-done"));
    let ctl = Channel::open(
        &format!("{prefix}-ctl"),
        &OpenOptions {
            kind: Some(Kind::Queue),
            capacity: Some(1 << 16),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    let done = Channel::open(&format!("{prefix}-done"), &OpenOptions::create()).unwrap();
    (ctl, done)
}

/// Tells the racers to go, once every one of them subscribed to "done".
fn race_finish(done: &Channel, children: Vec<ChildGuard>) {
    let subscribers = || {
        done.participants()
            .iter()
            .filter(|p| p.role == Some(shmring::Role::Subscriber))
            .count()
    };
    let deadline = Instant::now() + CHILD_WAIT;
    while subscribers() < children.len() {
        assert!(Instant::now() < deadline, "racers never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }
    done.producer().unwrap().try_publish(b"done").unwrap();
    for c in children {
        c.finish(CHILD_WAIT);
    }
}

/// 16 processes open one fresh name with create (half of them with `recover` too) at the
/// same instant, round after round: exactly one creates it, all 16 see the whole header.
#[test]
fn create_race_16_processes() {
    let rounds = env_or("SHMRING_LIFECYCLE_ROUNDS", 20);
    let prefix = unique("race16");
    let mut guard = Unlink::new(&format!("{prefix}-ctl"));
    for r in 0..rounds {
        guard.add(&race_name(&prefix, r));
    }
    let (ctl, done) = race_channels(&prefix, &mut guard);
    let mut reports = ctl.subscribe().unwrap();
    // Sixteen test binaries take a while to start on two cores; a late one starts its rounds
    // as soon as it is up.
    let t0 = shmring::process::now_ns() + 1_500_000_000;
    let children: Vec<ChildGuard> = (0..RACERS)
        .map(|id| {
            spawn_child(
                "child_racer",
                "racer",
                &prefix,
                &[
                    ("SHMRING_TEST_T0", t0.to_string()),
                    ("SHMRING_TEST_ROUNDS", rounds.to_string()),
                    ("SHMRING_TEST_ID", id.to_string()),
                ],
            )
        })
        .collect();
    let mut creators = vec![Vec::new(); rounds as usize];
    let mut seen = vec![0u32; rounds as usize];
    let mut broken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..rounds * RACERS {
        assert!(
            reports.recv_timeout(&mut out, LONG).unwrap(),
            "reports stopped; per round: {seen:?}"
        );
        let r = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        seen[r] += 1;
        if out[4] == 1 {
            creators[r].push(out[6]);
        }
        if out[5] != 1 {
            broken.push((r, out[6]));
        }
    }
    race_finish(&done, children);
    assert!(
        broken.is_empty(),
        "(round, racer) that saw a bad header or failed: {broken:?}"
    );
    for r in 0..rounds as usize {
        assert_eq!(seen[r], RACERS as u32, "round {r}");
        assert_eq!(
            creators[r].len(),
            1,
            "round {r}: creators {:?}",
            creators[r]
        );
    }
    let by_recoverers = creators.iter().filter(|c| c[0] % 2 == 1).count();
    eprintln!(
        "create race: {rounds} rounds x {RACERS} processes, one creator each ({by_recoverers} \
         of them opening with recover), no half-initialised header"
    );
}

/// Child of the recover race: round `r` at `T0 + r * gap` opens `<prefix>-<r>` with
/// `recover` and reports `[r u32, created, whole, id, seq_key u64]`.
#[test]
fn child_recoverer() {
    let Some(prefix) = child_role("recoverer") else {
        return;
    };
    let t0 = env_u64("SHMRING_TEST_T0");
    let rounds = env_u64("SHMRING_TEST_ROUNDS");
    let id = env_u64("SHMRING_TEST_ID");
    let (mut report, mut done) = race_control(&prefix);
    let mut held = Vec::new();
    for r in 0..rounds {
        sleep_until_ns(t0 + r * RACE_GAP_NS * 4);
        let opts = OpenOptions {
            recover: true,
            ..race_opts(r)
        };
        let mut msg = (r as u32).to_le_bytes().to_vec();
        match Channel::open(&race_name(&prefix, r), &opts) {
            Ok(ch) => {
                msg.extend([ch.created() as u8, whole_header(&ch, r) as u8, id as u8]);
                msg.extend(ch.descriptor().seq_key.to_le_bytes());
                held.push(ch); // stay attached: the segment is in use from now on
            }
            Err(e) => {
                eprintln!("recoverer {id}, round {r}: {e}");
                msg.extend([0, 0, id as u8]);
                msg.extend(0u64.to_le_bytes());
            }
        }
        report.publish_timeout(&msg, LONG).unwrap();
    }
    race_done(&mut done);
}

/// A stale segment (its creator dead, nobody attached) and 16 processes opening it with
/// `recover` at the same instant: exactly one replaces it, and all 16 end up on that one new
/// segment (never two live processes on different segments under one name).
#[test]
fn recover_race_16_processes() {
    let rounds = (env_or("SHMRING_LIFECYCLE_ROUNDS", 20) / 4).max(1);
    let prefix = unique("recover16");
    let mut guard = Unlink::new(&format!("{prefix}-ctl"));
    let mut stale_keys = Vec::new();
    for r in 0..rounds {
        let name = race_name(&prefix, r);
        guard.add(&name);
        // A stale segment: ours, with its creator's start time changed so that it reads as
        // a dead process; dropped, so that nobody has it mapped.
        let ch = Channel::open(&name, &race_opts(r)).unwrap();
        ch.producer().unwrap().try_publish(b"stale").unwrap();
        stale_keys.push(ch.descriptor().seq_key);
        drop(ch);
        let start: u64 = u64::from_ne_bytes(peek(&name, layout::CREATOR_START_TIME_OFFSET));
        patch(
            &name,
            layout::CREATOR_START_TIME_OFFSET,
            &(start + 1).to_ne_bytes(),
        );
        assert!(shmring::inspect(&name).unwrap().stale);
    }
    let (ctl, done) = race_channels(&prefix, &mut guard);
    let mut reports = ctl.subscribe().unwrap();
    let t0 = shmring::process::now_ns() + 1_500_000_000;
    let children: Vec<ChildGuard> = (0..RACERS)
        .map(|id| {
            spawn_child(
                "child_recoverer",
                "recoverer",
                &prefix,
                &[
                    ("SHMRING_TEST_T0", t0.to_string()),
                    ("SHMRING_TEST_ROUNDS", rounds.to_string()),
                    ("SHMRING_TEST_ID", id.to_string()),
                ],
            )
        })
        .collect();
    let mut creators = vec![0; rounds as usize];
    let mut keys = vec![Vec::new(); rounds as usize];
    let mut out = Vec::new();
    for _ in 0..rounds * RACERS {
        assert!(reports.recv_timeout(&mut out, LONG).unwrap());
        let r = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(
            out[5], 1,
            "round {r}, recoverer {}: bad header or error",
            out[6]
        );
        creators[r] += out[4] as u32;
        keys[r].push(u64::from_le_bytes(out[7..15].try_into().unwrap()));
    }
    race_finish(&done, children);
    for r in 0..rounds as usize {
        let name = race_name(&prefix, r as u64);
        assert_eq!(
            creators[r], 1,
            "round {r}: one recoverer replaces the stale segment"
        );
        let now = shmring::inspect(&name).unwrap().descriptor.seq_key;
        assert_ne!(now, stale_keys[r], "round {r}: replaced");
        assert!(
            keys[r].iter().all(|k| *k == now),
            "round {r}: every recoverer is on the segment now under the name"
        );
    }
}

// ---- stale and never-ready segments, recover -------------------------------------------------

/// A creator SIGKILLed with nobody attached leaves a stale segment: `list()` marks it, a plain
/// open still attaches to it (and then it is in use), and `recover` replaces it once nobody
/// has it open.
#[test]
fn killed_creator_with_nobody_attached_is_recovered() {
    let n = unique("stale");
    let mut g = Unlink::new(&n);
    let mut creator = spawn_ready(
        &mut g,
        "child_holder",
        "holder",
        &n,
        "created",
        &[("SHMRING_TEST_HOLD", "create".into())],
    );
    let old = shmring::inspect(&n).unwrap();
    assert!(old.creator_alive && !old.stale);
    assert_eq!(old.descriptor.creator_pid, creator.id());
    let key = old.descriptor.seq_key;
    // On a live channel, recover just attaches.
    let ch = Channel::open(&n, &recover()).unwrap();
    assert!(!ch.created());
    assert_eq!(ch.descriptor().seq_key, key);
    drop(ch);

    creator.kill();
    let listed = shmring::list().unwrap();
    let s = listed
        .iter()
        .find(|l| l.name == n)
        .expect("listed")
        .summary
        .as_ref()
        .unwrap();
    assert!(s.stale && !s.creator_alive, "{s:?}");
    // A stale segment is still a channel: a plain open attaches (its message is still there)...
    let plain = Channel::open(&n, &OpenOptions::create()).unwrap();
    assert!(!plain.created());
    assert_eq!(plain.descriptor().seq_key, key);
    assert_eq!(
        shmring::summarize(&plain).tail,
        shmring::layout::record::record_len(b"old".len()) as u64
    );
    // ...and while it is open here (even without a slot), recover leaves it alone.
    let held = Channel::open(&n, &recover()).unwrap();
    assert!(!held.created());
    assert_eq!(held.descriptor().seq_key, key);
    drop((plain, held));

    let opts = OpenOptions {
        recover: true,
        capacity: Some(16384),
        ..OpenOptions::default()
    };
    let started = Instant::now();
    let fresh = Channel::open(&n, &opts).unwrap();
    assert!(fresh.created(), "recover replaced the stale segment");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_ne!(fresh.descriptor().seq_key, key);
    assert_eq!(fresh.descriptor().geometry.capacity, 16384);
    assert_eq!(fresh.descriptor().creator_pid, std::process::id());
    assert_eq!(
        shmring::summarize(&fresh).tail,
        0,
        "nothing of the old ring"
    );
    let mut sub = fresh.subscribe().unwrap();
    fresh.producer().unwrap().try_publish(b"new").unwrap();
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, b"new");
}

/// Whoever lives on a segment keeps it: with its creator dead and a live subscriber (or a
/// live process that merely has it open), `recover` attaches instead of replacing it,
/// refuses it with the holder's pid when it cannot attach (exclusive, or options it cannot
/// meet), and `unlink_if_stale` leaves it. Once the holder dies, it is replaced.
#[test]
fn recover_never_replaces_a_segment_in_use() {
    for (hold, role) in [("subscribe", "subscriber"), ("handle", "attached")] {
        let n = unique("inuse");
        let mut g = Unlink::new(&n);
        let mut creator = spawn_ready(
            &mut g,
            "child_holder",
            "holder",
            &n,
            "created",
            &[("SHMRING_TEST_HOLD", "create".into())],
        );
        let mut user = spawn_ready(
            &mut g,
            "child_holder",
            "holder",
            &n,
            "user",
            &[("SHMRING_TEST_HOLD", hold.into())],
        );
        let user_pid = user.id().to_string();
        creator.kill();
        let s = shmring::inspect(&n).unwrap();
        assert!(!s.creator_alive);
        assert!(!s.stale, "{hold}: a live process has it");
        let key = s.descriptor.seq_key;

        let ch = Channel::open(&n, &recover()).unwrap();
        assert!(!ch.created(), "{hold}: attached, not replaced");
        assert_eq!(ch.descriptor().seq_key, key);
        drop(ch);

        let excl = OpenOptions {
            exclusive: true,
            ..recover()
        };
        let msg = expect_code(Channel::open(&n, &excl), ErrorCode::AlreadyExists);
        assert!(
            msg.contains(&format!("pid {user_pid} ({role})")),
            "{hold}: {msg}"
        );
        let bigger = OpenOptions {
            capacity: Some(1 << 16),
            ..recover()
        };
        let msg = expect_code(Channel::open(&n, &bigger), ErrorCode::IncompatibleSegment);
        for needle in ["8192", "65536", &format!("pid {user_pid}")] {
            assert!(msg.contains(needle), "{hold}: {msg:?} lacks {needle}");
        }
        assert!(!shmring::unlink_if_stale(&n).unwrap(), "{hold}");
        assert_eq!(shmring::inspect(&n).unwrap().descriptor.seq_key, key);

        user.kill();
        assert!(shmring::inspect(&n).unwrap().stale);
        let fresh = Channel::open(&n, &bigger).unwrap();
        assert!(fresh.created(), "{hold}: replaced once its last user died");
        assert_eq!(fresh.descriptor().geometry.capacity, 1 << 16);
    }
}

/// Child: does what a creator does up to `SHMRING_TEST_STAGE` (`empty`: made the name and
/// took the lock; `sized`: also sized the file and wrote part of the header, not `ready`),
/// then stops there until killed: a creator killed while creating.
#[test]
fn child_half_creator() {
    let Some(name) = child_role("half-creator") else {
        return;
    };
    let stage = std::env::var("SHMRING_TEST_STAGE").unwrap();
    let path = CString::new(shmring::shm_path(&name)).unwrap();
    // SAFETY: plain system calls on a valid C string and our own descriptor.
    unsafe {
        let fd = libc::shm_open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600 | libc::S_ISVTX, // with the creation mark, as a creator makes it
        );
        assert!(fd >= 0);
        assert_eq!(libc::flock(fd, libc::LOCK_EX), 0);
        if stage == "sized" {
            assert_eq!(libc::ftruncate(fd, 16384), 0);
            let mut head = [0u8; 80];
            head[..8].copy_from_slice(&layout::MAGIC.to_ne_bytes());
            head[64..68].copy_from_slice(&std::process::id().to_ne_bytes());
            head[72..80].copy_from_slice(&shmring::process::self_start_time().to_ne_bytes());
            assert_eq!(libc::pwrite(fd, head.as_ptr().cast(), head.len(), 0), 80);
        }
        let _ = fd; // left open (with its lock) until the process is killed
    }
    mark_ready(&name);
    std::thread::sleep(Duration::from_secs(60));
}

/// A creator killed while creating (before or after sizing the file): while it lives,
/// attachers and recoverers wait for it; once it is dead, attaching is `CorruptSegment`
/// ("never became ready"), and `recover` (or `unlink_if_stale`) replaces (removes) it.
#[test]
fn creator_killed_while_creating_is_recovered() {
    for stage in ["empty", "sized"] {
        let half_made = |g: &mut Unlink, n: &str| {
            spawn_ready(
                g,
                "child_half_creator",
                "half-creator",
                n,
                "ready",
                &[("SHMRING_TEST_STAGE", stage.into())],
            )
        };
        // An attacher waits for the creator, then finds it never finished.
        let n = unique("halfmade");
        let mut g = Unlink::new(&n);
        let mut creator = half_made(&mut g, &n);
        let name = n.clone();
        let attacher = std::thread::spawn(move || {
            Channel::open(&name, &OpenOptions::default()).map(|c| c.created())
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !attacher.is_finished(),
            "{stage}: waits while the creator lives"
        );
        creator.kill();
        let msg = expect_code(attacher.join().unwrap(), ErrorCode::CorruptSegment);
        assert!(msg.contains("never became ready"), "{stage}: {msg}");
        let fresh = Channel::open(&n, &recover()).unwrap();
        assert!(fresh.created(), "{stage}: recover replaces it");
        drop(fresh);

        // A recoverer waits for the creator too, then replaces the segment.
        let n = unique("halfmade-rec");
        g.add(&n);
        let mut creator = half_made(&mut g, &n);
        let name = n.clone();
        let recoverer = std::thread::spawn(move || {
            Channel::open(&name, &recover()).map(|c| (c.created(), c.descriptor().seq_key))
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !recoverer.is_finished(),
            "{stage}: waits while the creator lives"
        );
        assert!(
            !shmring::unlink_if_stale(&n).unwrap(),
            "{stage}: its creator lives"
        );
        creator.kill();
        let killed = Instant::now();
        let (created, key) = recoverer.join().unwrap().expect("recover replaces it");
        assert!(created, "{stage}");
        assert!(killed.elapsed() < Duration::from_secs(3), "{stage}");
        let s = shmring::inspect(&n).unwrap();
        assert_eq!(s.descriptor.seq_key, key);
        assert_eq!(s.descriptor.creator_pid, std::process::id());

        // A never-ready segment is dead for `unlink_if_stale` too.
        let n = unique("halfmade-rm");
        g.add(&n);
        let mut creator = half_made(&mut g, &n);
        creator.kill();
        if stage == "empty" {
            // An empty file may be a creator's between its O_EXCL open and its lock: it is
            // taken for dead only once it is a second old.
            assert!(!shmring::unlink_if_stale(&n).unwrap());
            std::thread::sleep(Duration::from_millis(1000));
        }
        assert!(shmring::unlink_if_stale(&n).unwrap(), "{stage}");
        assert!(std::fs::metadata(shm_file(&n)).is_err());
    }
}

/// `recover` and `unlink_if_stale` replace a never-ready file only if it carries the creation
/// mark (`S_ISVTX`, which a creator sets until the segment is ready): an empty or zero-filled
/// file someone else made stays, however old; FIFOs and symbolic links are refused by every
/// open and removed by `unlink`. A ready segment carries no mark.
#[test]
fn recover_replaces_only_what_shmring_made() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let ready = unique("marked-ready");
    let mut g = Unlink::new(&ready);
    drop(Channel::open(&ready, &OpenOptions::create()).unwrap());
    let mode = std::fs::metadata(shm_file(&ready)).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o600, "a ready segment has no creation mark");

    let empty = unique("foreign-empty");
    let zeros = unique("foreign-zeros");
    g.add(&empty);
    g.add(&zeros);
    std::fs::write(shm_file(&empty), []).unwrap();
    std::fs::write(shm_file(&zeros), vec![0u8; 64 * 1024]).unwrap();
    // Older than the second a creator's empty file is given.
    std::thread::sleep(Duration::from_millis(1100));
    for n in [&empty, &zeros] {
        let ino = std::fs::metadata(shm_file(n)).unwrap().ino();
        // The verdict a plain open gives a file that never became ready, with the reason.
        let msg = expect_code(Channel::open(n, &recover()), ErrorCode::CorruptSegment);
        assert!(msg.contains("creation mark"), "{n}: {msg}");
        expect_code(shmring::unlink_if_stale(n), ErrorCode::CorruptSegment);
        assert_eq!(
            std::fs::metadata(shm_file(n)).unwrap().ino(),
            ino,
            "{n} left alone"
        );
    }
    // The same zero-filled file with the mark is a creator's that died before writing the
    // header: dead.
    std::fs::set_permissions(shm_file(&zeros), std::fs::Permissions::from_mode(0o1600)).unwrap();
    assert!(Channel::open(&zeros, &recover()).unwrap().created());

    let fifo = unique("fifo");
    g.add(&fifo);
    let path = CString::new(shm_file(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let link = unique("symlink");
    g.add(&link);
    std::os::unix::fs::symlink("/nonexistent/target", shm_file(&link)).unwrap();
    for (n, kind) in [(&fifo, "FIFO"), (&link, "symbolic link")] {
        for opts in [OpenOptions::default(), recover(), OpenOptions::create()] {
            let msg = expect_code(Channel::open(n, &opts), ErrorCode::IncompatibleSegment);
            assert!(msg.contains(kind), "{n}: {msg}");
        }
        assert!(
            std::fs::symlink_metadata(shm_file(n)).is_ok(),
            "{n} left alone"
        );
        shmring::unlink(n).unwrap();
        assert!(
            std::fs::symlink_metadata(shm_file(n)).is_err(),
            "{n} removed"
        );
    }
}

/// A remover that died between flagging a segment unlinked and removing its name: the next
/// `open` waits a moment, then finishes the removal (and creates anew if asked to).
#[test]
fn a_segment_left_flagged_unlinked_is_cleared() {
    let n = unique("leftflag");
    let _g = Unlink::new(&n);
    let old = Channel::open(&n, &OpenOptions::create()).unwrap();
    let key = old.descriptor().seq_key;
    drop(old);
    patch(
        &n,
        layout::FLAGS_OFFSET,
        &layout::FLAG_UNLINKED.to_ne_bytes(),
    );
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    assert!(ch.created());
    assert_ne!(ch.descriptor().seq_key, key);
    drop(ch);
    patch(
        &n,
        layout::FLAGS_OFFSET,
        &layout::FLAG_UNLINKED.to_ne_bytes(),
    );
    expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::NotFound,
    );
}

// ---- no room -----------------------------------------------------------------------------------

/// A channel larger than all of `/dev/shm` (so larger than its free space too) is `NoSpace`
/// at `open`, not a SIGBUS when a page is first touched, and leaves no file behind.
#[test]
fn a_channel_larger_than_dev_shm_is_no_space_at_open() {
    // SAFETY: zeroed statvfs is a valid out-parameter; the path is a valid C string.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    let dir = CString::new(shmring::SHM_DIR).unwrap();
    assert_eq!(unsafe { libc::statvfs(dir.as_ptr(), &mut vfs) }, 0);
    let total = vfs.f_blocks as u64 * vfs.f_frsize as u64;
    let free = vfs.f_bavail as u64 * vfs.f_frsize as u64;
    // Above the size of the file system (not just its free space): the kernel refuses the
    // reservation at once instead of filling memory first.
    let capacity = (total + 1).next_power_of_two();
    if capacity > layout::MAX_CAPACITY {
        eprintln!(
            "skipped: /dev/shm ({total} bytes) is larger than the largest channel ({} bytes)",
            layout::MAX_CAPACITY
        );
        return;
    }
    assert!(capacity > free);
    let n = unique("noroom");
    let _g = Unlink::new(&n);
    let plain = OpenOptions {
        capacity: Some(capacity),
        ..OpenOptions::create()
    };
    for opts in [
        plain.clone(),
        OpenOptions {
            exclusive: true,
            ..plain.clone()
        },
        OpenOptions {
            recover: true,
            ..plain.clone()
        },
    ] {
        let started = Instant::now();
        let msg = expect_code(Channel::open(&n, &opts), ErrorCode::NoSpace);
        assert!(
            msg.contains("/dev/shm has no room") && msg.contains(&n),
            "{msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            std::fs::metadata(shm_file(&n)).is_err(),
            "no file left behind"
        );
    }
    // What fits is fine.
    let ok = OpenOptions {
        capacity: Some(4096),
        ..OpenOptions::create()
    };
    assert!(Channel::open(&n, &ok).unwrap().created());
}

// ---- unlink or removal while attached ----------------------------------------------------------

const BEFORE: u32 = 50;

/// Child: subscribes, then receives: the producer's `m<i>` messages in order, then perhaps
/// `late` ones, then `Closed` (nothing else, and within 20 s).
#[test]
fn child_closing_subscriber() {
    let Some(name) = child_role("closing-subscriber") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    mark_ready(&name);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        assert!(Instant::now() < deadline, "no Closed within 20 s");
        match sub.recv_timeout(&mut out, Some(Duration::from_secs(1))) {
            Ok(true) if next < BEFORE => {
                assert_eq!(out, format!("m{next}").as_bytes());
                next += 1;
            }
            Ok(true) => assert_eq!(out, b"late"),
            Ok(false) => {}
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Closed, "{e}");
                let why = std::env::var("SHMRING_TEST_WHY").unwrap();
                assert!(e.message().contains(&why), "{e}");
                break;
            }
        }
    }
    assert_eq!(
        next, BEFORE,
        "every message published before the unlink arrived"
    );
}

/// Child: publishes `m0..m49`, then `late` every millisecond until a publish says `Closed`.
#[test]
fn child_closing_producer() {
    let Some(name) = child_role("closing-producer") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = ch.producer().unwrap();
    for i in 0..BEFORE {
        p.publish_timeout(format!("m{i}").as_bytes(), LONG).unwrap();
    }
    mark_ready(&name);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no Closed within 20 s");
        match p.publish_timeout(b"late", LONG) {
            Ok(()) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Closed, "{e}");
                break;
            }
        }
    }
}

/// `unlink` (or `rm` of the file) and a new channel under the same name while a producer and
/// a subscriber process are attached to the old one: they notice (the producer's publishes
/// fail with `Closed`, the subscriber drains what was published and then gets `Closed`)
/// instead of talking into an orphaned segment, and the new channel sees nothing of them.
#[test]
fn unlink_and_recreate_while_attached_is_noticed() {
    for how in ["unlink", "rm"] {
        let n = unique("unlinked");
        let mut g = Unlink::new(&n);
        let opts = OpenOptions {
            capacity: Some(1 << 16),
            ..OpenOptions::create()
        };
        let old = Channel::open(&n, &opts).unwrap();
        let why = if how == "unlink" {
            "unlinked"
        } else {
            "removed"
        };
        let sub = spawn_ready(
            &mut g,
            "child_closing_subscriber",
            "closing-subscriber",
            &n,
            "sub",
            &[("SHMRING_TEST_WHY", why.into())],
        );
        let producer = spawn_ready(
            &mut g,
            "child_closing_producer",
            "closing-producer",
            &n,
            "prod",
            &[],
        );
        std::thread::sleep(Duration::from_millis(50));
        match how {
            "unlink" => shmring::unlink(&n).unwrap(),
            _ => std::fs::remove_file(shm_file(&n)).unwrap(),
        }
        let new = Channel::open(&n, &opts).unwrap();
        assert!(new.created(), "{how}: a new segment under the name");
        assert_ne!(new.descriptor().seq_key, old.descriptor().seq_key);
        let started = Instant::now();
        sub.finish(CHILD_WAIT);
        producer.finish(CHILD_WAIT);
        eprintln!(
            "{how}: both participants noticed within {:?}",
            started.elapsed()
        );
        assert_eq!(
            shmring::summarize(&new).tail,
            0,
            "{how}: nothing published into the new one"
        );
        assert!(new.participants().is_empty());
        // Our own old handle knows too.
        expect_code(old.producer(), ErrorCode::Closed);
    }
}

// ---- shrunk under its users ------------------------------------------------------------------

const VARIANTS: [(Kind, SyncMode); 4] = [
    (Kind::Topic, SyncMode::LockFree),
    (Kind::Topic, SyncMode::Semaphore),
    (Kind::Queue, SyncMode::LockFree),
    (Kind::Queue, SyncMode::Semaphore),
];

/// A segment shrunk by `ftruncate` after attach, with a reader waiting for data: the waiting
/// reader, a producer's next publish (one that published before, and a fresh one) and a
/// reader's next drain all report `CorruptSegment` instead of dying of SIGBUS, and nothing
/// touches the mapping afterwards (dropping every handle included).
#[test]
fn shrunk_under_a_waiting_reader_is_corrupt_segment_not_sigbus() {
    for (kind, sync) in VARIANTS {
        for len in [4096, 0] {
            let tag = format!("{kind:?}/{sync:?}, shrunk to {len}");
            let n = unique("shrunk");
            let _g = Unlink::new(&n);
            let ch = Channel::open(&n, &shrink_opts(kind, sync)).unwrap();
            let mut reader = ch.subscribe().unwrap();
            let waiting = ch.subscribe().unwrap();
            let mut p = ch.producer().unwrap();
            let mut fresh = ch.producer().unwrap();
            let mut out = Vec::new();
            for i in 0..3u8 {
                assert!(p.try_publish(&[i; 40]).unwrap());
            }
            let mut got = 0;
            while reader.try_recv(&mut out).unwrap() {
                got += 1;
            }
            assert_eq!(got, 3, "{tag}");
            let t = std::thread::spawn(move || {
                let mut waiting = waiting;
                let mut out = Vec::new();
                let started = Instant::now();
                let mut r = waiting.recv_timeout(&mut out, LONG);
                while matches!(r, Ok(true)) {
                    r = waiting.recv_timeout(&mut out, LONG); // a topic reader has 3 to read
                }
                (r, started.elapsed(), waiting)
            });
            std::thread::sleep(Duration::from_millis(100));
            set_file_len(&n, len);
            let (r, waited, waiting) = t.join().unwrap();
            let msg = expect_code(r, ErrorCode::CorruptSegment);
            assert!(msg.contains("shrank"), "{tag}: {msg}");
            assert!(waited < Duration::from_secs(5), "{tag}: {waited:?}");
            expect_code(fresh.try_publish(b"x"), ErrorCode::CorruptSegment);
            expect_code(p.try_publish(b"x"), ErrorCode::CorruptSegment);
            expect_code(reader.try_recv(&mut out), ErrorCode::CorruptSegment);
            let mut buf = [0u8; 64];
            expect_code(reader.drain_into(&mut buf, 1), ErrorCode::CorruptSegment);
            assert!(
                reader.has_data(),
                "{tag}: a waiter is told to go and meet the error"
            );
            expect_code(ch.producer(), ErrorCode::CorruptSegment);
            expect_code(ch.subscribe(), ErrorCode::CorruptSegment);
            drop((reader, waiting, p, fresh, ch));
        }
    }
}

/// The same with a producer waiting for room in a full ring (a topic subscriber that does not
/// read, or a queue nobody takes from): its wait ends with `CorruptSegment`.
#[test]
fn shrunk_under_a_blocked_producer_is_corrupt_segment_not_sigbus() {
    for (kind, sync) in VARIANTS {
        let tag = format!("{kind:?}/{sync:?}");
        let n = unique("shrunk-full");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &shrink_opts(kind, sync)).unwrap();
        let mut holder = ch.subscribe().unwrap();
        let mut blocked = ch.producer().unwrap();
        while blocked.try_publish(&[7; 200]).unwrap() {}
        let t = std::thread::spawn(move || {
            let started = Instant::now();
            (
                blocked.publish_timeout(&[8; 200], LONG),
                started.elapsed(),
                blocked,
            )
        });
        std::thread::sleep(Duration::from_millis(100));
        set_file_len(&n, 4096);
        let (r, waited, blocked) = t.join().unwrap();
        let msg = expect_code(r, ErrorCode::CorruptSegment);
        assert!(msg.contains("shrank"), "{tag}: {msg}");
        assert!(waited < Duration::from_secs(5), "{tag}: {waited:?}");
        let mut out = Vec::new();
        expect_code(holder.try_recv(&mut out), ErrorCode::CorruptSegment);
        drop((holder, blocked, ch));
    }
}

fn shrink_opts(kind: Kind, sync: SyncMode) -> OpenOptions {
    OpenOptions {
        kind: Some(kind),
        sync: Some(sync),
        capacity: Some(8192),
        ..OpenOptions::create()
    }
}

/// A file grown after attach is harmless: the mapping is still all there.
#[test]
fn grown_after_attach_keeps_working() {
    let n = unique("grown");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let len = std::fs::metadata(shm_file(&n)).unwrap().len();
    set_file_len(&n, len + 8192);
    for i in 0..200u32 {
        assert!(p.try_publish(&i.to_le_bytes()).unwrap());
    }
    let mut out = Vec::new();
    for i in 0..200u32 {
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, i.to_le_bytes());
    }
}

/// Child: subscribes and waits for data until the segment shrinks (`CorruptSegment`), or
/// (`SHMRING_TEST_HOLD=produce`) fills the ring and waits for room until then.
#[test]
fn child_shrink_victim() {
    let Some(name) = child_role("shrink-victim") else {
        return;
    };
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut out = Vec::new();
    let r = if std::env::var("SHMRING_TEST_HOLD").as_deref() == Ok("produce") {
        let mut p = ch.producer().unwrap();
        while p.try_publish(&[1; 100]).unwrap() {}
        mark_ready(&name);
        p.publish_timeout(&[2; 100], LONG).map(|()| true)
    } else {
        let mut sub = ch.subscribe().unwrap();
        mark_ready(&name);
        // It reads what the producer child publishes until the ring is full, then waits.
        let mut r = sub.recv_timeout(&mut out, LONG);
        while matches!(r, Ok(true)) {
            r = sub.recv_timeout(&mut out, LONG);
        }
        r
    };
    expect_code(r, ErrorCode::CorruptSegment);
}

/// Waits until every subscriber of `name` but the slowest has read up to the tail, and each
/// of `pids` has been asleep (state `S`) at three looks 5 ms apart.
fn wait_until_waiting(name: &str, pids: &[u32]) {
    let deadline = std::time::Instant::now() + CHILD_WAIT;
    let state = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned))
    };
    let mut asleep = 0;
    while asleep < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "children never settled into waiting"
        );
        let s = shmring::inspect(name).unwrap();
        let mut cursors: Vec<u64> = s
            .participants
            .iter()
            .filter(|p| p.role == Some(shmring::Role::Subscriber))
            .map(|p| p.cursor)
            .collect();
        cursors.sort();
        let caught_up = cursors.len() >= 2 && cursors[1..].iter().all(|&c| c == s.tail);
        if caught_up && pids.iter().all(|&p| state(p).as_deref() == Some("S")) {
            asleep += 1;
        } else {
            asleep = 0;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The same across processes: a subscriber process waiting for data and a producer process
/// waiting for room get `CorruptSegment` when another process shrinks the segment, and exit
/// normally (no SIGBUS).
#[test]
fn shrunk_under_waiting_processes() {
    for sync in [SyncMode::LockFree, SyncMode::Semaphore] {
        let n = unique("shrunk-xproc");
        let mut g = Unlink::new(&n);
        let opts = OpenOptions {
            sync: Some(sync),
            capacity: Some(8192),
            ..OpenOptions::create()
        };
        drop(Channel::open(&n, &opts).unwrap());
        let mut holder = spawn_ready(
            &mut g,
            "child_holder",
            "holder",
            &n,
            "holder",
            &[("SHMRING_TEST_HOLD", "subscribe".into())],
        );
        let sub = spawn_ready(
            &mut g,
            "child_shrink_victim",
            "shrink-victim",
            &n,
            "sub",
            &[],
        );
        let producer = spawn_ready(
            &mut g,
            "child_shrink_victim",
            "shrink-victim",
            &n,
            "prod",
            &[("SHMRING_TEST_HOLD", "produce".into())],
        );
        // Shrink only once both really wait: the ring is full (the holder never reads), the
        // subscriber has read everything, and both processes sleep in the kernel. (A process
        // busy touching the mapping at the moment of the shrink is the documented window.)
        wait_until_waiting(&n, &[sub.id(), producer.id()]);
        set_file_len(&n, 2048);
        sub.finish(CHILD_WAIT);
        producer.finish(CHILD_WAIT);
        holder.kill();
    }
}

// ---- other users' segments -----------------------------------------------------------------

/// A segment owned by another uid is refused with `PermissionDenied` (its owner could rewrite
/// it under us) unless `allow_foreign_owner`; `recover` and `unlink_if_stale` leave it too.
/// Needs root (to give the file away); skipped otherwise.
#[test]
fn a_segment_of_another_user_is_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown to another uid needs root");
        return;
    }
    let n = unique("foreign");
    let _g = Unlink::new(&n);
    let opts = OpenOptions {
        capacity: Some(4096),
        mode: 0o666,
        ..OpenOptions::create()
    };
    let mine = Channel::open(&n, &opts).unwrap();
    let key = mine.descriptor().seq_key;
    drop(mine);
    std::os::unix::fs::chown(shm_file(&n), Some(65534), Some(65534)).unwrap();
    for o in [
        OpenOptions::default(),
        OpenOptions::create(),
        recover(),
        OpenOptions {
            capacity: Some(4096),
            ..OpenOptions::default()
        },
    ] {
        let msg = expect_code(Channel::open(&n, &o), ErrorCode::PermissionDenied);
        assert!(
            msg.contains("uid 65534") && msg.contains("allowForeignOwner"),
            "{msg}"
        );
    }
    expect_code(shmring::unlink_if_stale(&n), ErrorCode::PermissionDenied);
    let listed = shmring::list().unwrap();
    let l = listed.iter().find(|l| l.name == n).unwrap();
    assert_eq!(
        l.summary.as_ref().unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let allowed = OpenOptions {
        allow_foreign_owner: true,
        ..OpenOptions::default()
    };
    let ch = Channel::open(&n, &allowed).unwrap();
    assert_eq!(ch.descriptor().seq_key, key);
    let mut sub = ch.subscribe().unwrap();
    ch.producer().unwrap().try_publish(b"ok").unwrap();
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, b"ok");
}

// ---- mismatches not in errors.rs -----------------------------------------------------------------

/// Kind and sync mode stated by the caller and differing from the segment: both values named.
#[test]
fn kind_and_sync_conflicts_name_both_values() {
    let n = unique("conflict2");
    let _g = Unlink::new(&n);
    let _ch = Channel::open(
        &n,
        &OpenOptions {
            kind: Some(Kind::Queue),
            sync: Some(SyncMode::Semaphore),
            capacity: Some(4096),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    let cases = [
        (
            OpenOptions {
                kind: Some(Kind::Topic),
                ..OpenOptions::default()
            },
            ["kind", "queue", "topic"],
        ),
        (
            OpenOptions {
                sync: Some(SyncMode::LockFree),
                ..OpenOptions::create()
            },
            ["sync", "semaphore", "lockfree"],
        ),
    ];
    for (o, needles) in cases {
        let msg = expect_code(Channel::open(&n, &o), ErrorCode::IncompatibleSegment);
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} lacks {needle}");
        }
    }
}

/// Header damage the attach checks catch besides those of `errors.rs`: a position beyond
/// `MAX_POSITION` (which would overflow position arithmetic) and an overwrite queue.
#[test]
fn damaged_positions_and_impossible_settings_are_corrupt() {
    let cases: [(&str, usize, Vec<u8>, &str); 5] = [
        (
            "tail",
            layout::TAIL_OFFSET,
            u64::MAX.to_ne_bytes().to_vec(),
            "tail",
        ),
        (
            "queue-head",
            layout::QUEUE_HEAD_OFFSET,
            layout::MAX_POSITION.to_ne_bytes().to_vec(),
            "queue head",
        ),
        (
            "latest",
            layout::LATEST_OFFSET,
            (u64::MAX - 7).to_ne_bytes().to_vec(),
            "latest",
        ),
        (
            "pending",
            layout::PENDING_LEN_OFFSET,
            (1u64 << 63).to_ne_bytes().to_vec(),
            "pending length",
        ),
        (
            "overwrite-queue",
            layout::KIND_OFFSET,
            vec![Kind::Queue as u8, 0, Policy::Overwrite as u8],
            "overwrite",
        ),
    ];
    for (tag, off, bytes, needle) in cases {
        let n = unique("damaged");
        let _g = Unlink::new(&n);
        drop(Channel::open(&n, &OpenOptions::create()).unwrap());
        patch(&n, off, &bytes);
        let msg = expect_code(
            Channel::open(&n, &OpenOptions::default()),
            ErrorCode::CorruptSegment,
        );
        assert!(msg.contains(needle), "{tag}: {msg}");
        // recover does not take a damaged segment for a dead one.
        let msg = expect_code(Channel::open(&n, &recover()), ErrorCode::CorruptSegment);
        assert!(msg.contains("recover left it alone"), "{tag}: {msg}");
    }
}
