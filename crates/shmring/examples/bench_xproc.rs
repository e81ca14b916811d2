//! Cross-process benchmark of the crate, beside a pipe in the same run (`npm run bench`
//! builds and runs it; `cargo run --release -p shmring --example bench_xproc [-- --quick]`).
//!
//! The binary re-spawns itself for every role (`bench_xproc child <role> …`), so producers
//! and the consumer are separate processes sharing nothing but a channel name (or a pipe).
//! It prints one JSON line per case on stdout and progress on stderr.
//!
//! - Throughput: producers publish `count` messages as fast as the ring takes them
//!   (`try_publish`, or `try_publish_many` in batches); when the ring is full they spin a
//!   little, then yield, then sleep in `wait_for_space`. The consumer `drain_into`s a 1 MiB
//!   buffer, spinning a little and then sleeping on the futex when the ring is empty. It
//!   counts every message and checks each producer's numbering and the size.
//!   Rate = messages ÷ (consumer's last message − earliest producer start), both on
//!   CLOCK_MONOTONIC, which every process on the host shares.
//! - Pinning: with one producer (shmring and pipe alike), the consumer and the producer each
//!   get a CPU of their own (`sched_setaffinity`, `BENCH_CPU` in the child's environment)
//!   when two are available; 4-producer cases are left to the scheduler.
//! - Latency: paced messages stamped with CLOCK_MONOTONIC just before publishing; the
//!   consumer subtracts on receipt, either spinning on `try_recv` or sleeping on the futex
//!   (`WaitStrategy::Block` + `recv_timeout`).
//! - Pipe: `pipe(2)` from one child's stdout to the other's stdin, `[len u32 LE][payload]`
//!   frames through a 64 KiB `BufWriter` / `BufReader` (flushed per message when pacing).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::FromRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shmring::{Channel, OpenOptions, WaitStrategy};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// CLOCK_MONOTONIC in ns: one clock for every process on the host.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU seconds of this process so far.
fn cpu_sec() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Waits until `t`: sleeps while more than 80 µs are left (so a paced producer leaves the
/// CPU to the consumer on a small machine), then spins for precision.
fn spin_until(t: u64) {
    let left = t.saturating_sub(now_ns());
    if left > 80_000 {
        std::thread::sleep(Duration::from_nanos(left - 80_000));
    }
    while now_ns() < t {
        std::hint::spin_loop();
    }
}

// ------------------------------------------------------------------------------------------
// Roles (child processes). Each reports on stderr: `READY`, then `RESULT k=v k=v …`.

fn report(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("RESULT {}", line.join(" "));
}

fn open_channel(name: &str, size: usize) -> Res<Channel> {
    let (capacity, max) = if size > 4096 {
        (16u64 << 20, size.max(65536) as u32)
    } else {
        (4u64 << 20, 65536)
    };
    Ok(Channel::open(
        name,
        &OpenOptions {
            capacity: Some(capacity),
            max_message_size: Some(max),
            ..OpenOptions::create()
        },
    )?)
}

/// Bits of a message's first word that hold its number; the producer's index is above them.
const SEQ_BITS: u32 = 48;

/// `shm-pub <name> <count> <size> <batch> <gap_ns> <id>`: gap 0 = flood, else paced and
/// stamped. Every message starts with `id << SEQ_BITS | number` (numbers 0, 1, 2, ...), which
/// the consumer checks.
fn shm_pub(args: &[String]) -> Res<()> {
    let [name, count, size, batch, gap, id] = args else {
        return Err("shm-pub <name> <count> <size> <batch> <gap_ns> <id>".into());
    };
    let (count, size, batch, gap, id): (u64, usize, usize, u64, u64) = (
        count.parse()?,
        size.parse()?,
        batch.parse()?,
        gap.parse()?,
        id.parse()?,
    );
    let ch = open_channel(name, size)?;
    let mut producer = ch.producer()?;
    let mut msgs = vec![0u8; size * batch];
    let start = now_ns();
    let cpu0 = cpu_sec();
    let mut next = start;
    let mut i = 0u64;
    while i < count {
        let n = batch.min((count - i) as usize);
        for (k, m) in msgs.chunks_exact_mut(size).take(n).enumerate() {
            m[..8].copy_from_slice(&(id << SEQ_BITS | (i + k as u64)).to_le_bytes());
        }
        if gap > 0 {
            next += gap;
            spin_until(next);
            msgs[8..16].copy_from_slice(&now_ns().to_le_bytes());
        }
        let mut done = 0;
        let mut tries = 0u32;
        while done < n {
            let put = if n == 1 {
                usize::from(producer.try_publish(&msgs[..size])?)
            } else {
                producer.try_publish_many(msgs.chunks_exact(size).take(n).skip(done))?
            };
            done += put;
            if put == 0 {
                // Full: spin a little, then yield (2 cores, maybe more processes), then sleep.
                tries += 1;
                if tries < 64 {
                    std::hint::spin_loop();
                } else if tries < 256 {
                    std::thread::yield_now();
                } else {
                    ch.wait_for_space(size, Some(Duration::from_millis(10)));
                }
            } else {
                tries = 0;
            }
        }
        i += n as u64;
    }
    report(&[
        ("start", start.to_string()),
        ("cpu", (cpu_sec() - cpu0).to_string()),
    ]);
    Ok(())
}

/// Checks that a message is the next one of its producer (each producer's messages arrive in
/// its order, with none missing or repeated) and has the expected size.
fn check_next(msg: &[u8], size: usize, expected: &mut [u64]) -> Res<()> {
    let word = u64::from_le_bytes(msg.get(..8).ok_or("short message")?.try_into()?);
    let (id, seq) = ((word >> SEQ_BITS) as usize, word & ((1 << SEQ_BITS) - 1));
    let next = expected.get_mut(id).ok_or("bad producer id")?;
    if msg.len() != size || seq != *next {
        return Err(format!(
            "producer {id}: got message {seq} of {} bytes, expected {} of {size}",
            msg.len(),
            *next
        )
        .into());
    }
    *next += 1;
    Ok(())
}

/// `shm-sub <name> <total> <size> <mode>`: mode `flood`, `spin` or `block`. Every message is
/// counted and checked ([`check_next`]).
fn shm_sub(args: &[String]) -> Res<()> {
    let [name, total, size, mode] = args else {
        return Err("shm-sub <name> <total> <size> <mode>".into());
    };
    let (total, size): (u64, usize) = (total.parse()?, size.parse()?);
    let ch = open_channel(name, size)?;
    let mut sub = ch.subscribe()?;
    eprintln!("READY");
    let cpu0 = cpu_sec();
    let mut received = 0u64;
    let mut end = 0;
    let mut expected = vec![0u64; 64];
    if mode == "flood" {
        let mut buf = vec![0u8; 1 << 20];
        let mut idle = 0u32;
        // Ablation: `BENCH_SUB_PAUSE_NS=<ns>` pauses that long after every drain, so that the
        // consumer reads well behind the producer instead of one record behind it.
        let pause: u64 = std::env::var("BENCH_SUB_PAUSE_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while received < total {
            if pause > 0 {
                spin_until(now_ns() + pause);
            }
            let d = sub.drain_into(&mut buf, usize::MAX)?;
            if d.count > 0 {
                // Walk the frames `[len u32 LE][payload]`.
                let mut at = 0;
                for _ in 0..d.count {
                    let len = u32::from_le_bytes(buf[at..at + 4].try_into()?) as usize;
                    check_next(&buf[at + 4..at + 4 + len], size, &mut expected)?;
                    at += 4 + len;
                }
                received += d.count as u64;
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < 64 {
                std::hint::spin_loop();
            } else if idle < 256 {
                std::thread::yield_now();
            } else {
                sub.wait(Some(Duration::from_millis(10)));
            }
        }
        end = now_ns();
        report(&[
            ("end", end.to_string()),
            ("received", received.to_string()),
            ("cpu", (cpu_sec() - cpu0).to_string()),
        ]);
        return Ok(());
    }
    // `block`: sleep on the futex at once (the default strategy spins ~50 µs first).
    sub.set_wait_strategy(WaitStrategy::Block);
    let mut lat = Vec::with_capacity(total as usize);
    let mut out = Vec::with_capacity(size);
    while received < total {
        let got = if mode == "spin" {
            sub.try_recv(&mut out)?
        } else {
            sub.recv_timeout(&mut out, Some(Duration::from_secs(5)))?
        };
        if got {
            let t = now_ns();
            check_next(&out, size, &mut expected)?;
            let sent = u64::from_le_bytes(out[8..16].try_into()?);
            lat.push(t - sent);
            received += 1;
            end = t;
        } else if mode == "spin" {
            std::hint::spin_loop();
        } else {
            return Err("no message within 5 s".into());
        }
    }
    report_latency(&mut lat, end, cpu_sec() - cpu0);
    Ok(())
}

fn report_latency(lat: &mut Vec<u64>, end: u64, cpu: f64) {
    // The first tenth warms caches and page tables; it is not counted.
    let skip = lat.len() / 10;
    lat.drain(..skip);
    lat.sort_unstable();
    let p = |q: f64| {
        let i = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(i).map_or(f64::NAN, |&v| v as f64 / 1e3)
    };
    report(&[
        ("end", end.to_string()),
        ("received", lat.len().to_string()),
        ("cpu", cpu.to_string()),
        ("p50", p(0.5).to_string()),
        ("p99", p(0.99).to_string()),
        ("p999", p(0.999).to_string()),
    ]);
}

/// `pipe-pub <count> <size> <gap_ns>`: frames to stdout.
fn pipe_pub(args: &[String]) -> Res<()> {
    let [count, size, gap] = args else {
        return Err("pipe-pub <count> <size> <gap_ns>".into());
    };
    let (count, size, gap): (u64, usize, u64) = (count.parse()?, size.parse()?, gap.parse()?);
    // The raw fd, not `stdout()`: that one is line-buffered and would scan every binary
    // frame for newlines (and flush at each).
    // SAFETY: fd 1 is open for the life of this process and nothing else here writes to it.
    let out = unsafe { std::fs::File::from_raw_fd(1) };
    let mut w = BufWriter::with_capacity(64 * 1024, out);
    let mut msg = vec![0u8; size];
    let start = now_ns();
    let cpu0 = cpu_sec();
    let mut next = start;
    for i in 0..count {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        if gap > 0 {
            next += gap;
            spin_until(next);
            msg[8..16].copy_from_slice(&now_ns().to_le_bytes());
        }
        w.write_all(&(size as u32).to_le_bytes())?;
        w.write_all(&msg)?;
        if gap > 0 {
            w.flush()?;
        }
    }
    w.flush()?;
    report(&[
        ("start", start.to_string()),
        ("cpu", (cpu_sec() - cpu0).to_string()),
    ]);
    Ok(())
}

/// `pipe-sub <total> <size> <mode>`: frames from stdin; mode `flood` or `block`.
fn pipe_sub(args: &[String]) -> Res<()> {
    let [total, _size, mode] = args else {
        return Err("pipe-sub <total> <size> <mode>".into());
    };
    let total: u64 = total.parse()?;
    // SAFETY: fd 0 is open for the life of this process and nothing else here reads it.
    let input = unsafe { std::fs::File::from_raw_fd(0) };
    let mut r = BufReader::with_capacity(64 * 1024, input);
    eprintln!("READY");
    let cpu0 = cpu_sec();
    let mut buf = Vec::new();
    let mut lat = Vec::new();
    let mut end = 0;
    for _ in 0..total {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut buf)?;
        if mode != "flood" {
            let t = now_ns();
            lat.push(t - u64::from_le_bytes(buf[8..16].try_into()?));
        }
    }
    end = end.max(now_ns());
    if mode == "flood" {
        report(&[
            ("end", end.to_string()),
            ("received", total.to_string()),
            ("cpu", (cpu_sec() - cpu0).to_string()),
        ]);
    } else {
        report_latency(&mut lat, end, cpu_sec() - cpu0);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The orchestrator.

/// Children of one case; killed and reaped on drop, whatever happened; the channel unlinked.
struct Case {
    children: Vec<Child>,
    lines: mpsc::Receiver<(usize, String)>,
    tx: mpsc::Sender<(usize, String)>,
    channel: Option<String>,
}

impl Case {
    fn new(channel: Option<String>) -> Case {
        let (tx, lines) = mpsc::channel();
        Case {
            children: Vec::new(),
            lines,
            tx,
            channel,
        }
    }

    fn spawn(&mut self, mut cmd: Command) -> Res<usize> {
        let mut child = cmd.stderr(Stdio::piped()).spawn()?;
        let id = self.children.len();
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((id, line)).is_err() {
                    break;
                }
            }
        });
        self.children.push(child);
        Ok(id)
    }

    /// The next line starting with `prefix` from child `id`; other children's lines wait.
    fn expect(&mut self, id: usize, prefix: &str, timeout: Duration) -> Res<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut other = Vec::new();
        let found = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((i, l)) if i == id && l.starts_with(prefix) => break Ok(l),
                // A child that failed (a lost, repeated or damaged message included) fails
                // the case at once.
                Ok((i, l)) if l.starts_with("ERROR") => break Err(format!("child {i}: {l}")),
                Ok((i, l)) if l.starts_with("READY") || l.starts_with("RESULT") => {
                    other.push((i, l))
                }
                Ok((i, l)) => eprintln!("bench_xproc child {i}: {l}"),
                Err(_) => break Err(format!("child {id}: no {prefix} within {timeout:?}")),
            }
        };
        for o in other {
            let _ = self.tx.send(o);
        }
        Ok(found?)
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(name) = &self.channel {
            let _ = shmring::unlink(name);
        }
    }
}

fn field(line: &str, key: &str) -> Res<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key} in {line:?}"))?
        .parse::<f64>()
        .map_err(Into::into)
}

fn me(role: &str) -> Res<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("child").arg(role);
    Ok(c)
}

/// The CPUs this process may run on, in order (empty if that cannot be read).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE, the bound of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins this process to `cpu` (a child's first act when the case pins it: `BENCH_CPU`).
fn pin_to(cpu: usize) -> Res<()> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("no CPU {cpu}").into());
    }
    // SAFETY: `cpu` < CPU_SETSIZE, the bound of `set` (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 names this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity({cpu}): {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(())
}

struct Spec<'a> {
    case: &'a str,
    transport: &'a str,
    size: usize,
    producers: u64,
    count: u64,
    batch: usize,
    /// Latency modes (`spin`, `block`) pace at this gap; 0 = flood.
    gap_ns: u64,
    mode: &'a str,
}

fn run_case(n: usize, s: &Spec) -> Res<String> {
    let timeout = Duration::from_secs(120);
    let pipe = s.transport == "pipe";
    let name = format!("rbench-{}-{n}", std::process::id());
    let mut case = Case::new((!pipe).then(|| name.clone()));
    let per = s.count / s.producers;
    let total = per * s.producers;
    // One producer and one consumer: each on a CPU of its own when there are two, so the
    // scheduler cannot put both on one (which made unpinned runs of the same binary vary
    // 5-fold here). Pipe cases are pinned alike. Several producers are left to the scheduler.
    let cpus = allowed_cpus();
    let pinned = s.producers == 1 && cpus.len() >= 2;
    let pin = |c: &mut Command, i: usize| {
        if pinned {
            c.env("BENCH_CPU", cpus[i].to_string());
        }
    };
    let (sub, pubs) = if pipe {
        let mut p = me("pipe-pub")?;
        pin(&mut p, 1);
        p.args([per.to_string(), s.size.to_string(), s.gap_ns.to_string()])
            .stdout(Stdio::piped());
        let mut child = p.stderr(Stdio::piped()).spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        // Register the producer with the case by hand (it had to be spawned first for its pipe).
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let tx = case.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((0, line)).is_err() {
                    break;
                }
            }
        });
        case.children.push(child);
        let mut c = me("pipe-sub")?;
        pin(&mut c, 0);
        c.args([total.to_string(), s.size.to_string(), s.mode.to_string()])
            .stdin(Stdio::from(out))
            .stdout(Stdio::null());
        let sub = case.spawn(c)?;
        (sub, vec![0])
    } else {
        let ch = open_channel(&name, s.size)?;
        drop(ch);
        let mut c = me("shm-sub")?;
        pin(&mut c, 0);
        c.args([
            name.clone(),
            total.to_string(),
            s.size.to_string(),
            s.mode.to_string(),
        ]);
        let sub = case.spawn(c)?;
        case.expect(sub, "READY", timeout)?;
        let mut pubs = Vec::new();
        for id in 0..s.producers {
            let mut p = me("shm-pub")?;
            pin(&mut p, 1);
            p.args([
                name.clone(),
                per.to_string(),
                s.size.to_string(),
                s.batch.to_string(),
                s.gap_ns.to_string(),
                id.to_string(),
            ]);
            pubs.push(case.spawn(p)?);
        }
        (sub, pubs)
    };
    let res = case.expect(sub, "RESULT", timeout)?;
    let mut start = f64::INFINITY;
    let mut cpu = field(&res, "cpu")?;
    for p in pubs {
        let r = case.expect(p, "RESULT", timeout)?;
        start = start.min(field(&r, "start")?);
        cpu += field(&r, "cpu")?;
    }
    for c in &mut case.children {
        c.wait()?;
    }
    let secs = (field(&res, "end")? - start) / 1e9;
    let received = field(&res, "received")?;
    let label = format!(
        "Rust {} {}{}",
        if pipe { "pipe" } else { "shmring" },
        s.case,
        if s.batch > 1 {
            format!(" (batch {})", s.batch)
        } else {
            String::new()
        }
    );
    let payload = if s.size >= 1024 {
        format!("{} KiB", s.size / 1024)
    } else {
        format!("{} B", s.size)
    };
    let id = if s.size >= 1024 {
        format!("{}KiB", s.size / 1024)
    } else {
        format!("{}B", s.size)
    };
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        }
    };
    let flood = s.mode == "flood";
    let rate = if flood { received / secs } else { f64::NAN };
    let lat = |k: &str| {
        if flood {
            "null".to_string()
        } else {
            field(&res, k).map_or("null".into(), num)
        }
    };
    Ok(format!(
        "{{\"transport\":\"{label}\",\"transportId\":\"rust-{}\",\"case\":\"{}\",\"payload\":\"{payload}\",\"payloadId\":\"{id}\",\"bytes\":{},\"producers\":{},\"batch\":{},\"latency\":{},\"messages\":{},\"msgPerSec\":{},\"mbPerSec\":{},\"p50us\":{},\"p99us\":{},\"p999us\":{},\"cpuSec\":{},\"pinned\":{pinned}}}",
        s.transport,
        s.case,
        s.size,
        s.producers,
        s.batch,
        if flood {
            "null".to_string()
        } else {
            format!("\"{}\"", if s.mode == "spin" { "spin" } else { "blocking" })
        },
        received,
        num(rate),
        num(rate * s.size as f64 / 1e6),
        lat("p50"),
        lat("p99"),
        lat("p999"),
        num(cpu),
    ))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let rest = &args[2..];
        if let Ok(cpu) = std::env::var("BENCH_CPU") {
            pin_to(cpu.parse()?)?;
        }
        let r = match args.get(1).map(String::as_str) {
            Some("shm-pub") => shm_pub(rest),
            Some("shm-sub") => shm_sub(rest),
            Some("pipe-pub") => pipe_pub(rest),
            Some("pipe-sub") => pipe_sub(rest),
            other => Err(format!("unknown role {other:?}").into()),
        };
        if let Err(e) = &r {
            eprintln!("ERROR {e}");
        }
        return r;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let k = if quick { 1 } else { 4 };
    let small = 5_000_000 * k;
    let big = 25_000 * k;
    let lat = if quick { 2_000 } else { 8_000 };
    let spec = |case, transport, size, producers, count, batch, mode, gap_ns| Spec {
        case,
        transport,
        size,
        producers,
        count,
        batch,
        gap_ns,
        mode,
    };
    let cases = [
        spec("SPSC", "shmring", 64, 1, small, 1, "flood", 0),
        spec("SPSC", "shmring", 64, 1, small, 32, "flood", 0),
        spec("MPSC 4 producers", "shmring", 64, 4, small, 1, "flood", 0),
        spec("SPSC", "pipe", 64, 1, small / 2, 1, "flood", 0),
        spec("SPSC", "shmring", 65536, 1, big, 1, "flood", 0),
        spec("MPSC 4 producers", "shmring", 65536, 4, big, 1, "flood", 0),
        spec("SPSC", "pipe", 65536, 1, big, 1, "flood", 0),
        spec(
            "latency, spinning",
            "shmring",
            64,
            1,
            lat,
            1,
            "spin",
            20_000,
        ),
        spec(
            "latency, blocking",
            "shmring",
            64,
            1,
            lat,
            1,
            "block",
            50_000,
        ),
        spec("latency, blocking", "pipe", 64, 1, lat, 1, "block", 50_000),
    ];
    let mut failed = 0;
    for (n, s) in cases.iter().enumerate() {
        eprintln!(
            "[{}/{}] {} {} {} B",
            n + 1,
            cases.len(),
            s.transport,
            s.case,
            s.size
        );
        match run_case(n, s) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                println!(
                    "{{\"case\":\"{} {} {} B\",\"error\":{:?}}}",
                    s.transport,
                    s.case,
                    s.size,
                    e.to_string()
                );
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} case(s) failed").into());
    }
    Ok(())
}
