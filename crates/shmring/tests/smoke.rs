use shmring::{Channel, OpenOptions};

fn name(tag: &str) -> String {
    format!("t-{tag}-{}", std::process::id())
}

#[test]
fn smoke() {
    let n = name("smoke");
    let ch = Channel::open(&n, &OpenOptions::create()).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    assert!(p.try_publish(b"hello").unwrap());
    let mut out = Vec::new();
    assert!(sub.try_recv(&mut out).unwrap());
    assert_eq!(out, b"hello");
    assert!(!sub.try_recv(&mut out).unwrap());
    shmring::unlink(&n).unwrap();
}

#[test]
fn wraps_with_padding() {
    let n = name("wrap");
    let opts = OpenOptions { capacity: Some(4096), max_message_size: Some(1000), ..OpenOptions::create() };
    let ch = Channel::open(&n, &opts).unwrap();
    let mut sub = ch.subscribe().unwrap();
    let mut p = ch.producer().unwrap();
    let mut out = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..20_000u32 {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        let len = (x % 1001) as usize;
        let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        assert!(p.try_publish(&msg).unwrap(), "publish {i}");
        assert!(sub.try_recv(&mut out).unwrap());
        assert_eq!(out, msg, "message {i}");
    }
    shmring::unlink(&n).unwrap();
}
