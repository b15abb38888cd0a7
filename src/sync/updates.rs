//! Model bundles from the study's servers: an `https://` address and the site's retained MQTT
//! topic (`cxr-edge/v1/<site>/model`). This module only fetches bytes; whether they are a
//! bundle worth installing is decided by `model::bundle` (signature, hashes, the check on the
//! sample films), so neither the server nor the broker is trusted with anything but delivery.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::Full;
use hyper::body::Bytes;

use super::mqtt::{Mqtt, Topics};
use super::{broker, read_file, runtime, Broker};
use crate::config::{ArchiveUrl, Config};
use crate::model::bundle::MAX_FILE_BYTES;

/// The site's model topic.
pub fn model_topic(site: &str) -> String {
    format!("cxr-edge/v1/{site}/model")
}

/// Where this unit looks for bundles on the network.
pub struct Sources {
    url: Option<(ArchiveUrl, tokio_rustls::TlsConnector)>,
    /// The ETag of the last download, sent back as If-None-Match.
    etag: Option<String>,
    mqtt: Option<(Broker, String, String)>,
}

impl Sources {
    /// The `[updates]` url and mqtt settings made ready (CA and credentials read now, so a
    /// missing file is reported at start). `None` when neither is set.
    pub fn from_config(cfg: &Config) -> Result<Option<Sources>> {
        let u = &cfg.updates;
        let url = if u.url.is_empty() {
            None
        } else {
            let parsed = ArchiveUrl::parse(&u.url)?;
            let ca = read_file(&u.ca, "updates CA file")?;
            Some((
                parsed,
                super::dicomweb::tls_connector(ca, "the update server's")?,
            ))
        };
        let mqtt = if u.mqtt {
            let s = &cfg.sync;
            let device = if s.device.is_empty() {
                super::host_name()?
            } else {
                s.device.clone()
            };
            let id = format!("cxr-edge-{}-{device}-model", s.site);
            Some((broker(s, &s.mqtt)?, model_topic(&s.site), id))
        } else {
            None
        };
        if url.is_none() && mqtt.is_none() {
            return Ok(None);
        }
        Ok(Some(Sources {
            url,
            etag: None,
            mqtt,
        }))
    }

    /// Look at each source once: the bytes each offers now, with where they came from, and
    /// whether a source could not be reached (it is logged and skipped; the caller tries again
    /// sooner than the interval).
    pub fn fetch(&mut self) -> (Vec<(String, Vec<u8>)>, bool) {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!("model updates: {e:#}");
                return (Vec::new(), true);
            }
        };
        let mut failed = false;
        let mut out = Vec::new();
        if let Some((url, tls)) = &self.url {
            let where_ = format!("https://{}:{}{}", url.host, url.port, url.path);
            match rt.block_on(get(url, tls, self.etag.as_deref())) {
                Ok(Got::Bundle(bytes, etag)) => {
                    self.etag = etag;
                    out.push((where_, bytes));
                }
                Ok(Got::Nothing) => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!("model updates: {where_}: {e:#}")
                }
            }
        }
        if let Some((broker, topic, id)) = &self.mqtt {
            match rt.block_on(retained_bundle(broker, topic, id)) {
                Ok(Some(bytes)) => out.push((format!("mqtt topic {topic}"), bytes)),
                Ok(None) => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!("model updates: mqtt topic {topic}: {e:#}")
                }
            }
        }
        (out, failed)
    }
}

enum Got {
    Bundle(Vec<u8>, Option<String>),
    Nothing,
}

/// GET the bundle; 304 (unchanged since the ETag) and 404 (none published) are nothing.
async fn get(
    url: &ArchiveUrl,
    tls: &tokio_rustls::TlsConnector,
    etag: Option<&str>,
) -> Result<Got> {
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let path = if url.path.is_empty() { "/" } else { &url.path };
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("cxr-edge/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(e) = etag {
        req = req.header(hyper::header::IF_NONE_MATCH, e);
    }
    let req = req.body(Full::new(Bytes::new()))?;
    let (status, head, body) =
        super::dicomweb::request_with_headers(url, Some(tls), req, MAX_FILE_BYTES).await?;
    match status.as_u16() {
        200 => Ok(Got::Bundle(body, head)),
        304 | 404 => Ok(Got::Nothing),
        _ => bail!("the server answered {status}"),
    }
}

/// The retained message on the model topic, if any.
async fn retained_bundle(broker: &Broker, topic: &str, id: &str) -> Result<Option<Vec<u8>>> {
    let topics = Topics::new("updates", "reader");
    let mut m = Mqtt::connect_taking(broker, id, topics, None, MAX_FILE_BYTES).await?;
    let got = m
        .retained(topic, Duration::from_secs(2))
        .await
        .context("reading the model topic")?;
    m.disconnect().await;
    Ok(got.into_iter().map(|(_, p)| p).rfind(|p| !p.is_empty()))
}
