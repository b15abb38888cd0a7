//! The DICOMweb destination: each record's instances ([`super::instances`]) in one STOW-RS
//! request (`POST <base>/studies`, `multipart/related; type="application/dicom"`), over hyper's
//! HTTP/1 client, with rustls for `https://`.
//!
//! The answer decides what happens to the record: 200 stored (the UIDs are the record's, so a
//! resend after a lost answer stores nothing new); another 2xx (202: some instances refused)
//! or a 4xx about the request (400, 409, 413, 415...) refused for good, the record parked with
//! the archive's words; anything else is an error and the record waits for the next try: 5xx,
//! 408 and 429, no answer or no connection, and 401/403/404/405/407, which say the unit's
//! settings are wrong (parking every record on a typo would empty the queue into the park).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::ArchiveUrl;

/// How long the archive may take to accept a connection, and to answer a request.
const CONNECT: Duration = Duration::from_secs(20);
const ANSWER: Duration = Duration::from_secs(120);
/// The most of an answer read (the STOW-RS response names the instances; an error page is
/// only quoted).
const MAX_ANSWER: usize = 256 * 1024;

/// What the archive did with a record.
#[derive(Debug, PartialEq)]
pub enum Stow {
    /// Stored (or already there).
    Stored,
    /// Refused for good, with the reason.
    Refused(String),
}

/// A DICOM archive's DICOMweb service.
pub struct Archive {
    url: ArchiveUrl,
    authorization: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

/// The system's CA bundle.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl Archive {
    /// `ca`: PEM of the archive's CA (https; default the system's); `authorization`: the
    /// header's value (`Bearer ...`, `Basic ...`).
    pub fn new(
        url: ArchiveUrl,
        ca: Option<Vec<u8>>,
        authorization: Option<String>,
    ) -> Result<Archive> {
        let tls = if url.tls {
            Some(tls_connector(ca, "the archive's")?)
        } else {
            None
        };
        Ok(Archive {
            url,
            authorization,
            tls,
        })
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}://{}:{}{}",
            if self.url.tls { "https" } else { "http" },
            self.url.host,
            self.url.port,
            self.url.path
        )
    }

    /// STOW-RS the `instances` (DICOM files) as one request.
    pub async fn store(&self, instances: &[Vec<u8>]) -> Result<Stow> {
        let (boundary, body) = multipart(instances);
        let host = if self.url.host.contains(':') {
            format!("[{}]:{}", self.url.host, self.url.port)
        } else {
            format!("{}:{}", self.url.host, self.url.port)
        };
        let mut req = hyper::Request::post(format!("{}/studies", self.url.path))
            .header(hyper::header::HOST, host)
            .header(
                hyper::header::CONTENT_TYPE,
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header(hyper::header::ACCEPT, "application/dicom+json")
            .header(hyper::header::CONTENT_LENGTH, body.len());
        if let Some(a) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let (status, _, text) = request_with_headers(&self.url, self.tls.as_ref(), req, MAX_ANSWER)
            .await
            .with_context(|| format!("the archive {}", self.describe()))?;
        let text = String::from_utf8_lossy(&text).into_owned();
        judge(status, &text)
    }
}

/// A TLS client trusting the CAs in `ca` (PEM; default the system's bundle). `whose` names
/// the server in messages.
pub(crate) fn tls_connector(
    ca: Option<Vec<u8>>,
    whose: &str,
) -> Result<tokio_rustls::TlsConnector> {
    let pem = match ca {
        Some(p) => p,
        None => std::fs::read(SYSTEM_CAS).with_context(|| {
            format!("no CA file given for {whose} server and cannot read {SYSTEM_CAS}")
        })?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.with_context(|| format!("bad certificate in {whose} CA file"))?)?;
    }
    if roots.is_empty() {
        bail!("no certificate in {whose} CA file");
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// Connect to `url`'s host (through `tls` for https), send `req`, read at most `limit` bytes
/// of the answer: its status, ETag (if any) and body.
pub(crate) async fn request_with_headers(
    url: &ArchiveUrl,
    tls: Option<&tokio_rustls::TlsConnector>,
    req: hyper::Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, Option<String>, Vec<u8>)> {
    let addr = (url.host.as_str(), url.port);
    let tcp = tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("no connection within {} s", CONNECT.as_secs()))?
        .context("cannot connect")?;
    match tls {
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .context("the host is not a valid TLS name")?;
            let stream = tls.connect(name, tcp).await.context("TLS failed")?;
            exchange(stream, req, limit).await
        }
        None => exchange(tcp, req, limit).await,
    }
}

/// What an answer means for the record (module docs).
fn judge(status: StatusCode, text: &str) -> Result<Stow> {
    let quote =
        || crate::sync::message::without_paths(text.chars().take(300).collect::<String>().trim());
    match status.as_u16() {
        200 => Ok(Stow::Stored),
        408 | 429 => bail!("the archive asked to try later ({status})"),
        // Credentials, address or proxy: the unit's settings, not this record, are wrong.
        401 | 403 | 404 | 405 | 407 => bail!(
            "the archive answered {status}: check [sync] dicomweb and its credentials ({})",
            quote()
        ),
        201..=299 | 400..=499 => Ok(Stow::Refused(format!("{status}: {}", quote()))),
        _ => bail!("the archive answered {status}: {}", quote()),
    }
}

async fn exchange<S>(
    io: S,
    req: hyper::Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, Option<String>, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP failed")?;
    let driver = tokio::spawn(conn);
    let answer = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(hyper::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(String::from);
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| anyhow!("{e}"))?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, etag, body.to_vec()))
    };
    let r = tokio::time::timeout(ANSWER, answer)
        .await
        .map_err(|_| anyhow!("no answer within {} s", ANSWER.as_secs()))?;
    driver.abort();
    r.context("the answer was cut off")
}

/// The multipart/related body of `parts` and its boundary: a hash of the parts, so it cannot
/// occur in them by accident (and the same record gives the same request).
fn multipart(parts: &[Vec<u8>]) -> (String, Vec<u8>) {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let boundary = format!("cxr-edge-{:x}", h.finalize());
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 100).sum());
    for p in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_park_retry_or_store() {
        assert_eq!(judge(StatusCode::OK, "").unwrap(), Stow::Stored);
        assert!(
            matches!(judge(StatusCode::BAD_REQUEST, "bad /x/y").unwrap(), Stow::Refused(r) if r == "400 Bad Request: bad <path>")
        );
        assert!(matches!(
            judge(StatusCode::ACCEPTED, "").unwrap(),
            Stow::Refused(_)
        ));
        assert!(matches!(
            judge(StatusCode::CONFLICT, "").unwrap(),
            Stow::Refused(_)
        ));
        for retry in [
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert!(judge(retry, "").is_err(), "{retry}");
        }
    }

    #[test]
    fn the_body_holds_each_part_between_boundaries() {
        let (b, body) = multipart(&[b"one".to_vec(), b"two".to_vec()]);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches(&format!("--{b}\r\n")).count(), 2);
        assert!(text.ends_with(&format!("--{b}--\r\n")));
        assert!(text.contains("\r\n\r\none\r\n") && text.contains("\r\n\r\ntwo\r\n"));
    }
}
