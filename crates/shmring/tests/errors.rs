//! Every error a caller can meet, with its code; damaged segments are errors, never crashes.
#![cfg(not(loom))] // real shared memory; the loom models are in tests/loom.rs

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Rng, Unlink, expect_code, patch, peek, shm_file, unique};
use shmring::layout::{self, record};
use shmring::{Channel, ErrorCode, Kind, OpenOptions, Policy, SyncMode};

fn small(capacity: u64) -> OpenOptions {
    OpenOptions {
        capacity: Some(capacity),
        ..OpenOptions::create()
    }
}

#[test]
fn invalid_names_are_refused() {
    let long = "x".repeat(201);
    for bad in ["a/b", "", long.as_str(), "has space", "nul\0", "ü", "../x"] {
        let msg = expect_code(
            Channel::open(bad, &OpenOptions::create()),
            ErrorCode::InvalidName,
        );
        assert!(msg.contains("1 to 200"), "{msg}");
        expect_code(shmring::unlink(bad), ErrorCode::InvalidName);
        expect_code(shmring::validate_name(bad), ErrorCode::InvalidName);
    }
}

#[test]
fn longest_name_works() {
    let mut n = unique("long");
    n.push_str(&"y".repeat(shmring::MAX_NAME_LEN - n.len()));
    assert_eq!(n.len(), 200);
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &small(4096)).unwrap();
    assert!(ch.created());
    assert_eq!(ch.name(), n);
}

#[test]
fn oversize_publish_is_message_too_large() {
    let n = unique("toolarge");
    let _g = Unlink::new(&n);
    let opts = OpenOptions {
        max_message_size: Some(100),
        ..small(4096)
    };
    let ch = Channel::open(&n, &opts).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let msg = expect_code(p.try_publish(&[0u8; 101]), ErrorCode::MessageTooLarge);
    assert!(msg.contains("101") && msg.contains("100"), "{msg}");
    expect_code(
        p.publish_timeout(&[0u8; 1000], None),
        ErrorCode::MessageTooLarge,
    );
    // Nothing was written; a message of exactly the limit goes through.
    assert!(p.try_publish(&[1u8; 100]).unwrap());
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, [1u8; 100]);
    assert!(!sub.try_recv(&mut out).unwrap());
}

#[test]
fn missing_name_without_create_is_not_found() {
    let n = unique("missing");
    let msg = expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::NotFound,
    );
    assert!(msg.contains(&n), "{msg}");
    expect_code(shmring::unlink(&n), ErrorCode::NotFound);
}

#[test]
fn exclusive_create_of_existing_is_already_exists() {
    let n = unique("excl");
    let _g = Unlink::new(&n);
    let excl = OpenOptions {
        exclusive: true,
        ..small(4096)
    };
    let ch = Channel::open(&n, &excl).unwrap();
    assert!(ch.created());
    expect_code(Channel::open(&n, &excl), ErrorCode::AlreadyExists);
    // Without exclusive, create attaches.
    let again = Channel::open(&n, &OpenOptions::create()).unwrap();
    assert!(!again.created());
    // exclusive without create is a bad argument.
    let bad = OpenOptions {
        exclusive: true,
        ..OpenOptions::default()
    };
    expect_code(Channel::open(&n, &bad), ErrorCode::InvalidArgument);
}

#[test]
fn bad_options_are_invalid_argument() {
    let n = unique("badopts");
    let _g = Unlink::new(&n);
    let cases = [
        OpenOptions {
            capacity: Some(1000),
            ..OpenOptions::create()
        },
        OpenOptions {
            capacity: Some(1024),
            ..OpenOptions::create()
        },
        OpenOptions {
            max_message_size: Some(5000),
            ..small(4096)
        },
        OpenOptions {
            max_participants: Some(0),
            ..OpenOptions::create()
        },
        OpenOptions {
            mode: 0o400,
            ..OpenOptions::create()
        },
        OpenOptions {
            mode: 0o4600,
            ..OpenOptions::create()
        },
        OpenOptions {
            kind: Some(Kind::Queue),
            policy: Some(Policy::Overwrite),
            ..OpenOptions::create()
        },
    ];
    for opts in cases {
        expect_code(Channel::open(&n, &opts), ErrorCode::InvalidArgument);
    }
    assert!(std::fs::metadata(shm_file(&n)).is_err(), "nothing created");
}

#[test]
fn segment_mode_is_0600_by_default() {
    let n = unique("mode");
    let _g = Unlink::new(&n);
    let ch = Channel::open(&n, &small(4096)).unwrap();
    let mode = std::fs::metadata(shm_file(&n))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(ch.descriptor().mode, 0o600);
    // A wider mode is applied exactly, whatever the umask.
    let n2 = unique("mode");
    let _g2 = Unlink::new(&n2);
    let opts = OpenOptions {
        mode: 0o664,
        ..small(4096)
    };
    let ch2 = Channel::open(&n2, &opts).unwrap();
    let mode = std::fs::metadata(shm_file(&n2))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o664);
    assert_eq!(ch2.descriptor().mode, 0o664);
}

#[test]
fn garbage_file_is_incompatible() {
    let n = unique("garbage");
    let _g = Unlink::new(&n);
    let mut rng = Rng(0xdead_beef);
    let mut bytes: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    bytes[0] |= 1; // a non-zero magic that is not ours
    std::fs::write(shm_file(&n), &bytes).unwrap();
    let msg = expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::IncompatibleSegment,
    );
    assert!(msg.contains("not a shmring segment"), "{msg}");
    // create: true attaches to the existing file and refuses it the same way.
    expect_code(
        Channel::open(&n, &OpenOptions::create()),
        ErrorCode::IncompatibleSegment,
    );
    // Garbage behind a zero magic and a set ready word is corrupt.
    bytes[..8].fill(0);
    bytes[layout::READY_OFFSET..layout::READY_OFFSET + 4]
        .copy_from_slice(&layout::READY.to_ne_bytes());
    std::fs::write(shm_file(&n), &bytes).unwrap();
    expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::CorruptSegment,
    );
    // Our magic and version over garbage: the sizes do not add up.
    bytes[..8].copy_from_slice(&layout::MAGIC.to_ne_bytes());
    bytes[8..12].copy_from_slice(&layout::LAYOUT_VERSION.to_ne_bytes());
    bytes[12..16].copy_from_slice(&(layout::HEADER_LEN as u32).to_ne_bytes());
    std::fs::write(shm_file(&n), &bytes).unwrap();
    expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::CorruptSegment,
    );
}

#[test]
fn truncated_file_is_corrupt() {
    let n = unique("trunc");
    let _g = Unlink::new(&n);
    std::fs::write(shm_file(&n), [0x53u8; 10]).unwrap();
    let msg = expect_code(
        Channel::open(&n, &OpenOptions::default()),
        ErrorCode::CorruptSegment,
    );
    assert!(msg.contains("10 bytes"), "{msg}");
    // An empty file (a creator that died before sizing it) is corrupt too.
    std::fs::write(shm_file(&n), []).unwrap();
    expect_code(
        Channel::open(&n, &OpenOptions::create()),
        ErrorCode::CorruptSegment,
    );
}

/// Creates a valid 64 KiB channel, lets `damage` change its file, and returns the error of
/// attaching to it (which must not succeed).
fn attach_after(tag: &str, damage: impl FnOnce(&str)) -> shmring::Error {
    let n = unique(tag);
    let _g = Unlink::new(&n);
    drop(Channel::open(&n, &small(64 * 1024)).unwrap());
    damage(&n);
    let err = match Channel::open(&n, &OpenOptions::default()) {
        Ok(_) => panic!("{tag}: attach to a damaged segment succeeded"),
        Err(e) => e,
    };
    // create: true meets the same segment and the same verdict.
    match Channel::open(&n, &OpenOptions::create()) {
        Ok(_) => panic!("{tag}: create-or-attach to a damaged segment succeeded"),
        Err(e) => assert_eq!(e.code(), err.code(), "{tag}: {e}"),
    }
    err
}

fn patch_u64(off: usize, v: u64) -> impl FnOnce(&str) {
    move |n| patch(n, off, &v.to_ne_bytes())
}

fn patch_u32(off: usize, v: u32) -> impl FnOnce(&str) {
    move |n| patch(n, off, &v.to_ne_bytes())
}

/// A damage to a segment's file, the code it must produce, and a part of the message.
type Case = (&'static str, Box<dyn FnOnce(&str)>, ErrorCode, &'static str);

#[test]
fn corrupted_header_fields_are_refused() {
    use ErrorCode::{CorruptSegment as Corrupt, IncompatibleSegment as Incompatible};
    let cases: Vec<Case> = vec![
        (
            "magic",
            Box::new(patch_u64(
                layout::MAGIC_OFFSET,
                u64::from_le_bytes(*b"NOTOURS!"),
            )),
            Incompatible,
            "not a shmring segment",
        ),
        (
            "version",
            Box::new(patch_u32(
                layout::LAYOUT_VERSION_OFFSET,
                layout::LAYOUT_VERSION + 1,
            )),
            Incompatible,
            // The message names the version it found (ours + 1).
            format!("layout version {}", layout::LAYOUT_VERSION + 1).leak(),
        ),
        (
            "header-len",
            Box::new(patch_u32(layout::HEADER_LEN_OFFSET, 512)),
            Corrupt,
            "header length 512",
        ),
        (
            "capacity-pow2",
            Box::new(patch_u64(layout::CAPACITY_OFFSET, 1 << 17)),
            Corrupt,
            "segment length",
        ),
        (
            "capacity-odd",
            Box::new(patch_u64(layout::CAPACITY_OFFSET, 65_000)),
            Corrupt,
            "capacity 65000 is not a power of two",
        ),
        (
            "capacity-huge",
            Box::new(patch_u64(layout::CAPACITY_OFFSET, 1 << 62)),
            Corrupt,
            "outside",
        ),
        (
            "max-message",
            Box::new(patch_u32(layout::MAX_MESSAGE_SIZE_OFFSET, u32::MAX)),
            Corrupt,
            "maxMessageSize 4294967295",
        ),
        (
            "participants-zero",
            Box::new(patch_u32(layout::MAX_PARTICIPANTS_OFFSET, 0)),
            Corrupt,
            "maxParticipants 0",
        ),
        (
            "participants-huge",
            Box::new(patch_u32(layout::MAX_PARTICIPANTS_OFFSET, u32::MAX)),
            Corrupt,
            "maxParticipants 4294967295",
        ),
        (
            "participants-offset",
            Box::new(patch_u64(layout::PARTICIPANTS_OFFSET_OFFSET, 8)),
            Corrupt,
            "participants offset is 8",
        ),
        (
            "data-offset",
            Box::new(patch_u64(layout::DATA_OFFSET_OFFSET, u64::MAX)),
            Corrupt,
            "data offset",
        ),
        (
            "segment-len",
            Box::new(patch_u64(layout::SEGMENT_LEN_OFFSET, 1 << 40)),
            Corrupt,
            "segment length",
        ),
        (
            "kind-unknown",
            Box::new(|n: &str| patch(n, layout::KIND_OFFSET, &[9])),
            Corrupt,
            "unknown Kind code 9",
        ),
        (
            "sync-unknown",
            Box::new(|n: &str| patch(n, layout::SYNC_OFFSET, &[200])),
            Corrupt,
            "unknown SyncMode code 200",
        ),
        (
            "policy-unknown",
            Box::new(|n: &str| patch(n, layout::POLICY_OFFSET, &[3])),
            Corrupt,
            "unknown Policy code 3",
        ),
        (
            "file-shrunk",
            Box::new(|n: &str| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(shm_file(n))
                    .unwrap();
                f.set_len(8192).unwrap();
            }),
            Corrupt,
            "8192 bytes",
        ),
        (
            "file-grown",
            Box::new(|n: &str| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(shm_file(n))
                    .unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len + 4096).unwrap();
            }),
            Corrupt,
            "bytes but the segment is",
        ),
        (
            "not-ready",
            Box::new(patch_u32(layout::READY_OFFSET, 0)),
            Corrupt,
            "never became ready",
        ),
    ];
    for (tag, damage, code, needle) in cases {
        let e = attach_after(tag, damage);
        assert_eq!(e.code(), code, "{tag}: {e}");
        assert!(e.message().contains(needle), "{tag}: {e}");
    }
}

#[test]
fn options_conflicting_with_the_segment_are_incompatible() {
    let n = unique("conflict");
    let _g = Unlink::new(&n);
    let opts = OpenOptions {
        max_message_size: Some(500),
        max_participants: Some(8),
        ..small(64 * 1024)
    };
    let ch = Channel::open(&n, &opts).unwrap();
    let conflicts = [
        (
            OpenOptions {
                capacity: Some(128 * 1024),
                ..OpenOptions::default()
            },
            ["capacity", "65536", "131072"],
        ),
        (
            OpenOptions {
                max_message_size: Some(600),
                ..OpenOptions::create()
            },
            ["maxMessageSize", "500", "600"],
        ),
        (
            OpenOptions {
                max_participants: Some(9),
                ..OpenOptions::default()
            },
            ["maxParticipants", "8", "9"],
        ),
        (
            OpenOptions {
                policy: Some(Policy::Fail),
                ..OpenOptions::default()
            },
            ["policy", "block", "fail"],
        ),
    ];
    for (o, needles) in conflicts {
        let msg = expect_code(Channel::open(&n, &o), ErrorCode::IncompatibleSegment);
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} lacks {needle}");
        }
    }
    // Options that agree are fine, and unstated ones are adopted from the segment.
    let same = OpenOptions {
        capacity: Some(64 * 1024),
        policy: Some(Policy::Block),
        ..OpenOptions::default()
    };
    let other = Channel::open(&n, &same).unwrap();
    assert_eq!(other.descriptor(), ch.descriptor());
    assert_eq!(other.descriptor().geometry.max_participants, 8);
}

/// Every kind of reader and both sync modes read records through the same checks.
const VARIANTS: [(Kind, SyncMode, Policy); 5] = [
    (Kind::Topic, SyncMode::LockFree, Policy::Block),
    (Kind::Topic, SyncMode::Semaphore, Policy::Block),
    (Kind::Queue, SyncMode::LockFree, Policy::Block),
    (Kind::Queue, SyncMode::Semaphore, Policy::Block),
    (Kind::Topic, SyncMode::LockFree, Policy::Overwrite),
];

fn variant(v: (Kind, SyncMode, Policy), max: u32) -> OpenOptions {
    OpenOptions {
        kind: Some(v.0),
        sync: Some(v.1),
        policy: Some(v.2),
        max_message_size: Some(max),
        ..small(4096)
    }
}

/// Publishes one record at the start of a fresh ring and returns the channel, a reader that
/// has not read it, and the file offset of the record.
fn one_record(n: &str, v: (Kind, SyncMode, Policy)) -> (Channel, shmring::Subscriber, usize) {
    let ch = Channel::open(n, &variant(v, 100)).unwrap();
    let sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    assert!(p.try_publish(b"twelve bytes").unwrap());
    let at = ch.descriptor().geometry.data_offset();
    assert_eq!(u32::from_le_bytes(peek(n, at + record::LEN)), 12);
    (ch, sub, at)
}

#[test]
fn corrupted_record_length_is_corrupt_segment() {
    for v in VARIANTS {
        for bad_len in [101u32, 4096, u32::MAX] {
            let n = unique("badlen");
            let _g = Unlink::new(&n);
            let (_ch, mut sub, at) = one_record(&n, v);
            patch(&n, at + record::LEN, &bad_len.to_le_bytes());
            let mut out = Vec::new();
            let msg = expect_code(sub.try_recv(&mut out), ErrorCode::CorruptSegment);
            assert!(msg.contains(&bad_len.to_string()), "{v:?}: {msg}");
            let mut buf = [0u8; 256];
            expect_code(sub.drain_into(&mut buf, 10), ErrorCode::CorruptSegment);
            // The reader stays where it was and keeps saying so.
            expect_code(sub.try_recv(&mut out), ErrorCode::CorruptSegment);
            assert!(sub.has_data());
        }
    }
}

#[test]
fn record_length_past_the_end_of_the_ring_is_corrupt_segment() {
    for v in VARIANTS {
        let n = unique("pastend");
        let _g = Unlink::new(&n);
        let ch = Channel::open(&n, &variant(v, 2000)).unwrap();
        let mut sub = ch.subscribe().unwrap();
        let mut p = ch.producer().unwrap();
        let mut out = Vec::new();
        // Two records of about 2000 bytes each bring the tail close to the end of the ring.
        for _ in 0..2 {
            assert!(p.try_publish(&[5u8; 1984]).unwrap());
            assert!(sub.try_recv(&mut out).unwrap());
        }
        let tail = shmring::summarize(&ch).tail;
        let room = 4096 - (tail % 4096) as u32;
        assert!((24..100).contains(&room), "{v:?}: tail {tail}");
        assert!(p.try_publish(b"").unwrap());
        let at = ch.descriptor().geometry.data_offset() + (tail % 4096) as usize;
        // At most maxMessageSize, but the record would run past the end of the ring.
        let len = room - 16 + 1;
        patch(&n, at + record::LEN, &len.to_le_bytes());
        let msg = expect_code(sub.try_recv(&mut out), ErrorCode::CorruptSegment);
        assert!(msg.contains(&format!("position {tail}")), "{v:?}: {msg}");
    }
}

#[test]
fn unknown_record_state_is_corrupt_segment() {
    for v in VARIANTS {
        let n = unique("badstate");
        let _g = Unlink::new(&n);
        let (ch, mut sub, at) = one_record(&n, v);
        let key = ch.descriptor().seq_key;
        assert_eq!(
            key & record::STATE_MASK,
            0,
            "the key leaves the state bits alone"
        );
        let seq = |pos: u64, state: u64| record::encode_seq(pos, state, key).to_ne_bytes();
        assert_eq!(peek(&n, at + record::SEQ), seq(0, record::MESSAGE));
        patch(&n, at + record::SEQ, &seq(0, 5));
        let mut out = Vec::new();
        let msg = expect_code(sub.try_recv(&mut out), ErrorCode::CorruptSegment);
        assert!(msg.contains("unknown state 5"), "{v:?}: {msg}");
        // A sequence word for another position is simply "not written yet".
        patch(&n, at + record::SEQ, &seq(4096, record::MESSAGE));
        assert!(!sub.try_recv(&mut out).unwrap());
        assert!(!sub.has_data());
        // A claimed record is not delivered until committed.
        patch(&n, at + record::SEQ, &seq(0, record::CLAIMED));
        assert!(!sub.try_recv(&mut out).unwrap());
        patch(&n, at + record::SEQ, &seq(0, record::MESSAGE));
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, b"twelve bytes");
    }
}

/// An abandoned record (a dead producer's claim, rewritten by recovery) is skipped whole.
#[test]
fn abandoned_record_is_skipped() {
    for v in VARIANTS {
        let n = unique("abandoned");
        let _g = Unlink::new(&n);
        let (ch, mut sub, at) = one_record(&n, v);
        let mut p = ch.producer().unwrap();
        assert!(p.try_publish(b"next").unwrap());
        let key = ch.descriptor().seq_key;
        // The first record takes record_len(12) = 40 bytes. An abandoned record's `len`
        // counts as a message's: the same extent is `total - HEADER_LEN` bytes.
        let total = shmring::layout::record::record_len(12);
        patch(
            &n,
            at + record::LEN,
            &((total - record::HEADER_LEN) as u32).to_le_bytes(),
        );
        patch(
            &n,
            at + record::SEQ,
            &record::encode_seq(0, record::ABANDONED, key).to_ne_bytes(),
        );
        let mut out = Vec::new();
        assert!(sub.try_recv(&mut out).unwrap(), "{v:?}");
        assert_eq!(out, b"next", "{v:?}");
        assert!(!sub.try_recv(&mut out).unwrap());
    }
}

/// Garbage in the semaphore-mode mutex is an error for every locker, never a hang: a damaged
/// type word at once, a lock word naming a thread that does not exist once a locker has
/// waited the bound (5 s). Both lockers of a semaphore-mode queue, a producer and a consumer,
/// each in a thread of its own, report `CorruptSegment`; the test only bounds them by a
/// generous deadline.
#[test]
fn a_damaged_mutex_is_corrupt_segment_for_every_locker() {
    // The type word at 16 of glibc's pthread_mutex_t; the owner id in the lock word at 0.
    let cases: [(&str, usize, u32); 2] = [
        ("type word", 16, 0x7777_7777),
        ("lock word", 0, 0x3fff_fff0),
    ];
    for (what, at, garbage) in cases {
        let n = unique("badmutex");
        let _g = Unlink::new(&n);
        let ch = Channel::open(
            &n,
            &OpenOptions {
                kind: Some(Kind::Queue),
                sync: Some(SyncMode::Semaphore),
                ..small(64 * 1024)
            },
        )
        .unwrap();
        let mut p = ch.producer().unwrap();
        assert!(p.try_publish(b"before").unwrap());
        patch(
            &n,
            shmring::layout::MUTEX_OFFSET + at,
            &garbage.to_ne_bytes(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let producer = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(("producer", p.try_publish(b"after").map(|_| ())));
            })
        };
        let consumer = {
            let ch = ch.clone();
            std::thread::spawn(move || {
                let mut c = ch.subscribe().unwrap();
                let mut out = Vec::new();
                let _ = tx.send(("consumer", c.try_recv(&mut out).map(|_| ())));
            })
        };
        for _ in 0..2 {
            let (who, r) = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{what}: a locker hung on the damaged mutex"));
            let msg = expect_code(r, ErrorCode::CorruptSegment);
            assert!(msg.contains("mutex"), "{what}, {who}: {msg}");
        }
        producer.join().unwrap();
        consumer.join().unwrap();
    }
}
