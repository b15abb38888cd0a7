//! `cxr-edge serve`: a local upload page and JSON API over the same model, preprocessing and
//! results log as the kiosk, for clinics whose films are already files (PNG, JPEG, DICOM).
//!
//! Safe by default: it listens on loopback only; any other address needs an access token in
//! the config. Uploads are capped in bytes and pixels, wait in a bounded queue in front of one
//! model thread (a full queue answers 503 with Retry-After), and slow or silent clients are
//! dropped. The file's content decides what it is, never its name or declared type.
//!
//! Routes: `GET /` (the page, in the language of `?lang=` or `Accept-Language`), `GET /app.js`, `GET /api/health`, `POST /api/classify`
//! (multipart field `file`, optional field `input` = digital | film-photo | auto; answers with
//! the `classify --json` record), `GET /api/results/{id}/{film|heatmap}.png` (the pictures of
//! the last results, for the page).

// The HTTP client of the server's tests lives with the integration tests (it is not part of
// the shipped library); the unit tests borrow it.
#[cfg(test)]
#[path = "../../tests/common/client.rs"]
mod client;
mod net;
mod origin;
#[cfg(test)]
mod tests;
pub mod upload;
mod words;
mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

#[cfg(test)]
use crate::analysis::InputMode;
use crate::capture::Limits;
use crate::config::ServeSection;
use crate::model::Classifier;
#[cfg(test)]
use crate::record::Record;
use crate::store::ResultsLog;
pub use net::{is_loopback, token_matches};
#[cfg(test)]
use worker::Analyse;
pub use worker::Reload;
use worker::{Analyser, Job, Pictures, Queue, Refused};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
/// No film takes this long (a 36-megapixel upload takes a few seconds on a Pi 4): an analysis
/// running longer is reported by `/api/health` as a stuck model thread.
const STUCK_AFTER: Duration = Duration::from_secs(60);
/// Seconds a client is asked to wait when the queue is full.
const RETRY_AFTER_S: u64 = 2;

/// Everything `serve` needs, resolved from the config and the command line.
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Access token clients must present; `None` when none is set.
    pub token: Option<String>,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Largest decoded image accepted, in pixels.
    pub max_pixels: u64,
    /// Peak memory of one analysis, in bytes (the config's `memory_mb`).
    pub memory_budget: u64,
    /// Uploads that may wait for the model before new ones are refused.
    pub queue: usize,
    /// How long a silent client is kept before it is dropped.
    pub client_timeout: Duration,
    /// Keep each upload's heatmap picture next to its record.
    pub keep_images: bool,
    /// Names (besides IP addresses and `localhost`) that clients may use for this server.
    pub hosts: Vec<String>,
    /// The config's case-code rule (`case_code`, `case_code_pattern`).
    pub case: crate::case::Policy,
}

impl ServeOptions {
    /// From the `[serve]` section, with `listen` overridden when given. Refuses a listening
    /// address beyond this machine without a token.
    pub fn from_config(s: &ServeSection, listen: Option<&str>, keep_images: bool) -> Result<Self> {
        let text = listen.unwrap_or(&s.listen);
        let listen: SocketAddr = text.parse().with_context(|| {
            format!("listen address '{text}' is not IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
        })?;
        let token = Some(s.token.trim().to_string()).filter(|t| !t.is_empty());
        if token.is_none() && !is_loopback(&listen) {
            bail!(
                "listening on {listen} would open the upload page to the network; set an access token first ([serve] token = \"...\" in the config, 16+ characters), or listen on 127.0.0.1"
            );
        }
        Ok(ServeOptions {
            listen,
            token,
            max_upload_bytes: s.max_upload_mb << 20,
            max_pixels: s.max_megapixels * 1_000_000,
            memory_budget: crate::capture::DEFAULT_MEMORY_BUDGET,
            queue: s.queue,
            client_timeout: Duration::from_secs(s.client_timeout_s),
            keep_images,
            hosts: s.hosts.clone(),
            case: crate::case::Policy::default(),
        })
    }
}

struct AppState {
    queue: Queue,
    /// Uploads being received at once; with the queue this bounds the memory held in bodies.
    receiving: Arc<tokio::sync::Semaphore>,
    pictures: Arc<Mutex<Pictures>>,
    token: Option<String>,
    model: Arc<Mutex<crate::model::ModelId>>,
    body_timeout: Duration,
    /// Names the server answers to besides IP addresses and `localhost` (see [`origin`]).
    names: Vec<String>,
    /// An analysis running longer than this makes `/api/health` say the model is stuck.
    stuck_after: Duration,
    /// Whether uploads carry the study's case code, and its form.
    case: crate::case::Policy,
}

type Shared = Arc<AppState>;

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let body = Json(json!({ "error": msg.into(), "notice": crate::NOTICE }));
    (status, body).into_response()
}

/// `Authorization: Bearer <token>` when a token is configured.
// The refusal is the handler's answer itself (axum's `Response`), built once per refused request.
#[allow(clippy::result_large_err)]
fn authorised(st: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = &st.token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        None => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "this server needs an access token (Authorization: Bearer ...)",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(r)
        }
        Some(t) if token_matches(t.trim(), expected) => Ok(()),
        Some(_) => Err(error(StatusCode::FORBIDDEN, "wrong access token")),
    }
}

async fn page(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let language = words::page_language(query.as_deref(), accept);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // The same address answers in several languages.
            (header::VARY, "Accept-Language"),
        ],
        words::page(PAGE, language),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn health(State(st): State<Shared>) -> Response {
    let stuck = st.queue.busy_for().filter(|d| *d >= st.stuck_after);
    let status = match (st.queue.alive(), stuck) {
        (false, _) => "model stopped".to_string(),
        (true, Some(d)) => format!(
            "model stuck: one analysis has been running for {} s",
            d.as_secs()
        ),
        (true, None) => "ok".to_string(),
    };
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": status,
        "model": worker::lock(&st.model).clone(),
        "queue": { "waiting": st.queue.waiting(), "capacity": st.queue.capacity },
        "token_required": st.token.is_some(),
        "case_code": st.case.mode,
        "notice": crate::NOTICE,
    });
    (code, Json(body)).into_response()
}

async fn classify(State(st): State<Shared>, headers: HeaderMap, form: Multipart) -> Response {
    if let Err(r) = authorised(&st, &headers) {
        return r;
    }
    // Memory: at most `receiving` bodies in flight plus `queue` waiting plus one analysed,
    // each at most max_upload_mb. More at once are turned away before their bytes are read.
    let Ok(receiving) = st.receiving.clone().try_acquire_owned() else {
        return busy(&st);
    };
    let upload::Upload {
        bytes,
        mode,
        case_code,
    } = match tokio::time::timeout(st.body_timeout, upload::read_upload(form)).await {
        Ok(Ok(u)) => u,
        Ok(Err(r)) => return error(r.status, r.message),
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the upload took too long; nothing was analysed",
            )
        }
    };
    // The message says what is wrong with the code, never the code itself.
    let case_code = match st.case.check(case_code.as_deref()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<worker::Answer>();
    let job = Job {
        bytes,
        mode,
        case_code,
        reply: tx,
    };
    let submitted = st.queue.try_submit(job);
    drop(receiving);
    match submitted {
        Ok(()) => {}
        Err(Refused::Full) => return busy(&st),
        Err(Refused::Stopped) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the model is not running (the server is stopping); nothing was analysed",
            )
        }
    }
    match rx.await {
        Ok(answer) => {
            let code = match (&answer.record.error, answer.internal) {
                (_, true) => StatusCode::INTERNAL_SERVER_ERROR,
                (Some(_), false) => StatusCode::UNPROCESSABLE_ENTITY,
                (None, false) => StatusCode::OK,
            };
            (code, Json(answer.record)).into_response()
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the model thread stopped before answering",
        ),
    }
}

/// 503 with Retry-After: the queue (or the room for incoming uploads) is full.
fn busy(st: &AppState) -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "busy: {} uploads are already waiting for the model; try again in a few seconds (nothing was analysed)",
            st.queue.capacity
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    r
}

async fn picture(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Response {
    if let Err(r) = authorised(&st, &headers) {
        return r;
    }
    let which = file.strip_suffix(".png").unwrap_or("");
    let found = worker::lock(&st.pictures).get(&id, which);
    match found {
        Some(png) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                // A film is patient data: no cache on the way or in the browser keeps it.
                (header::CACHE_CONTROL, "no-store"),
            ],
            png,
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no such picture (only the last results are kept in memory)",
        ),
    }
}

/// Refuse requests that do not name this server, come from another site, or POST without the
/// page's own header (see [`origin`]). Before the token check and before any body is read.
async fn same_site(
    State(st): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !origin::host_allowed(host, &st.names) {
        let shown: String = host.chars().take(64).collect();
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this server does not answer to the name '{shown}': use its address, or add the name to hosts in the [serve] section of the config"),
        );
    }
    if let Some(o) = headers.get(header::ORIGIN) {
        if !origin::origin_allowed(o.to_str().unwrap_or(""), host) {
            return error(
                StatusCode::FORBIDDEN,
                "requests from other sites are refused; nothing was analysed",
            );
        }
    }
    if req.method() == axum::http::Method::POST && !headers.contains_key(origin::REQUESTED_WITH) {
        return error(
            StatusCode::FORBIDDEN,
            "an upload needs the header X-Requested-With (the upload page sets it); nothing was analysed",
        );
    }
    next.run(req).await
}

/// Headers on every answer: nothing is sniffed, framed or fetched from elsewhere.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn router(state: Shared, max_upload_bytes: u64) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/api/health", get(health))
        .route("/api/classify", post(classify))
        .route("/api/results/{id}/{file}", get(picture))
        // Room for the multipart framing around the file.
        .layer(DefaultBodyLimit::max(max_upload_bytes as usize + 64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            same_site,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Run the server until SIGINT or SIGTERM; accepted uploads are finished and recorded first.
/// `reload` is asked between uploads for a new model (see [`Reload`]).
pub fn run(
    opts: ServeOptions,
    clf: Classifier,
    log: ResultsLog,
    reload: Option<Reload>,
) -> Result<()> {
    let clf = Arc::new(clf);
    let limits = Limits {
        max_file_bytes: opts.max_upload_bytes,
        max_pixels: opts.max_pixels,
        memory_budget: opts.memory_budget,
        ..Limits::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let local = listener.local_addr()?;
        let pictures = Arc::new(Mutex::new(Pictures::default()));
        let model = Arc::new(Mutex::new(clf.id()));
        let analyser = Analyser {
            clf,
            log,
            keep_images: opts.keep_images,
            limits,
            pictures: pictures.clone(),
            model: model.clone(),
            reload: reload.map(|r| (r, std::time::Instant::now())),
        };
        let state = Arc::new(AppState {
            model,
            queue: Queue::start(analyser, opts.queue),
            receiving: Arc::new(tokio::sync::Semaphore::new(opts.queue + 2)),
            pictures,
            token: opts.token.clone(),
            body_timeout: opts.client_timeout * 2,
            names: origin::names(&opts.hosts, local),
            stuck_after: STUCK_AFTER,
            case: opts.case.clone(),
        });
        let app = router(state.clone(), opts.max_upload_bytes);
        // Tests and scripts read this line to learn the port when listening on port 0.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "cxr-edge serve: listening on http://{local}/ ({}{}). {}",
            if is_loopback(&local) {
                "this machine only"
            } else {
                "network"
            },
            if opts.token.is_some() {
                ", token required"
            } else {
                ""
            },
            crate::NOTICE
        );
        let _ = out.flush();
        let listener = net::TimedListener::new(listener, opts.client_timeout);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server failed")?;
        tracing::info!("stopping; finishing the uploads already accepted");
        let queue_state = state.clone();
        tokio::task::spawn_blocking(move || queue_state.queue.drain())
            .await
            .ok();
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
