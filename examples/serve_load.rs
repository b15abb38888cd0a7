//! Load check for `cxr-edge serve` on loopback: N clients upload the same file back to back
//! for a fixed time; prints requests/s, latency percentiles and the answers by status.
//! `scripts/serve-load` starts the server, runs this and samples the server's memory.
//!
//!     cargo run --release --example serve_load -- ADDR FILE [CONCURRENCY] [SECONDS]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/common/client.rs"]
#[allow(dead_code)]
mod client;
use client::post_file;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: serve_load ADDR FILE [CONCURRENCY=16] [SECONDS=20]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[0].parse().expect("ADDR is IP:PORT");
    let file = std::fs::read(&args[1]).expect("FILE readable");
    let clients: usize = args.get(2).map_or(16, |s| s.parse().expect("CONCURRENCY"));
    let seconds: f64 = args.get(3).map_or(20.0, |s| s.parse().expect("SECONDS"));
    let file = Arc::new(file);
    // (status, latency) of every request.
    let results = Arc::new(Mutex::new(Vec::<(u16, Duration)>::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (file, results) = (file.clone(), results.clone());
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let t = Instant::now();
                    let status = post_file(addr, None, &file, None, Duration::from_secs(120))
                        .map(|r| r.status)
                        .unwrap_or(0);
                    results.lock().unwrap().push((status, t.elapsed()));
                    if status == 503 {
                        // A polite client waits before trying again (the server says 2 s;
                        // a shorter pause keeps the pressure on for the check).
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let results = results.lock().unwrap();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (s, _) in results.iter() {
        *by_status.entry(*s).or_default() += 1;
    }
    let mut ok: Vec<f64> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, d)| d.as_secs_f64() * 1e3)
        .collect();
    ok.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| -> f64 {
        if ok.is_empty() {
            return f64::NAN;
        }
        ok[((ok.len() - 1) as f64 * p).round() as usize]
    };
    println!(
        "concurrency {clients}, {wall:.1} s: {} requests, {:.1} analysed/s; latency of analysed uploads p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        results.len(),
        ok.len() as f64 / wall,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(s, n)| {
            format!(
                "{}: {n}",
                if *s == 0 {
                    "no answer".to_string()
                } else {
                    s.to_string()
                }
            )
        })
        .collect();
    println!("answers by status: {}", statuses.join(", "));
    if by_status.contains_key(&0) {
        std::process::exit(1);
    }
}
