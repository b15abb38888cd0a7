//! A study's broker under many units: `--devices` simulated units publish result messages to
//! one Debian `mosquitto` on loopback, each the way `cxr-edge` does it (QoS 1, one message in
//! flight, the next after the PUBACK), while one subscriber (the study's archive side) takes
//! them all. Prints throughput, end-to-end latency and the broker's memory (docs/fleet.md).
//!
//!   cargo run --release --example fleet_load -- [--devices 200] [--messages 50] [--bytes N]
//!
//! The payload is a result message of the size a real record makes (`--bytes`, default the
//! size measured on the sample films' records); its first field carries the send time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Resident memory of process `pid` in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn payload(sent_us: u64, device: u64, n: u64, bytes: usize) -> Vec<u8> {
    let mut p = format!(
        "{{\"sent_us\":{sent_us},\"schema\":\"cxr-edge/result/v1\",\"id\":\"site-{}/unit-{device}/{n:08}\",\
         \"label\":\"normal\",\"probs\":{{\"covid\":0.04,\"pneumonia\":0.07,\"normal\":0.88,\"other\":0.01}},\"pad\":\"",
        device % 10
    );
    while p.len() + 2 < bytes {
        p.push('x');
    }
    p.push_str("\"}");
    p.into_bytes()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let devices = arg("--devices", 200);
    let messages = arg("--messages", 50);
    let bytes = arg("--bytes", 1500) as usize;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("mosquitto.conf");
    let mut text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 100\n"
    );
    if unsafe { libc::geteuid() } == 0 {
        text.push_str("user root\n");
    }
    std::fs::write(&conf, text).unwrap();
    let mut broker = std::process::Command::new(
        std::env::var("CXR_EDGE_MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into()),
    )
    .arg("-c")
    .arg(&conf)
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("mosquitto (Debian's package)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = broker.id();
    let rss_idle = rss_kib(pid);

    // The archive side: one subscriber for every unit's results.
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        (devices * messages) as usize,
    )));
    let received = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new("archive", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20).set_inflight(100);
    let (sub, mut sub_loop) = AsyncClient::new(o, 1000);
    sub.subscribe("cxr-edge/v1/+/+/result", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (lat, got) = (latencies.clone(), received.clone());
    tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = sub_loop.poll().await {
                let t = now_us();
                let s = std::str::from_utf8(&p.payload).unwrap_or("");
                if let Some(v) = s
                    .strip_prefix("{\"sent_us\":")
                    .and_then(|r| r.split(',').next())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    lat.lock().unwrap().push(t.saturating_sub(v));
                }
                got.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The broker's memory, sampled while the units publish.
    let peak = Arc::new(AtomicU64::new(rss_idle));
    let p2 = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            p2.fetch_max(rss_kib(pid), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let start = Instant::now();
    let mut units = Vec::new();
    for d in 0..devices {
        units.push(tokio::spawn(async move {
            let mut o = MqttOptions::new(format!("unit-{d}"), "127.0.0.1", port);
            o.set_inflight(1).set_keep_alive(Duration::from_secs(30));
            let (c, mut ev) = AsyncClient::new(o, 4);
            let topic = format!("cxr-edge/v1/site-{}/unit-{d}/result", d % 10);
            for n in 0..messages {
                c.publish(
                    &topic,
                    QoS::AtLeastOnce,
                    false,
                    payload(now_us(), d, n, bytes),
                )
                .await
                .unwrap();
                let mut ours = None;
                loop {
                    match ev.poll().await.expect("the broker stays up") {
                        Event::Outgoing(Outgoing::Publish(id)) if ours.is_none() => ours = Some(id),
                        Event::Incoming(Packet::PubAck(a)) if Some(a.pkid) == ours => break,
                        _ => {}
                    }
                }
            }
            c.disconnect().await.ok();
        }));
    }
    for u in units {
        u.await.unwrap();
    }
    let published = start.elapsed();
    let total = devices * messages;
    while received.load(Ordering::Relaxed) < total && start.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = start.elapsed();
    sampler.abort();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |q: f64| {
        l.get(((l.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "fleet_load: {devices} units x {messages} messages of {bytes} B (QoS 1, one in flight each), one subscriber"
    );
    println!(
        "  received {} of {total} in {:.2} s (published in {:.2} s): {:.0} messages/s, {:.2} MB/s",
        received.load(Ordering::Relaxed),
        all.as_secs_f64(),
        published.as_secs_f64(),
        total as f64 / all.as_secs_f64(),
        (total as f64 * bytes as f64) / all.as_secs_f64() / 1e6
    );
    println!(
        "  end-to-end latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  broker RSS idle {:.1} MB, peak {:.1} MB, after {:.1} MB",
        rss_idle as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0
    );
    let _ = broker.kill();
    let _ = broker.wait();
}
