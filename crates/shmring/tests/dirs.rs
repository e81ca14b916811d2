//! Channels in any directory (issue 14, item 1), with real processes: a durable queue whose
//! messages outlive the process that published them, the default directory from
//! `$SHMRING_DIR`, the catalog functions of a directory, `recover` keeping a durable channel,
//! the semaphore mutex left locked by a thread that no longer exists (a reboot) and repaired
//! by the first lone opener, the `flush` settings, and every bad directory or file.
//!
//! Temporary directories are made under `std::env::temp_dir()` (a disk filesystem on the
//! machines this runs on; a test says so when it is not) and removed when the test ends,
//! however it ends.
#![cfg(not(loom))]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ExeCopy, child_role, env_u64, expect_code, spawn_child, spawn_child_under, unique};
use shmring::layout;
use shmring::{Channel, ErrorCode, Flush, Kind, OpenOptions, Start, SubscribeOptions, SyncMode};

const CHILD_WAIT: Duration = Duration::from_secs(60);
const LONG: Option<Duration> = Some(Duration::from_secs(20));

/// A fresh directory under the temp dir, removed (with everything in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(unique(&format!("dir-{tag}")));
        std::fs::create_dir(&d).expect("create temp dir");
        TempDir(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn file(&self, name: &str) -> PathBuf {
        shmring::segment_path(&self.0, name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn on_tmpfs(dir: &Path) -> bool {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed statfs is a valid out-parameter; valid C string.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut fs) }, 0);
    fs.f_type == libc::TMPFS_MAGIC
}

fn in_dir(dir: &Path, base: OpenOptions) -> OpenOptions {
    OpenOptions {
        dir: Some(dir.to_path_buf()),
        ..base
    }
}

fn queue_opts(dir: &Path, sync: SyncMode) -> OpenOptions {
    in_dir(
        dir,
        OpenOptions {
            kind: Some(Kind::Queue),
            sync: Some(sync),
            capacity: Some(1 << 20),
            ..OpenOptions::create()
        },
    )
}

/// Message `i` of a run: its index and bytes that depend on it.
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..(i % 23) as u8).map(|b| b ^ (i as u8)));
    m
}

fn patch_file(path: &Path, offset: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset as u64).unwrap();
}

fn peek_u64(path: &Path, offset: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset as u64).unwrap();
    u64::from_le_bytes(b)
}

fn dir_env() -> PathBuf {
    PathBuf::from(std::env::var("SHMRING_TEST_DIR").expect("SHMRING_TEST_DIR"))
}

fn sync_env() -> SyncMode {
    SyncMode::parse(&std::env::var("SHMRING_TEST_SYNC").unwrap_or("lockfree".into())).unwrap()
}

/// Child: publishes messages `FROM..FROM+COUNT` into the queue, with the `FLUSH` setting.
#[test]
fn child_produce() {
    let Some(name) = child_role("produce") else {
        return;
    };
    let flush = Flush::parse(&std::env::var("SHMRING_TEST_FLUSH").unwrap()).unwrap();
    let kind = Kind::parse(&std::env::var("SHMRING_TEST_KIND").unwrap_or("queue".into())).unwrap();
    let opts = OpenOptions {
        flush,
        kind: Some(kind),
        ..queue_opts(&dir_env(), sync_env())
    };
    let ch = Channel::open(&name, &opts).unwrap();
    let mut p = ch.producer().unwrap();
    let from = env_u64("SHMRING_TEST_FROM");
    for i in from..from + env_u64("SHMRING_TEST_COUNT") {
        p.publish_timeout(&message(i), LONG).unwrap();
    }
}

/// Child: consumes exactly messages `0..COUNT` in order (one producer), then finds nothing.
#[test]
fn child_consume() {
    let Some(name) = child_role("consume") else {
        return;
    };
    let ch = Channel::open(&name, &in_dir(&dir_env(), OpenOptions::default())).unwrap();
    assert!(!ch.created());
    let mut c = ch.subscribe().unwrap();
    let mut buf = Vec::new();
    for i in 0..env_u64("SHMRING_TEST_COUNT") {
        assert!(
            c.recv_timeout(&mut buf, LONG).unwrap(),
            "message {i} missing"
        );
        assert_eq!(buf, message(i), "message {i}");
    }
    assert!(!c.try_recv(&mut buf).unwrap(), "a message too many");
}

fn spawn_in(role: &str, name: &str, dir: &Path, env: &[(&str, String)]) -> common::ChildGuard {
    let mut all = vec![("SHMRING_TEST_DIR", dir.display().to_string())];
    all.extend(env.iter().cloned());
    spawn_child(&format!("child_{role}"), role, name, &all)
}

/// A producer process publishes 10,000 messages into a queue in a disk directory and exits
/// (with each flush setting); nothing has the file open any more; a new consumer process gets
/// all of them, in order, and nothing else.
#[test]
fn a_durable_queue_outlives_its_producer() {
    let dir = TempDir::new("durable");
    if on_tmpfs(dir.path()) {
        eprintln!("note: the temp dir is on tmpfs here: durability on disk is not exercised");
    }
    for (sync, flush) in [
        ("lockfree", "os"),
        ("lockfree", "publish"),
        ("semaphore", "10"),
    ] {
        let name = unique("durable");
        let count = 10_000u64;
        let env = |extra: &[(&'static str, String)]| {
            let mut v = vec![
                ("SHMRING_TEST_COUNT", count.to_string()),
                ("SHMRING_TEST_SYNC", sync.to_string()),
            ];
            v.extend(extra.iter().cloned());
            v
        };
        spawn_in(
            "produce",
            &name,
            dir.path(),
            &env(&[
                ("SHMRING_TEST_FLUSH", flush.into()),
                ("SHMRING_TEST_FROM", "0".into()),
            ]),
        )
        .finish(CHILD_WAIT);
        let s = shmring::inspect_in(dir.path(), &name).unwrap();
        assert!(s.stale && s.participants.is_empty(), "{s:?}");
        assert!(s.bytes_used > 0);
        spawn_in("consume", &name, dir.path(), &env(&[])).finish(CHILD_WAIT);
        // Consumed: the queue is empty for the next consumer too.
        let after = shmring::inspect_in(dir.path(), &name).unwrap();
        assert_eq!(after.bytes_used, 0, "{sync}/{flush}");
        assert_eq!(
            after.descriptor.seq_key, s.descriptor.seq_key,
            "same segment"
        );
        shmring::unlink_in(dir.path(), &name).unwrap();
        assert!(!dir.file(&name).exists());
    }
}

/// `$SHMRING_DIR` is the default directory: a child that names no directory puts its channel
/// there (and not in /dev/shm); `list_in`, `inspect_in`, `unlink_if_stale_in` and
/// `unlink_in` find it there.
#[test]
fn the_default_dir_comes_from_shmring_dir() {
    let dir = TempDir::new("envdir");
    let name = unique("envdir");
    spawn_child(
        "child_default_dir",
        "default_dir",
        &name,
        &[(shmring::DIR_ENV, dir.path().display().to_string())],
    )
    .finish(CHILD_WAIT);
    assert!(dir.file(&name).exists());
    assert!(!Path::new(&format!("/dev/shm/shmring.{name}")).exists());
    let listed = shmring::list_in(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    let s = listed[0].summary.as_ref().unwrap();
    assert!(s.tail > 0, "the child's message is there");
    assert!(!shmring::list().unwrap().iter().any(|l| l.name == name));
    expect_code(shmring::inspect(&name), ErrorCode::NotFound);
    assert!(shmring::unlink_if_stale_in(dir.path(), &name).unwrap());
    assert!(!dir.file(&name).exists());
    expect_code(shmring::unlink_in(dir.path(), &name), ErrorCode::NotFound);
}

#[test]
fn child_default_dir() {
    let Some(name) = child_role("default_dir") else {
        return;
    };
    assert_eq!(
        shmring::default_dir(),
        PathBuf::from(std::env::var(shmring::DIR_ENV).unwrap())
    );
    let ch = Channel::open(&name, &OpenOptions::create()).unwrap();
    ch.producer().unwrap().try_publish(b"x").unwrap();
}

/// `recover` attaches to a stale channel in a disk directory and keeps its messages (on
/// /dev/shm it replaces a stale channel, as before).
#[test]
fn recover_keeps_a_stale_durable_channel() {
    let dir = TempDir::new("recover");
    if on_tmpfs(dir.path()) {
        eprintln!("skipped: the temp dir is on tmpfs here");
        return;
    }
    let name = unique("recover");
    let opts = queue_opts(dir.path(), SyncMode::LockFree);
    // Stale once its creator is dead: a child creates it.
    spawn_in(
        "produce",
        &name,
        dir.path(),
        &[
            ("SHMRING_TEST_COUNT", "3".into()),
            ("SHMRING_TEST_FLUSH", "os".into()),
            ("SHMRING_TEST_FROM", "0".into()),
        ],
    )
    .finish(CHILD_WAIT);
    let before = shmring::inspect_in(dir.path(), &name).unwrap();
    assert!(before.stale);
    let ch = Channel::open(
        &name,
        &OpenOptions {
            recover: true,
            ..opts
        },
    )
    .unwrap();
    assert!(!ch.created(), "recover replaced a durable channel");
    assert_eq!(ch.descriptor().seq_key, before.descriptor.seq_key);
    let mut c = ch.subscribe().unwrap();
    let mut buf = Vec::new();
    for i in 0..3 {
        assert!(c.try_recv(&mut buf).unwrap());
        assert_eq!(buf, message(i));
    }
    drop((c, ch));
    shmring::unlink_in(dir.path(), &name).unwrap();
}

/// The semaphore mode's mutex in a closed durable file, left locked by a thread that no
/// longer exists and with a claim pending (what a reboot leaves when a producer was inside
/// its publish): the first opener, alone on the file, repairs it. A new process's producer
/// then publishes and its consumer gets the old messages, then the new ones; the pending
/// claim is skipped whole. Without the repair the producer would wait on the mutex forever.
#[test]
fn a_mutex_locked_by_a_vanished_thread_is_repaired() {
    let dir = TempDir::new("mutex");
    let name = unique("mutex");
    let opts = queue_opts(dir.path(), SyncMode::Semaphore);
    {
        let ch = Channel::open(&name, &opts).unwrap();
        let mut p = ch.producer().unwrap();
        for i in 0..5 {
            p.try_publish(&message(i)).unwrap();
        }
    }
    // A thread id that no longer exists: a child's, reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let tid = gone.id();
    gone.wait().unwrap();
    let file = dir.file(&name);
    let tail = peek_u64(&file, layout::TAIL_OFFSET);
    let pending = 64u64;
    // glibc's pthread_mutex_t: the lock word (owner's tid) at 0, the owner at 8.
    patch_file(&file, layout::MUTEX_OFFSET, &tid.to_le_bytes());
    patch_file(&file, layout::MUTEX_OFFSET + 8, &tid.to_le_bytes());
    patch_file(&file, layout::PENDING_POS_OFFSET, &tail.to_le_bytes());
    patch_file(&file, layout::PENDING_START_OFFSET, &tail.to_le_bytes());
    patch_file(&file, layout::PENDING_LEN_OFFSET, &pending.to_le_bytes());
    patch_file(&file, layout::TAIL_OFFSET, &(tail + pending).to_le_bytes());
    spawn_in("after_reboot", &name, dir.path(), &[]).finish(CHILD_WAIT);
    let s = shmring::inspect_in(dir.path(), &name).unwrap();
    assert_eq!(s.bytes_used, 0);
    assert_eq!(peek_u64(&file, layout::PENDING_LEN_OFFSET), 0);
    shmring::unlink_in(dir.path(), &name).unwrap();
}

#[test]
fn child_after_reboot() {
    let Some(name) = child_role("after_reboot") else {
        return;
    };
    let ch = Channel::open(&name, &queue_opts(&dir_env(), SyncMode::Semaphore)).unwrap();
    assert!(!ch.created());
    let mut p = ch.producer().unwrap();
    for i in 5..10 {
        p.publish_timeout(&message(i), LONG).unwrap();
    }
    let mut c = ch.subscribe().unwrap();
    let mut buf = Vec::new();
    for i in 0..10 {
        assert!(c.recv_timeout(&mut buf, LONG).unwrap(), "message {i}");
        assert_eq!(buf, message(i));
    }
    assert!(!c.try_recv(&mut buf).unwrap());
}

/// The dirty pages of `len` bytes at `off` of the file open as `f` (Linux `cachestat`), or
/// `None` where the kernel lacks it.
fn dirty_pages(f: &std::fs::File, off: u64, len: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        cache: u64,
        dirty: u64,
        writeback: u64,
        evicted: u64,
        recently_evicted: u64,
    }
    let range = Range { off, len };
    let mut st = Stat::default();
    // SAFETY: cachestat(2) (451 on x86_64 and aarch64) reads `range` and writes `st`.
    let rc = unsafe { libc::syscall(451, f.as_raw_fd(), &range, &mut st, 0) };
    (rc == 0).then_some(st.dirty + st.writeback)
}

/// `flush: Publish` leaves no dirty page of the data area once a publish returns; `flush:
/// Every(10 ms)` gets them written back while the channel stays open; the flusher thread is
/// gone once the handle is dropped. (Under `Os` nothing is asserted: the kernel may write
/// back at any time.)
#[test]
fn flush_writes_back_what_was_published() {
    let dir = TempDir::new("flush");
    if on_tmpfs(dir.path()) {
        eprintln!("skipped: the temp dir is on tmpfs here (nothing to write back)");
        return;
    }
    // Flusher threads of this process (named `shmring-flush-<name>`; the kernel keeps 15
    // bytes of a name): the other tests of this binary start and end threads of their own
    // meanwhile, and this is the only test here that makes a flusher.
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with("shmring-flush"))
            .count()
    };
    for flush in [Flush::Publish, Flush::Every(Duration::from_millis(10))] {
        let name = unique("flush");
        let before = threads();
        let ch = Channel::open(
            &name,
            &OpenOptions {
                flush,
                ..queue_opts(dir.path(), SyncMode::LockFree)
            },
        )
        .unwrap();
        let g = ch.descriptor().geometry;
        let file = std::fs::File::open(dir.file(&name)).unwrap();
        let data = g.data_offset() as u64;
        let Some(_) = dirty_pages(&file, data, g.capacity) else {
            eprintln!("skipped: no cachestat(2) in this kernel");
            return;
        };
        let mut p = ch.producer().unwrap();
        for i in 0..200 {
            assert!(p.try_publish(&message(i)).unwrap());
            if flush == Flush::Publish {
                assert_eq!(dirty_pages(&file, data, g.capacity), Some(0), "after {i}");
            }
        }
        p.try_publish_many([&b"a"[..], b"bb", b"ccc"]).unwrap();
        if flush == Flush::Publish {
            assert_eq!(dirty_pages(&file, data, g.capacity), Some(0), "batch");
        } else {
            // The thread names itself once it runs: wait for that.
            let named = Instant::now() + Duration::from_secs(10);
            while threads() != before + 1 && Instant::now() < named {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(threads(), before + 1, "one flusher thread");
            let deadline = Instant::now() + Duration::from_secs(10);
            while dirty_pages(&file, data, g.capacity) != Some(0) {
                assert!(Instant::now() < deadline, "the flusher never wrote back");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop((p, ch));
        assert_eq!(
            threads(),
            before,
            "the flusher thread ended with its handle"
        );
        shmring::unlink_in(dir.path(), &name).unwrap();
    }
    // Harmless on tmpfs.
    let name = unique("flush-shm");
    let ch = Channel::open(
        &name,
        &OpenOptions {
            flush: Flush::Publish,
            capacity: Some(4096),
            ..OpenOptions::create()
        },
    )
    .unwrap();
    assert!(ch.producer().unwrap().try_publish(b"x").unwrap());
    drop(ch);
    shmring::unlink(&name).unwrap();
}

/// Flush settings out of range are `InvalidArgument`.
#[test]
fn bad_flush_settings() {
    for f in ["0", "-1", "3600001", "sometimes", ""] {
        expect_code(Flush::parse(f), ErrorCode::InvalidArgument);
    }
    let o = OpenOptions {
        flush: Flush::Every(Duration::ZERO),
        ..OpenOptions::create()
    };
    expect_code(
        Channel::open(&unique("badflush"), &o),
        ErrorCode::InvalidArgument,
    );
}

/// Bad directories, each a typed error naming the path, from `open` and every catalog
/// function.
#[test]
fn bad_directories_are_typed_errors() {
    let tmp = TempDir::new("bad");
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let missing = tmp.path().join("missing");
    let cases: [(PathBuf, ErrorCode); 5] = [
        (PathBuf::from("relative/dir"), ErrorCode::InvalidArgument),
        (PathBuf::from(""), ErrorCode::InvalidArgument),
        (missing.clone(), ErrorCode::NotFound),
        (file.clone(), ErrorCode::InvalidArgument),
        (file.join("below"), ErrorCode::InvalidArgument),
    ];
    let name = unique("baddir");
    for (dir, code) in &cases {
        let shown = dir.display().to_string();
        for msg in [
            expect_code(
                Channel::open(&name, &in_dir(dir, OpenOptions::create())),
                *code,
            ),
            expect_code(shmring::list_in(dir), *code),
            expect_code(shmring::inspect_in(dir, &name), *code),
            expect_code(shmring::unlink_in(dir, &name), *code),
            expect_code(shmring::unlink_if_stale_in(dir, &name), *code),
        ] {
            assert!(msg.contains(&shown), "{msg} does not name {shown:?}");
        }
    }
    // A channel not there: NotFound naming the directory.
    let msg = expect_code(
        Channel::open(&name, &in_dir(tmp.path(), OpenOptions::default())),
        ErrorCode::NotFound,
    );
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
}

/// A directory this process may not write to: `PermissionDenied` naming it (a child run as
/// uid 65534, since root may write anywhere). Needs root; skipped otherwise.
#[test]
fn an_unwritable_directory_is_permission_denied() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a child as another user");
        return;
    }
    let tmp = TempDir::new("rodir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = ExeCopy::new();
    spawn_child_under(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        Some(&exe.0),
        "child_unwritable",
        "unwritable",
        &unique("rodir"),
        &[("SHMRING_TEST_DIR", tmp.path().display().to_string())],
    )
    .finish(CHILD_WAIT);
}

#[test]
fn child_unwritable() {
    let Some(name) = child_role("unwritable") else {
        return;
    };
    let dir = dir_env();
    let msg = expect_code(
        Channel::open(&name, &in_dir(&dir, OpenOptions::create())),
        ErrorCode::PermissionDenied,
    );
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
}

/// Files in a directory that are not (or no longer) usable segments: an older layout version
/// is `IncompatibleSegment`; a truncated file, or one whose header is damaged, is
/// `CorruptSegment`; a file truncated while in use is `CorruptSegment` at the next publish,
/// never a SIGBUS; a symbolic link, FIFO, socket or directory under the name is
/// `IncompatibleSegment` (and `unlink_in` removes a link or a socket).
#[test]
fn bad_files_in_a_directory_are_typed_errors() {
    let dir = TempDir::new("files");
    let d = dir.path();
    let opts = in_dir(
        d,
        OpenOptions {
            capacity: Some(1 << 16),
            ..OpenOptions::create()
        },
    );
    let attach = in_dir(d, OpenOptions::default());
    let fresh = |tag: &str| {
        let n = unique(tag);
        drop(Channel::open(&n, &opts).unwrap());
        n
    };
    let n = fresh("old");
    patch_file(
        &dir.file(&n),
        layout::LAYOUT_VERSION_OFFSET,
        &(layout::LAYOUT_VERSION - 1).to_le_bytes(),
    );
    expect_code(Channel::open(&n, &attach), ErrorCode::IncompatibleSegment);
    expect_code(shmring::inspect_in(d, &n), ErrorCode::IncompatibleSegment);

    let n = fresh("short");
    let len = std::fs::metadata(dir.file(&n)).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file(&n))
        .unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    expect_code(Channel::open(&n, &attach), ErrorCode::CorruptSegment);
    expect_code(Channel::open(&n, &opts), ErrorCode::CorruptSegment);

    let n = fresh("damaged");
    patch_file(
        &dir.file(&n),
        layout::SEGMENT_LEN_OFFSET,
        &7u64.to_le_bytes(),
    );
    expect_code(Channel::open(&n, &attach), ErrorCode::CorruptSegment);
    let listed = shmring::list_in(d).unwrap();
    let l = listed.iter().find(|l| l.name == n).unwrap();
    assert_eq!(
        l.summary.as_ref().unwrap_err().code(),
        ErrorCode::CorruptSegment
    );

    // Truncated under a producer: the next publish says so.
    let n = unique("shrunk");
    let ch = Channel::open(&n, &opts).unwrap();
    let mut p = ch.producer().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file(&n))
        .unwrap();
    f.set_len(layout::HEADER_LEN as u64).unwrap();
    expect_code(p.try_publish(b"after"), ErrorCode::CorruptSegment);
    drop((p, ch));

    // Not files.
    let n = unique("link");
    std::os::unix::fs::symlink(dir.file(&fresh("target")), dir.file(&n)).unwrap();
    expect_code(Channel::open(&n, &opts), ErrorCode::IncompatibleSegment);
    shmring::unlink_in(d, &n).unwrap();
    assert!(std::fs::symlink_metadata(dir.file(&n)).is_err());
    let n = unique("sock");
    let _sock = std::os::unix::net::UnixListener::bind(dir.file(&n)).unwrap();
    expect_code(Channel::open(&n, &attach), ErrorCode::IncompatibleSegment);
    shmring::unlink_in(d, &n).unwrap();
    let n = unique("fifo");
    let c = std::ffi::CString::new(dir.file(&n).as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    expect_code(Channel::open(&n, &attach), ErrorCode::IncompatibleSegment);
    let n = unique("subdir");
    std::fs::create_dir(dir.file(&n)).unwrap();
    expect_code(Channel::open(&n, &opts), ErrorCode::IncompatibleSegment);
}

/// A producer SIGKILLed mid-stream in a durable queue (both sync modes): a new consumer
/// process gets an exact prefix of what it published, in order, nothing torn, and the queue
/// is empty after it.
#[test]
fn a_killed_producer_leaves_an_exact_prefix() {
    let dir = TempDir::new("killed");
    for sync in ["lockfree", "semaphore"] {
        let name = unique("killed");
        let mut child = spawn_in(
            "produce",
            &name,
            dir.path(),
            &[
                ("SHMRING_TEST_COUNT", "100000000".into()),
                ("SHMRING_TEST_SYNC", sync.into()),
                ("SHMRING_TEST_FLUSH", "os".into()),
                ("SHMRING_TEST_FROM", "0".into()),
            ],
        );
        // Killed once it has published a good part of the ring (it then waits for room).
        let deadline = Instant::now() + CHILD_WAIT;
        while shmring::inspect_in(dir.path(), &name).map_or(0, |s| s.bytes_used) < 200_000 {
            assert!(!child.exited(), "the producer exited");
            assert!(
                Instant::now() < deadline,
                "the producer published too little"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill();
        spawn_in("consume_prefix", &name, dir.path(), &[]).finish(CHILD_WAIT);
        assert_eq!(
            shmring::inspect_in(dir.path(), &name).unwrap().bytes_used,
            0,
            "{sync}: the consumer took everything"
        );
        shmring::unlink_in(dir.path(), &name).unwrap();
    }
}

/// Child: consumes messages 0, 1, 2, ... until none comes for a while; at least one.
#[test]
fn child_consume_prefix() {
    let Some(name) = child_role("consume_prefix") else {
        return;
    };
    let ch = Channel::open(&name, &in_dir(&dir_env(), OpenOptions::default())).unwrap();
    let mut c = ch.subscribe().unwrap();
    let mut buf = Vec::new();
    let mut n = 0u64;
    while c
        .recv_timeout(&mut buf, Some(Duration::from_millis(500)))
        .unwrap()
    {
        assert_eq!(buf, message(n), "message {n}");
        n += 1;
    }
    assert!(n > 1000, "only {n} messages");
}

/// A durable topic: a named subscriber joins and its process exits; a producer process
/// publishes 10,000 messages and exits; then a new process replays all of them from
/// `earliest`, in order, and the named subscriber resumes and gets all of them too.
#[test]
fn a_durable_topic_replays_and_resumes_a_named_subscriber() {
    let dir = TempDir::new("topic");
    let name = unique("topic");
    let count = 10_000u64;
    let env = [
        ("SHMRING_TEST_COUNT", count.to_string()),
        ("SHMRING_TEST_KIND", "topic".to_string()),
        ("SHMRING_TEST_FLUSH", "os".to_string()),
        ("SHMRING_TEST_FROM", "0".to_string()),
    ];
    spawn_in("named_join", &name, dir.path(), &env).finish(CHILD_WAIT);
    spawn_in("produce", &name, dir.path(), &env).finish(CHILD_WAIT);
    let s = shmring::inspect_in(dir.path(), &name).unwrap();
    assert!(s.stale, "{s:?}");
    spawn_in("replay_and_resume", &name, dir.path(), &env).finish(CHILD_WAIT);
    shmring::unlink_in(dir.path(), &name).unwrap();
}

#[test]
fn child_named_join() {
    let Some(name) = child_role("named_join") else {
        return;
    };
    let opts = OpenOptions {
        kind: Some(Kind::Topic),
        ..queue_opts(&dir_env(), SyncMode::LockFree)
    };
    let ch = Channel::open(&name, &opts).unwrap();
    drop(ch.subscribe_named("billing").unwrap());
}

#[test]
fn child_replay_and_resume() {
    let Some(name) = child_role("replay_and_resume") else {
        return;
    };
    let ch = Channel::open(&name, &in_dir(&dir_env(), OpenOptions::default())).unwrap();
    let count = env_u64("SHMRING_TEST_COUNT");
    let mut buf = Vec::new();
    let replay = SubscribeOptions {
        from: Start::Earliest,
        name: None,
    };
    for mut sub in [
        ch.subscribe_with(&replay).unwrap(),
        ch.subscribe_named("billing").unwrap(),
    ] {
        for i in 0..count {
            assert!(sub.recv_timeout(&mut buf, LONG).unwrap(), "message {i}");
            assert_eq!(buf, message(i), "message {i}");
        }
        assert!(!sub.try_recv(&mut buf).unwrap(), "a message too many");
    }
}
