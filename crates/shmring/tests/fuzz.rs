//! Fuzzing the segment (issue 4, item 8).
//!
//! - `damaged_segment_is_an_error_or_a_working_channel`: proptest mutates the header, the
//!   participant table, the data area and the length of a valid segment file (truncated or
//!   grown), then attaches and, when that works, publishes and receives a few messages. Every
//!   call must return a typed error or work; a panic (an out-of-bounds access is one: every
//!   access is bounds-checked) fails the test, and a SIGBUS or an abort kills it.
//!   `SHMRING_FUZZ_CASES` sets the number of cases (default 300; the full run is 10,000).
//! - `hostile_process_cannot_crash_a_subscriber`: a process flips bytes of a live ring's data
//!   area, its header's hot fields and the participant table while a producer publishes and a
//!   subscriber process reads: the subscriber never crashes, every drain call returns within
//!   a bound (no unbounded scan), and errors are typed. `SHMRING_FUZZ_HOSTILE_MS` sets how long
//!   (default 1000 per variant).
//!
//! Semaphore-mode segments are fuzzed without touching their pthread mutex: glibc trusts its
//! own mutex bytes (a garbage mutex can block its lockers forever or make glibc abort), so a
//! process that can write a semaphore-mode segment can wedge it. Lock-free segments have no
//! such state. See docs/LAYOUT.md.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Rng, Unlink, child_role, env_or, env_u64, shm_file, spawn_child, unique,
    wait_for_file,
};
use proptest::prelude::*;
use shmring::layout::{self, slot};
use shmring::{Channel, ErrorCode, Kind, OpenOptions, Policy, SyncMode};

const VARIANTS: [(Kind, SyncMode, Policy); 6] = [
    (Kind::Topic, SyncMode::LockFree, Policy::Block),
    (Kind::Topic, SyncMode::Semaphore, Policy::Block),
    (Kind::Topic, SyncMode::LockFree, Policy::Overwrite),
    (Kind::Topic, SyncMode::LockFree, Policy::Fail),
    (Kind::Queue, SyncMode::LockFree, Policy::Block),
    (Kind::Queue, SyncMode::Semaphore, Policy::Block),
];

/// The valid segment a case starts from.
#[derive(Clone, Debug)]
struct Base {
    variant: usize,
    capacity: u64,
    participants: u32,
    published: u8,
    read: u8,
    /// Keep a subscriber and a producer in the table (their slots stay active: the owner
    /// is this process).
    active: bool,
}

/// Where a mutation lands.
#[derive(Clone, Copy, Debug)]
enum Region {
    /// The descriptor line (0..128), where attach checks everything.
    Descriptor,
    /// The hot lines (128..1024).
    Hot,
    /// The participant table.
    Table,
    /// The data area.
    Data,
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Sets one byte.
    Byte(Region, u16, u8),
    /// Writes a 4- or 8-byte value at an aligned offset.
    Word(Region, u16, bool, u64),
    /// Flips one bit.
    Bit(Region, u16, u8),
}

#[derive(Clone, Debug)]
enum Length {
    Same,
    /// Truncate to this fraction (1/65536ths) of the file, at least 1 byte.
    Truncate(u16),
    /// Grow by this many bytes.
    Grow(u16),
}

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![
        3 => Just(Region::Descriptor),
        3 => Just(Region::Hot),
        3 => Just(Region::Table),
        1 => Just(Region::Data),
    ]
}

fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(layout::MAX_POSITION - 8),
        Just(layout::MAX_POSITION),
        (0..64u32).prop_map(|b| 1u64 << b),
        0..100_000u64,
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (region(), any::<u16>(), any::<u8>()).prop_map(|(r, a, v)| Mutation::Byte(r, a, v)),
        (region(), any::<u16>(), any::<bool>(), word())
            .prop_map(|(r, a, w, v)| Mutation::Word(r, a, w, v)),
        (region(), any::<u16>(), 0..8u8).prop_map(|(r, a, b)| Mutation::Bit(r, a, b)),
    ]
}

fn base() -> impl Strategy<Value = Base> {
    (
        0..VARIANTS.len(),
        prop_oneof![Just(4096u64), Just(8192)],
        2..6u32,
        0..40u8,
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(variant, capacity, participants, published, read, active)| Base {
                variant,
                capacity,
                participants,
                published,
                read: read % (published + 1),
                active,
            },
        )
}

fn length() -> impl Strategy<Value = Length> {
    prop_oneof![
        8 => Just(Length::Same),
        1 => any::<u16>().prop_map(Length::Truncate),
        1 => (1..9000u16).prop_map(Length::Grow),
    ]
}

fn opts_of(b: &Base) -> OpenOptions {
    let (kind, sync, policy) = VARIANTS[b.variant];
    OpenOptions {
        kind: Some(kind),
        sync: Some(sync),
        policy: Some(policy),
        capacity: Some(b.capacity),
        max_participants: Some(b.participants),
        max_message_size: Some(300),
        ..OpenOptions::create()
    }
}

/// The byte range of `region` in a segment of `opts`.
fn range_of(region: Region, opts: &OpenOptions) -> std::ops::Range<usize> {
    let g = opts.geometry();
    match region {
        Region::Descriptor => 0..layout::CACHE_LINE,
        Region::Hot => layout::CACHE_LINE..layout::HEADER_LEN,
        Region::Table => layout::HEADER_LEN..g.slot_offset(g.max_participants),
        Region::Data => g.data_offset()..g.segment_len(),
    }
}

/// Whether `at..at + len` touches the pthread mutex (left alone in semaphore mode).
fn in_mutex(at: usize, len: usize) -> bool {
    at < layout::MUTEX_OFFSET + layout::MUTEX_LEN && layout::MUTEX_OFFSET < at + len
}

fn apply(bytes: &mut [u8], m: &Mutation, opts: &OpenOptions) {
    let semaphore = opts.sync == Some(SyncMode::Semaphore);
    let pick = |region: Region, a: u16, align: usize| {
        let r = range_of(region, opts);
        let span = r.end - r.start;
        let at = r.start + (a as usize * span / 65536);
        at & !(align - 1)
    };
    match *m {
        Mutation::Byte(region, a, v) => {
            let at = pick(region, a, 1);
            if !(semaphore && in_mutex(at, 1)) {
                bytes[at] = v;
            }
        }
        Mutation::Bit(region, a, b) => {
            let at = pick(region, a, 1);
            if !(semaphore && in_mutex(at, 1)) {
                bytes[at] ^= 1 << b;
            }
        }
        Mutation::Word(region, a, wide, v) => {
            let len = if wide { 8 } else { 4 };
            let at = pick(region, a, len);
            if at + len <= bytes.len() && !(semaphore && in_mutex(at, len)) {
                bytes[at..at + len].copy_from_slice(&v.to_ne_bytes()[..len]);
            }
        }
    }
}

/// Builds the base segment; returns the handles that keep its slots active (if asked).
fn build(name: &str, b: &Base) -> Vec<Box<dyn std::any::Any>> {
    let ch = Channel::open(name, &opts_of(b)).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let mut out = Vec::new();
    for i in 0..b.published {
        let msg = vec![i; 1 + (i as usize * 37) % 250];
        if !p.try_publish(&msg).unwrap_or(false) {
            break;
        }
    }
    for _ in 0..b.read {
        let _ = sub.try_recv(&mut out);
    }
    if b.active {
        vec![Box::new(sub), Box::new(p), Box::new(ch)]
    } else {
        Vec::new()
    }
}

/// Uses whatever `open` gives: every call must return (an error or a result), none panic.
fn exercise(name: &str, opts: &OpenOptions) -> Option<ErrorCode> {
    let ch = match Channel::open(name, opts) {
        Ok(ch) => ch,
        Err(e) => return Some(e.code()),
    };
    let _ = shmring::summarize(&ch);
    let mut sub = ch.subscribe();
    let mut p = ch.producer();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    for round in 0..3 {
        if let Ok(p) = p.as_mut() {
            for i in 0..4u8 {
                let msg = vec![i; 1 + (round * 97 + i as usize * 53) % 290];
                let _ = p.try_publish(&msg);
            }
            let _ = p.try_publish_many([&b"a"[..], &b"bc"[..]]);
        }
        if let Ok(s) = sub.as_mut() {
            let _ = s.drain_into(&mut buf, 8);
            let _ = s.try_recv(&mut out);
            let _ = s.has_data();
            let _ = s
                .waiter()
                .wait_with(shmring::WaitStrategy::Spin, Some(Duration::ZERO));
        }
    }
    if let Ok(p) = p.as_mut() {
        let _ = p.publish_timeout(b"t", Some(Duration::from_millis(1)));
    }
    let _ = ch.wait_for_space(10, Some(Duration::ZERO));
    let _ = ch.participants();
    None
}

fn fuzz_cases() -> u32 {
    env_or("SHMRING_FUZZ_CASES", 300) as u32
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A valid segment with damaged header bytes, participant table, data area or length:
    /// attaching gives a typed error or a channel that publishes and receives without a
    /// panic, a SIGBUS or an out-of-bounds access.
    #[test]
    fn damaged_segment_is_an_error_or_a_working_channel(
        b in base(),
        mutations in prop::collection::vec(mutation(), 1..6),
        len in length(),
        create in any::<bool>(),
    ) {
        let n = unique("fuzz");
        let _g = Unlink::new(&n);
        let opts = opts_of(&b);
        let mut keep = build(&n, &b);
        if matches!(len, Length::Truncate(_)) {
            // Handles kept across a truncation would be the one case the file checks leave
            // open (touching a vanished page before any check noticed): see filecheck.rs.
            keep.clear();
        }
        let path = shm_file(&n);
        let mut bytes = std::fs::read(&path).unwrap();
        for m in &mutations {
            apply(&mut bytes, m, &opts);
        }
        match len {
            Length::Same => {}
            Length::Truncate(f) => {
                let to = (bytes.len() * f as usize / 65536).max(1);
                bytes.truncate(to);
            }
            Length::Grow(by) => bytes.resize(bytes.len() + by as usize, 0),
        }
        // Through the file, not a mapping: the length changes too (same inode).
        std::fs::write(&path, &bytes).unwrap();
        let how = if create { OpenOptions::create() } else { OpenOptions::default() };
        let first = exercise(&n, &how);
        drop(keep);
        // Once nobody else has it, `recover` either replaces it or gives the same verdict.
        let again = exercise(&n, &OpenOptions { recover: true, ..OpenOptions::default() });
        if let (Some(a), Some(b)) = (first, again) {
            prop_assert!(
                a == b || b == ErrorCode::Timeout || a == ErrorCode::NotFound,
                "{a:?} then {b:?}"
            );
        }
    }
}

// ---- a hostile process ------------------------------------------------------------------------

/// The hot words of the header a hostile process scribbles on, with their sizes.
const HOT: [(usize, usize); 11] = [
    (layout::TAIL_OFFSET, 8),
    (layout::HEAD_CACHE_OFFSET, 8),
    (layout::DATA_SEQ_OFFSET, 4),
    (layout::DATA_WAITERS_OFFSET, 4),
    (layout::SPACE_SEQ_OFFSET, 4),
    (layout::SPACE_WAITERS_OFFSET, 4),
    (layout::QUEUE_HEAD_OFFSET, 8),
    (layout::LATEST_OFFSET, 8),
    (layout::PENDING_POS_OFFSET, 8),
    (layout::PENDING_LEN_OFFSET, 8),
    (layout::PENDING_START_OFFSET, 8),
];

/// The slot words it scribbles on.
const SLOT_HOT: [(usize, usize); 6] = [
    (slot::STATE, 4),
    (slot::CLAIM, 8),
    (slot::CURSOR, 8),
    (slot::MESSAGES, 8),
    (slot::LOST, 8),
    (slot::HEARTBEAT, 8),
];

/// A shared mapping of a segment file, for the hostile process.
struct RawMap {
    base: *mut u8,
    len: usize,
}

impl RawMap {
    fn open(name: &str) -> RawMap {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_file(name))
            .unwrap();
        let len = f.metadata().unwrap().len() as usize;
        // SAFETY: a fresh shared mapping of an open file; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        RawMap {
            base: p.cast(),
            len,
        }
    }

    /// Stores `v` (its low `size` bytes) at `at`, atomically (other processes race it).
    fn store(&self, at: usize, size: usize, v: u64) {
        assert!(at + size <= self.len && at.is_multiple_of(size));
        // SAFETY: in bounds and aligned (checked); the mapping outlives the call; the words
        // are shared memory, so they are accessed as atomics.
        unsafe {
            match size {
                8 => (*(self.base.add(at) as *const AtomicU64)).store(v, Ordering::Relaxed),
                4 => (*(self.base.add(at) as *const AtomicU32)).store(v as u32, Ordering::Relaxed),
                _ => (*(self.base.add(at) as *const AtomicU8)).store(v as u8, Ordering::Relaxed),
            }
        }
    }

    fn load(&self, at: usize, size: usize) -> u64 {
        assert!(at + size <= self.len && at.is_multiple_of(size));
        // SAFETY: as in `store`.
        unsafe {
            match size {
                8 => (*(self.base.add(at) as *const AtomicU64)).load(Ordering::Relaxed),
                4 => (*(self.base.add(at) as *const AtomicU32)).load(Ordering::Relaxed) as u64,
                _ => (*(self.base.add(at) as *const AtomicU8)).load(Ordering::Relaxed) as u64,
            }
        }
    }
}

/// Child: scribbles on the segment for `SHMRING_TEST_MS`: random bytes of the data area,
/// random values and bit flips in the header's hot words and the slots' hot words.
#[test]
fn child_hostile() {
    let Some(name) = child_role("hostile") else {
        return;
    };
    let ms = env_u64("SHMRING_TEST_MS");
    let d = Channel::open(&name, &OpenOptions::default())
        .unwrap()
        .descriptor()
        .geometry;
    let m = RawMap::open(&name);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64);
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let (at, size) = match rng.upto(9) {
            0..=3 => (d.data_offset() + rng.upto(d.capacity as usize - 1), 1),
            4..=6 => HOT[rng.upto(HOT.len() - 1)],
            _ => {
                let (f, size) = SLOT_HOT[rng.upto(SLOT_HOT.len() - 1)];
                (
                    d.slot_offset(rng.upto(d.max_participants as usize - 1) as u32) + f,
                    size,
                )
            }
        };
        let old = m.load(at, size);
        let v = match rng.upto(5) {
            0 => old ^ (1 << rng.upto(size * 8 - 1)),
            1 => old.wrapping_add(rng.upto(64) as u64 * 8),
            2 => old.wrapping_sub(rng.upto(64) as u64),
            3 => [0, u64::MAX, layout::MAX_POSITION, 1 << 63][rng.upto(3)],
            _ => rng.next(),
        };
        m.store(at, size, v);
        n += 1;
        if n.is_multiple_of(16) {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    eprintln!("hostile: {n} writes");
}

/// Child: publishes as fast as it can for `SHMRING_TEST_MS`, taking every error in stride.
#[test]
fn child_busy_producer() {
    let Some(name) = child_role("busy-producer") else {
        return;
    };
    let ms = env_u64("SHMRING_TEST_MS");
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut p = ch.producer().ok();
    attached(&name);
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut i = 0u32;
    while Instant::now() < deadline {
        let Some(prod) = p.as_mut() else {
            p = ch.producer().ok();
            continue;
        };
        i = i.wrapping_add(1);
        let msg = vec![i as u8; 1 + i as usize % 200];
        match prod.try_publish(&msg) {
            Ok(true) => {}
            Ok(false) => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => p = None, // take a new slot (ours may have been scribbled over)
        }
    }
}

/// Child: reads for `SHMRING_TEST_MS`: drains, waits a little, reopens after repeated errors.
/// It must not crash, every call must return within `SHMRING_TEST_BOUND_MS`, and every
/// error must be typed.
#[test]
fn child_victim() {
    let Some(name) = child_role("victim") else {
        return;
    };
    let ms = env_u64("SHMRING_TEST_MS");
    let bound = Duration::from_millis(env_u64("SHMRING_TEST_BOUND_MS"));
    let ch = Channel::open(&name, &OpenOptions::default()).unwrap();
    let mut sub = ch.subscribe().ok();
    attached(&name);
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut msgs, mut errors, mut reopens, mut in_a_row) = (0u64, 0u64, 0u64, 0);
    let mut slowest = Duration::ZERO;
    let mut codes = std::collections::BTreeMap::new();
    while Instant::now() < deadline {
        let Some(s) = sub.as_mut() else {
            sub = ch.subscribe().ok();
            reopens += 1;
            continue;
        };
        let t = Instant::now();
        match s.drain_into(&mut buf, 256) {
            Ok(d) => {
                msgs += d.count as u64;
                in_a_row = 0;
                if d.count == 0 {
                    s.wait(Some(Duration::from_millis(1)));
                }
            }
            Err(e) => {
                errors += 1;
                in_a_row += 1;
                *codes.entry(e.code().as_str()).or_insert(0u64) += 1;
                if in_a_row > 20 {
                    sub = None; // a position the scribbler broke for good: start afresh
                }
            }
        }
        let took = t.elapsed();
        slowest = slowest.max(took);
        assert!(
            took < bound,
            "a drain or wait took {took:?} (bound {bound:?})"
        );
    }
    eprintln!(
        "victim: {msgs} messages, {errors} errors {codes:?}, {reopens} reopens, slowest call \
         {slowest:?}"
    );
}

/// Child side of a marker: the child attached; makes `<channel>-<SHMRING_TEST_MARK>`.
fn attached(name: &str) {
    let mark = std::env::var("SHMRING_TEST_MARK").unwrap();
    let opts = OpenOptions {
        capacity: Some(4096),
        max_participants: Some(1),
        ..OpenOptions::create()
    };
    Channel::open(&format!("{name}-{mark}"), &opts).unwrap();
}

/// Spawns a child and waits until it has attached (made its marker).
fn spawn_attached(
    guard: &mut Unlink,
    test: &str,
    role: &str,
    name: &str,
    env: &[(&str, String)],
) -> ChildGuard {
    let marker = format!("{name}-{role}");
    guard.add(&marker);
    let mut env = env.to_vec();
    env.push(("SHMRING_TEST_MARK", role.to_owned()));
    let mut child = spawn_child(test, role, name, &env);
    wait_for_file(&marker, &mut child, Duration::from_secs(30));
    child
}

/// A hostile process scribbles on a live ring while a producer publishes and a subscriber
/// process reads: the subscriber never crashes and never hangs in a call.
#[test]
fn hostile_process_cannot_crash_a_subscriber() {
    let ms = env_or("SHMRING_FUZZ_HOSTILE_MS", 1000);
    for (kind, sync, policy) in VARIANTS {
        let n = unique("hostile");
        let mut g = Unlink::new(&n);
        let opts = OpenOptions {
            kind: Some(kind),
            sync: Some(sync),
            policy: Some(policy),
            capacity: Some(8192),
            max_participants: Some(8),
            max_message_size: Some(300),
            ..OpenOptions::create()
        };
        drop(Channel::open(&n, &opts).unwrap());
        let env = [
            ("SHMRING_TEST_MS", ms.to_string()),
            ("SHMRING_TEST_BOUND_MS", "1000".to_string()),
        ];
        // Both attach before the scribbling starts (attaching validates the header).
        let victim = spawn_attached(&mut g, "child_victim", "victim", &n, &env);
        let producer = spawn_attached(&mut g, "child_busy_producer", "busy-producer", &n, &env);
        let hostile = spawn_child("child_hostile", "hostile", &n, &env);
        let wait = Duration::from_millis(ms) + Duration::from_secs(30);
        victim.finish(wait);
        hostile.finish(wait);
        producer.finish(wait);
        eprintln!("{kind:?}/{sync:?}/{policy:?}: the subscriber survived");
    }
}
