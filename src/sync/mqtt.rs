//! The MQTT destination (`rumqttc`): one connection per unit, QoS 1, one message in flight.
//!
//! Results go to `cxr-edge/v1/<site>/<device>/result`, one record per message, in the order
//! they were made; a record counts as delivered when the broker's PUBACK for it has arrived,
//! and only then is it noted in the database. Waiting for each PUBACK before the next PUBLISH
//! keeps the order through reconnects (a broker restarted mid-drain sees at most the one
//! unacknowledged record again) at the price of one round trip per record, which a unit making
//! a few hundred records a day never notices.
//!
//! The unit's state is a retained message on `.../status`, replaced at every connection and
//! after every drain; the broker publishes the last will, a retained `offline`, when the unit
//! vanishes without saying goodbye.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};

use crate::config::BrokerUrl;

/// How long the broker may take to answer a CONNECT or a PUBLISH.
const ANSWER: Duration = Duration::from_secs(20);

/// Largest message the unit sends (a record is a few KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// How to reach the broker: the address and, read from their files, the credentials.
#[derive(Clone)]
pub struct Broker {
    /// The address.
    pub url: BrokerUrl,
    /// PEM of the CA for mqtts (None: the system's CA bundle).
    pub ca: Option<Vec<u8>>,
    /// PEM certificate and key of this unit.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// User name and password.
    pub login: Option<(String, String)>,
}

/// The topics of one unit.
#[derive(Clone, Debug)]
pub struct Topics {
    /// `cxr-edge/v1/<site>/<device>/result`
    pub result: String,
    /// `cxr-edge/v1/<site>/<device>/status` (retained; the last will goes here)
    pub status: String,
    /// `cxr-edge/v1/<site>/<device>/seen` (retained): when the unit last spoke. Apart from
    /// the status because the broker replaces the status with the will, which was written at
    /// connection time and cannot say when the unit fell silent.
    pub seen: String,
}

impl Topics {
    /// The topics of `site`/`device` (both already checked as topic levels).
    pub fn new(site: &str, device: &str) -> Topics {
        let base = format!("cxr-edge/v1/{site}/{device}");
        Topics {
            result: format!("{base}/result"),
            status: format!("{base}/status"),
            seen: format!("{base}/seen"),
        }
    }
}

/// A connected unit.
pub struct Mqtt {
    client: AsyncClient,
    events: EventLoop,
    /// This unit's topics.
    pub topics: Topics,
}

/// The system's CA bundle (Debian, Ubuntu, Raspberry Pi OS, Jetson's Ubuntu).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl Mqtt {
    /// Connect as `client_id` and wait for the broker's CONNACK. `offline` is the retained last
    /// will on the status topic.
    pub async fn connect(
        broker: &Broker,
        client_id: &str,
        topics: Topics,
        offline: Option<Vec<u8>>,
    ) -> Result<Mqtt> {
        Mqtt::connect_taking(broker, client_id, topics, offline, MAX_MESSAGE).await
    }

    /// [`Mqtt::connect`], taking messages of up to `max_incoming` bytes (a model bundle is
    /// megabytes; everything else a few KiB).
    pub async fn connect_taking(
        broker: &Broker,
        client_id: &str,
        topics: Topics,
        offline: Option<Vec<u8>>,
        max_incoming: usize,
    ) -> Result<Mqtt> {
        let url = &broker.url;
        let mut o = MqttOptions::new(client_id, url.host.clone(), url.port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(max_incoming, MAX_MESSAGE)
            .set_inflight(1);
        if let Some(will) = offline {
            o.set_last_will(LastWill::new(&topics.status, will, QoS::AtLeastOnce, true));
        }
        if let Some((user, password)) = &broker.login {
            o.set_credentials(user.clone(), password.clone());
        }
        if url.tls {
            let ca = match &broker.ca {
                Some(pem) => pem.clone(),
                None => std::fs::read(SYSTEM_CAS)
                    .with_context(|| format!("no [sync] ca given and cannot read {SYSTEM_CAS}"))?,
            };
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: broker.client_auth.clone(),
            }));
        }
        let (client, mut events) = AsyncClient::new(o, 16);
        let where_ = format!("{}:{}", url.host, url.port);
        let ack = tokio::time::timeout(ANSWER, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => return Ok(a),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow!(e)),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no answer within {} s", ANSWER.as_secs()))
        .and_then(|r| r)
        .with_context(|| format!("cannot connect to the MQTT broker {where_}"))?;
        if ack.code != ConnectReturnCode::Success {
            bail!(
                "the MQTT broker {where_} refused the connection: {:?}",
                ack.code
            );
        }
        Ok(Mqtt {
            client,
            events,
            topics,
        })
    }

    /// Publish at QoS 1 and wait for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<()> {
        if payload.len() > MAX_MESSAGE {
            bail!(
                "message of {} bytes is over the {MAX_MESSAGE}-byte limit",
                payload.len()
            );
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .context("the MQTT client stopped")?;
        let mut ours = None;
        let wait = async {
            loop {
                match self.events.poll().await? {
                    // One message in flight, so the next PUBLISH going out is this one.
                    Event::Outgoing(Outgoing::Publish(pkid)) if ours.is_none() => ours = Some(pkid),
                    Event::Incoming(Packet::PubAck(a)) if Some(a.pkid) == ours => return Ok(()),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(ANSWER, wait)
            .await
            .map_err(|_| anyhow!("no PUBACK within {} s", ANSWER.as_secs()))?
            .map_err(|e: rumqttc::ConnectionError| anyhow!("MQTT connection lost: {e}"))
    }

    /// Subscribe to `filter` and collect the retained messages the broker hands out: until
    /// `quiet` passes without one after the subscription is acknowledged (10 s at most).
    pub async fn retained(
        &mut self,
        filter: &str,
        quiet: Duration,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .context("the MQTT client stopped")?;
        let mut got = Vec::new();
        let mut acked = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let wait = if acked { quiet } else { ANSWER };
            let until = (tokio::time::Instant::now() + wait).min(deadline);
            match tokio::time::timeout_at(until, self.events.poll()).await {
                Err(_) if acked => return Ok(got),
                Err(_) => bail!("no SUBACK within {} s", ANSWER.as_secs()),
                Ok(Err(e)) => bail!("MQTT connection lost: {e}"),
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => acked = true,
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain => {
                    got.push((p.topic.clone(), p.payload.to_vec()))
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Keep the connection alive (pings) for `d`; an error means it was lost.
    pub async fn idle(&mut self, d: Duration) -> Result<()> {
        let events = &mut self.events;
        let forever = async {
            loop {
                if let Err(e) = events.poll().await {
                    return e;
                }
            }
        };
        match tokio::time::timeout(d, forever).await {
            Err(_elapsed) => Ok(()),
            Ok(e) => Err(anyhow!("MQTT connection lost: {e}")),
        }
    }

    /// Say goodbye: the broker then does not publish the last will (the caller has published
    /// its own final status).
    pub async fn disconnect(mut self) {
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while self.events.poll().await.is_ok() {}
            })
            .await;
        }
    }
}
