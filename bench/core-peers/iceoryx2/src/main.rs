//! iceoryx2 publish-subscribe ping-pong, measured the way iceoryx2's own
//! `benchmarks/publish-subscribe` measures it: two participants (threads of one process over
//! the `ipc` service), each pinned to its own CPU, busy-polling `receive()`; A publishes to
//! service a2b and waits for B's answer on b2a, B waits on a2b and answers on b2a. Both
//! services keep no history and a subscriber buffer of one sample with safe overflow.
//! Latency = elapsed / (2 × round trips), the clock started when both threads are ready.
//! Unlike the upstream default (zero-copy, payload left unwritten) every sample's 64 bytes
//! are written before sending, as shmring's `try_publish` copies its payload (upstream's
//! `--send-copy`).
//!
//! `core-peers-iceoryx2 <round_trips> <payload_bytes> <cpu_a> <cpu_b>`; prints one JSON line.

use std::sync::Barrier;
use std::time::Instant;

use iceoryx2::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Pins the calling thread to `cpu` (no-op where the machine has fewer CPUs).
fn pin(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpu >= cpus {
        return;
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < available CPUs < CPU_SETSIZE, within the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        eprintln!("warning: sched_setaffinity({cpu}) failed");
    }
}

fn service(
    node: &Node<ipc::Service>,
    name: &str,
) -> Res<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>> {
    Ok(node
        .service_builder(&ServiceName::new(name)?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
        .create()?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, size, cpu_a, cpu_b] = args.as_slice() else {
        return Err(
            "usage: core-peers-iceoryx2 <round_trips> <payload_bytes> <cpu_a> <cpu_b>".into(),
        );
    };
    let (n, size, cpu_a, cpu_b): (u64, usize, usize, usize) =
        (n.parse()?, size.parse()?, cpu_a.parse()?, cpu_b.parse()?);
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let tag = std::process::id();
    let a2b = service(&node, &format!("corepeers-{tag}-a2b"))?;
    let b2a = service(&node, &format!("corepeers-{tag}-b2a"))?;
    let ready = Barrier::new(3);
    let go = Barrier::new(3);
    let payload = vec![7u8; size];
    let (elapsed, received) = std::thread::scope(|s| -> Res<(u128, u64)> {
        let a = s.spawn(|| -> Result<u64, String> {
            pin(cpu_a);
            let tx = a2b
                .publisher_builder()
                .initial_max_slice_len(size)
                .create()
                .map_err(|e| e.to_string())?;
            let rx = b2a
                .subscriber_builder()
                .create()
                .map_err(|e| e.to_string())?;
            ready.wait();
            go.wait();
            let mut got = 0u64;
            for _ in 0..n {
                let sample = tx.loan_slice_uninit(size).map_err(|e| e.to_string())?;
                sample
                    .write_from_slice(&payload)
                    .send()
                    .map_err(|e| e.to_string())?;
                loop {
                    if let Some(answer) = rx.receive().map_err(|e| e.to_string())? {
                        got += u64::from(answer.payload().len() == size);
                        break;
                    }
                }
            }
            Ok(got)
        });
        let b = s.spawn(|| -> Result<u64, String> {
            pin(cpu_b);
            let tx = b2a
                .publisher_builder()
                .initial_max_slice_len(size)
                .create()
                .map_err(|e| e.to_string())?;
            let rx = a2b
                .subscriber_builder()
                .create()
                .map_err(|e| e.to_string())?;
            ready.wait();
            go.wait();
            let mut got = 0u64;
            for _ in 0..n {
                loop {
                    if let Some(ping) = rx.receive().map_err(|e| e.to_string())? {
                        got += u64::from(ping.payload().len() == size);
                        break;
                    }
                }
                let sample = tx.loan_slice_uninit(size).map_err(|e| e.to_string())?;
                sample
                    .write_from_slice(&payload)
                    .send()
                    .map_err(|e| e.to_string())?;
            }
            Ok(got)
        });
        ready.wait();
        let start = Instant::now();
        go.wait();
        let ga = a.join().map_err(|_| "participant A panicked")??;
        let gb = b.join().map_err(|_| "participant B panicked")??;
        Ok((start.elapsed().as_nanos(), ga + gb))
    })?;
    if received != 2 * n {
        return Err(format!("received {received} of {} messages of {size} bytes", 2 * n).into());
    }
    println!(
        "{{\"peer\":\"iceoryx2\",\"figure\":\"pingpong\",\"round_trips\":{n},\"size\":{size},\"elapsed_ns\":{elapsed},\"one_way_ns\":{:.1}}}",
        elapsed as f64 / (2 * n) as f64
    );
    Ok(())
}
