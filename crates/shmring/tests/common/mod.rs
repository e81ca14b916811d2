//! Helpers shared by the integration tests: unique names, guards that clean up on panic,
//! child processes that re-run this test binary, and raw access to a segment's file.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmring::ErrorCode;

/// Env var naming the role a re-run test binary plays (see [`spawn_child`]).
pub const ROLE_VAR: &str = "SHMRING_TEST_ROLE";
/// Env var naming the channel a child works on.
pub const CHANNEL_VAR: &str = "SHMRING_TEST_CHANNEL";

/// A channel name unique to this process and call site: `t-<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unlinks its channel names when dropped, so a failing test leaves `/dev/shm` clean.
pub struct Unlink(Vec<String>);

impl Unlink {
    /// Guards `name`.
    pub fn new(name: &str) -> Self {
        Self(vec![name.to_owned()])
    }
    /// Guards one more name.
    pub fn add(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
}

impl Drop for Unlink {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = shmring::unlink(n);
        }
    }
}

/// A child process that is killed and reaped when dropped, whatever happened to the test.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }

    /// Whether the child has exited (reaping it if so); panics if it failed.
    pub fn exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("child present");
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                assert!(status.success(), "{} failed: {status}", self.what);
                true
            }
            None => false,
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `timeout` for the child to exit and asserts that it succeeded.
    pub fn finish(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("child present");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "{} failed: {status}", self.what);
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {timeout:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Re-runs this test binary as a child that runs only the test `test_name`, with
/// [`ROLE_VAR`] = `role`, [`CHANNEL_VAR`] = `channel` and the extra `env`. The child test
/// function returns at once when [`ROLE_VAR`] is not its role (see [`child_role`]).
pub fn spawn_child(
    test_name: &str,
    role: &str,
    channel: &str,
    env: &[(&str, String)],
) -> ChildGuard {
    spawn_child_under(&[], None, test_name, role, channel, env)
}

/// As [`spawn_child`], run through the command `wrapper` (e.g. `unshare --pid --fork`), which
/// is given the test binary (`exe`, default this one) and its arguments after its own.
pub fn spawn_child_under(
    wrapper: &[&str],
    exe: Option<&std::path::Path>,
    test_name: &str,
    role: &str,
    channel: &str,
    env: &[(&str, String)],
) -> ChildGuard {
    let exe = exe.map_or_else(
        || std::env::current_exe().expect("current_exe"),
        |e| e.to_owned(),
    );
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(CHANNEL_VAR, channel)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn child test process");
    ChildGuard {
        child: Some(child),
        what: format!("child {role} (test {test_name}) on {channel}"),
    }
}

/// A copy of this test binary that any user may run (for children run as another user: the
/// build directory may not be theirs to enter), removed when dropped.
pub struct ExeCopy(pub std::path::PathBuf);

impl ExeCopy {
    /// Copies the running test binary into a fresh directory under `/tmp`.
    pub fn new() -> ExeCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(unique("exe"));
        std::fs::create_dir(&dir).expect("create exe dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("test");
        std::fs::copy(std::env::current_exe().expect("current_exe"), &exe).expect("copy exe");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        ExeCopy(exe)
    }
}

impl Drop for ExeCopy {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// In a child: the channel to work on if this process plays `role`, else `None` (the
/// parent's own run of the child test, which does nothing).
pub fn child_role(role: &str) -> Option<String> {
    if std::env::var(ROLE_VAR).ok()? != role {
        return None;
    }
    Some(std::env::var(CHANNEL_VAR).expect("child without a channel name"))
}

/// A numeric env var of a child.
pub fn env_u64(key: &str) -> u64 {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("{key} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number"))
}

/// Sleeps until the wall clock reads `at_ns` (nanoseconds since the Unix epoch), spinning
/// for the last stretch so that two processes wake close together.
pub fn sleep_until_ns(at_ns: u64) {
    loop {
        let now = shmring::process::now_ns();
        if now >= at_ns {
            return;
        }
        let left = at_ns - now;
        if left > 2_000_000 {
            std::thread::sleep(Duration::from_nanos(left - 1_000_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Path of a channel's segment file.
pub fn shm_file(name: &str) -> String {
    format!("/dev/shm{}", shmring::shm_path(name))
}

/// Overwrites bytes of a channel's segment file at `offset`, through the file (not through a
/// mapping this process holds).
pub fn patch(name: &str, offset: usize, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_file(name))
        .expect("open segment file");
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Reads `N` bytes of a channel's segment file at `offset`.
pub fn peek<const N: usize>(name: &str, offset: usize) -> [u8; N] {
    let mut f = std::fs::File::open(shm_file(name)).expect("open segment file");
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    let mut buf = [0u8; N];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// A small deterministic generator (xorshift64) for sizes and contents.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A value in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
}

/// The payload of message `seq` of producer `producer`: an 8-byte tag, then `len - 8`
/// bytes derived from both (`len` >= 8).
pub fn tagged(producer: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&producer.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((8..len).map(|j| (j as u32 ^ seq ^ producer.rotate_left(5)) as u8));
    v
}

/// Splits a [`tagged`] payload into producer and sequence, checking its filler bytes.
pub fn untag(msg: &[u8]) -> (u32, u32) {
    assert!(msg.len() >= 8, "message of {} bytes has no tag", msg.len());
    let producer = u32::from_le_bytes(msg[0..4].try_into().unwrap());
    let seq = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    assert_eq!(
        msg,
        &tagged(producer, seq, msg.len())[..],
        "payload of {producer}/{seq} damaged"
    );
    (producer, seq)
}

/// FNV-1a over `bytes`, folded into `acc` (order-independent when summed).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Splits a `drain_into` buffer into its `[len u32 LE][payload]` frames.
pub fn frames(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        out.push(&buf[at + 4..at + 4 + len]);
        at += 4 + len;
    }
    out
}

/// Asserts that `r` failed with `code`, and returns the message.
#[track_caller]
pub fn expect_code<T>(r: shmring::Result<T>, code: ErrorCode) -> String {
    match r {
        Ok(_) => panic!("expected {code:?}, got Ok"),
        Err(e) => {
            assert_eq!(e.code(), code, "wrong error: {e}");
            assert!(!e.message().is_empty());
            e.message().to_owned()
        }
    }
}

/// A numeric env var with a default (for test sizes that a full run raises).
pub fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sets the length of a channel's segment file (shrinks or grows it under its users).
pub fn set_file_len(name: &str, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_file(name))
        .expect("open segment file")
        .set_len(len)
        .expect("set_len");
}

/// Waits until the segment file of `name` exists, or panics after `timeout` (checking that
/// `child` is still running meanwhile).
pub fn wait_for_file(name: &str, child: &mut ChildGuard, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::fs::metadata(shm_file(name)).is_err() {
        assert!(!child.exited(), "the child exited before making {name}");
        assert!(Instant::now() < deadline, "{name} never appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether this process may create PID namespaces (root). CI runs as root; elsewhere the
/// namespace tests say loudly that they did not run.
pub fn can_unshare(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs root (unshare --pid) and CI runs as root"
        );
        eprintln!("NOT RUN: {test} needs root for `unshare --pid`");
    }
    root
}

/// The wrapper that runs a child in a PID namespace of its own, under a shell that is that
/// namespace's init (so the child is an ordinary process there, one that can stop itself at
/// a hook). Killing the wrapper kills the namespace.
pub const IN_PID_NAMESPACE: [&str; 8] = [
    "unshare",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
    "sh",
    "-c",
    "\"$0\" \"$@\"; exit $?",
];

/// The pid (here) of a stopped child working on `channel`, found through its environment:
/// a child in another PID namespace does not know its pid in ours.
pub fn find_stopped_child(channel: &str) -> u32 {
    let want = format!("{CHANNEL_VAR}={channel}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if !env.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
                continue;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            if state == Some("T") {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no child on {channel} reached its hook"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
