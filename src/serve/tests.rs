//! The queue and the refusals, in process, with a gate in place of the model so that "the
//! queue is full" is a state the test sets up, not a race it hopes to win.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use super::client::{post_file, request, request_with};
use super::*;
use crate::model::ModelId;

struct Gate {
    open: Receiver<()>,
    done: Arc<AtomicUsize>,
}

fn model() -> ModelId {
    ModelId {
        name: "gate".into(),
        version: "0".into(),
        variant: "test".into(),
        sha256: "000000000000".into(),
        profile: Default::default(),
    }
}

impl Analyse for Gate {
    fn analyse(&mut self, bytes: &[u8], _mode: InputMode, _case: Option<&str>) -> Record {
        let _ = self.open.recv();
        // An upload of these bytes stands for a film that makes the analysis panic.
        if bytes == b"panic" {
            // Unwinds like a panic, without the panic hook: printing a backtrace under load
            // takes longer than these tests let a client wait.
            std::panic::resume_unwind(Box::new("a film that breaks the analysis"));
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        let mut r = Record::new("upload:gate", model());
        r.label = Some(format!("{} bytes", bytes.len()));
        r
    }
    fn failed(&mut self) -> Record {
        let mut r = Record::new("upload:failed", model());
        r.error = Some("the analysis failed unexpectedly".into());
        r
    }
}

struct Server {
    addr: SocketAddr,
    state: Shared,
    _rt: tokio::runtime::Runtime,
}

fn start(capacity: usize, token: Option<&str>) -> (Server, Sender<()>, Arc<AtomicUsize>) {
    let (tx, rx) = channel();
    let done = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        open: rx,
        done: done.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(AppState {
        queue: Queue::start(gate, capacity),
        receiving: Arc::new(tokio::sync::Semaphore::new(capacity + 2)),
        pictures: Arc::new(Mutex::new(Pictures::default())),
        token: token.map(str::to_string),
        model: Arc::new(Mutex::new(model())),
        body_timeout: Duration::from_secs(5),
        names: Vec::new(),
        stuck_after: Duration::from_millis(100),
        case: crate::case::Policy::default(),
    });
    let app = router(state.clone(), 1 << 20);
    let listener = net::TimedListener::new(listener, Duration::from_secs(1));
    rt.spawn(async move { axum::serve(listener, app).await });
    (
        Server {
            addr,
            state,
            _rt: rt,
        },
        tx,
        done,
    )
}

const T: Duration = Duration::from_secs(20);

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_full_queue_answers_503_and_every_accepted_upload_is_answered() {
    let (srv, gate, done) = start(1, None);
    let addr = srv.addr;
    // First upload: taken by the model thread, which waits at the gate.
    let first = std::thread::spawn(move || post_file(addr, None, b"first", None, T).unwrap());
    wait_for("the first upload to be taken", || {
        srv.state.queue.waiting() == 1
    });
    // Second: waits in the queue (capacity 1).
    let second = std::thread::spawn(move || post_file(addr, None, b"second!", None, T).unwrap());
    wait_for("the second upload to queue", || {
        srv.state.queue.waiting() == 2
    });
    // Third: no room.
    let third = post_file(addr, None, b"third", None, T).unwrap();
    assert_eq!(third.status, 503, "{}", third.text());
    assert_eq!(third.header("retry-after"), Some("2"));
    assert!(third.text().contains("busy"), "{}", third.text());
    // Health still answers while full.
    let h = request(addr, "GET", "/api/health", None, None, T).unwrap();
    assert_eq!(h.json()["queue"]["waiting"], 2);
    gate.send(()).unwrap();
    gate.send(()).unwrap();
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.json()["label"], "5 bytes");
    assert_eq!(b.json()["label"], "7 bytes");
    assert_eq!(a.json()["notice"], crate::NOTICE);
    assert_eq!(done.load(Ordering::SeqCst), 2);
    // And the server takes uploads again.
    gate.send(()).unwrap();
    assert_eq!(
        post_file(addr, None, b"again", None, T).unwrap().status,
        200
    );
}

#[test]
fn an_upload_whose_client_left_is_still_analysed_and_drain_finishes_the_queue() {
    let (srv, gate, done) = start(2, None);
    let addr = srv.addr;
    // A client that hangs up as soon as its upload is accepted.
    let gone = {
        use std::io::Write;
        let body = client::multipart_body(&[("file", Some("x.png"), b"gone")]);
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /api/classify HTTP/1.1\r\nHost: {addr}\r\nX-Requested-With: cxr-edge\r\nContent-Type: multipart/form-data; boundary=cxr-edge-boundary-7f3a9c\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        s
    };
    wait_for("the upload to be accepted", || {
        srv.state.queue.waiting() == 1
    });
    drop(gone);
    let queued = std::thread::spawn(move || post_file(addr, None, b"queued", None, T).unwrap());
    wait_for("the second upload", || srv.state.queue.waiting() == 2);
    // Stopping now must still finish both.
    gate.send(()).unwrap();
    gate.send(()).unwrap();
    srv.state.queue.drain();
    assert_eq!(done.load(Ordering::SeqCst), 2);
    assert_eq!(queued.join().unwrap().status, 200);
    // After the drain nothing more is taken, and the answer says so.
    let late = post_file(addr, None, b"late", None, T).unwrap();
    assert_eq!(late.status, 503, "{}", late.text());
    assert!(!srv.state.queue.alive());
}

#[test]
fn tokens_are_required_when_set() {
    let (srv, gate, _) = start(2, Some("0123456789abcdef-token"));
    let addr = srv.addr;
    let missing = post_file(addr, None, b"x", None, T).unwrap();
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = post_file(addr, Some("0123456789abcdef-tokeN"), b"x", None, T).unwrap();
    assert_eq!(wrong.status, 403);
    assert_eq!(
        srv.state.queue.waiting(),
        0,
        "refused uploads never reach the model"
    );
    gate.send(()).unwrap();
    let right = post_file(addr, Some("0123456789abcdef-token"), b"x", None, T).unwrap();
    assert_eq!(right.status, 200);
    // The page and health are open (they carry no results); pictures are not.
    assert_eq!(
        request(addr, "GET", "/", None, None, T).unwrap().status,
        200
    );
    assert_eq!(
        request(addr, "GET", "/api/health", None, None, T)
            .unwrap()
            .json()["token_required"],
        true
    );
    let pic = request(addr, "GET", "/api/results/x/heatmap.png", None, None, T).unwrap();
    assert_eq!(pic.status, 401);
}

#[test]
fn bad_forms_are_refused_with_a_reason() {
    let (srv, _gate, _) = start(2, None);
    let addr = srv.addr;
    let body = client::multipart_body(&[("other", None, b"x")]);
    let r = request(addr, "POST", "/api/classify", None, Some(&body), T).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("multipart field 'file'"), "{}", r.text());
    let r = post_file(addr, None, b"", None, T).unwrap();
    assert_eq!(r.status, 400);
    let r = post_file(addr, None, b"x", Some("xray"), T).unwrap();
    assert_eq!(r.status, 400);
    // Over the body limit (1 MiB + framing in these tests).
    let big = vec![7u8; 2 << 20];
    let r = post_file(addr, None, &big, None, T).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(srv.state.queue.waiting(), 0);
    // Every answer carries the no-sniff header.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn a_silent_client_is_dropped() {
    let (srv, _gate, _) = start(1, None);
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"POST /api/classify HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    // The server closes (0 bytes or an error) after its 1 s idle limit, not our 20 s timeout.
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the server waited on a silent client"
    );
    let _ = n;
}

/// A film that makes the analysis panic gets 500 (not a result, not a hang), the server goes on
/// analysing the next upload, and while one analysis runs too long `/api/health` says so.
#[test]
fn a_panicking_or_stuck_analysis_is_reported_and_the_server_goes_on() {
    let (srv, gate, _done) = start(2, None);
    let addr = srv.addr;
    // The model thread sits on this upload (the gate is shut): "stuck" after 100 ms here.
    let slow = std::thread::spawn(move || post_file(addr, None, b"slow film", None, T).unwrap());
    wait_for("the upload to be taken", || {
        srv.state.queue.busy_for().is_some()
    });
    wait_for("the analysis to run past the limit", || {
        srv.state.queue.busy_for() >= Some(Duration::from_millis(150))
    });
    let h = request(addr, "GET", "/api/health", None, None, T).unwrap();
    assert_eq!(h.status, 503, "{}", h.text());
    assert!(h.json()["status"]
        .as_str()
        .unwrap()
        .starts_with("model stuck"));
    gate.send(()).unwrap();
    assert_eq!(slow.join().unwrap().status, 200);
    // A film that breaks the analysis.
    gate.send(()).unwrap();
    let r = post_file(addr, None, b"panic", None, T).unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("failed unexpectedly"));
    // The next upload is analysed as usual, and health is ok again.
    gate.send(()).unwrap();
    let next = post_file(addr, None, b"next film", None, T).unwrap();
    assert_eq!(next.status, 200, "{}", next.text());
    let h = request(addr, "GET", "/api/health", None, None, T).unwrap();
    assert_eq!(h.status, 200, "{}", h.text());
}

/// Clients that open connections and drip request-header bytes forever, reconnecting a second
/// after the server drops them: what took every connection slot before (70 of them, one byte
/// every 3 s, starved both the health check and authorised uploads).
struct SlowClients {
    stop: Arc<std::sync::atomic::AtomicBool>,
    dropped: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowClients {
    fn start(addr: SocketAddr, n: usize, drip: Duration) -> SlowClients {
        use std::io::{ErrorKind, Read, Write};
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let connect = move || {
            let mut s = std::net::TcpStream::connect(addr).ok()?;
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let (stop2, dropped2) = (stop.clone(), dropped.clone());
        let thread = std::thread::spawn(move || {
            // (connection, when it next sends a byte or reconnects)
            let mut clients: Vec<(Option<std::net::TcpStream>, Instant)> =
                (0..n).map(|_| (connect(), Instant::now() + drip)).collect();
            let mut buf = [0u8; 512];
            while !stop2.load(Ordering::SeqCst) {
                let now = Instant::now();
                for (conn, due) in clients.iter_mut() {
                    let closed = match conn {
                        Some(s) => match s.read(&mut buf) {
                            Ok(0) => true,
                            Ok(_) => false,
                            Err(e) => e.kind() != ErrorKind::WouldBlock,
                        },
                        None => false,
                    };
                    if closed {
                        dropped2.fetch_add(1, Ordering::SeqCst);
                        *conn = None;
                        *due = now + Duration::from_secs(1);
                    }
                    if now < *due {
                        continue;
                    }
                    match conn {
                        Some(s) => {
                            if s.write(b"x").is_err() {
                                *conn = None;
                            }
                        }
                        None => *conn = connect(),
                    }
                    *due = now + drip;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        SlowClients {
            stop,
            dropped,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 200 slow clients on the same address as the user (so the per-address cap alone cannot
/// help): the health check and an authorised upload still answer within 2 s, because the
/// oldest connection without a complete request makes room for a new one.
#[test]
fn slow_clients_cannot_starve_the_health_check_or_an_upload() {
    let (srv, gate, _) = start(1, Some("tok-slow"));
    // Drip faster than the 1 s idle limit, so only the header rules can drop them.
    let slow = SlowClients::start(srv.addr, 200, Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(1500));
    let quick = Duration::from_secs(2);
    for round in 0..3 {
        let t = Instant::now();
        let h = request(srv.addr, "GET", "/api/health", None, None, quick)
            .unwrap_or_else(|e| panic!("round {round}: health did not answer: {e}"));
        assert_eq!(h.status, 200, "{}", h.text());
        eprintln!("round {round}: health answered in {:?}", t.elapsed());
        assert!(
            t.elapsed() < quick,
            "round {round}: health took {:?}",
            t.elapsed()
        );
        gate.send(()).unwrap();
        let t = Instant::now();
        let r = post_file(srv.addr, Some("tok-slow"), b"a film", None, quick)
            .unwrap_or_else(|e| panic!("round {round}: the upload did not answer: {e}"));
        assert_eq!(r.status, 200, "{}", r.text());
        eprintln!(
            "round {round}: authorised upload answered in {:?}",
            t.elapsed()
        );
        assert!(
            t.elapsed() < quick,
            "round {round}: upload took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The slow ones were dropped to make room, not served.
    let dropped = slow.dropped.load(Ordering::SeqCst);
    eprintln!("slow connections dropped to make room: {dropped}");
    assert!(dropped > 0);
}

/// The page follows the browser's language; `?lang=` overrides it; English otherwise.
#[test]
fn the_page_speaks_the_browsers_language() {
    let (srv, _gate, _) = start(2, None);
    let addr = srv.addr;
    let get = |path: &str, accept: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("Accept-Language", a)).into_iter().collect();
        request_with(addr, "GET", path, &headers, None, T).unwrap()
    };
    let fr = get("/", Some("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"));
    assert_eq!(fr.status, 200);
    assert_eq!(fr.header("vary"), Some("Accept-Language"));
    let html = fr.text();
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("USAGE RECHERCHE UNIQUEMENT - PAS UN DIAGNOSTIC"));
    assert!(html.contains(">Analyser</button>"));
    assert!(html.contains("Type d&#39;image"), "escaped");
    assert!(!html.contains("RESEARCH USE ONLY"));
    let en = get("/", None).text();
    assert!(
        en.contains("<html lang=\"en\">") && en.contains(">RESEARCH USE ONLY - NOT A DIAGNOSIS<")
    );
    assert!(get("/", Some("de-DE"))
        .text()
        .contains("<html lang=\"en\">"));
    let pt = get("/?lang=pt", Some("fr")).text();
    assert!(
        pt.contains("APENAS PARA PESQUISA - NÃO É UM DIAGNÓSTICO"),
        "{pt}"
    );
}
