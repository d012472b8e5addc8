//! Pushing alerts to Alertmanager's v2 API: each firing alert is posted
//! when it fires and re-sent while it fires (with an `endsAt` a few resend
//! intervals ahead, so Alertmanager resolves it by itself if the daemon
//! dies), and posted once more with its real `endsAt` when it resolves.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use prometheus::IntCounterVec;
use thiserror::Error;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::watch,
};

use super::board::{AlertBoard, AlertKey, AlertState};
use crate::{events::JsonObject, tls_capture::wallclock::rfc3339};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error(
        "--alertmanager-url {0:?}: only http://HOST:PORT[/PREFIX] is supported (for https, \
         point it at a local proxy)"
    )]
    Url(String),
}

/// Where Alertmanager listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alertmanager {
    host: String,
    port: u16,
    prefix: String,
}

impl Alertmanager {
    pub fn parse(url: &str) -> Result<Self, NotifyError> {
        let bad = || NotifyError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let prefix = prefix.trim_end_matches('/');
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
        })
    }

    async fn post(&self, body: &str) -> std::io::Result<u16> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let mut stream = tokio::time::timeout(TIMEOUT, connect).await??;
        let request = format!(
            "POST {}/api/v2/alerts HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.prefix,
            self.host,
            self.port,
            body.len()
        );
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            let mut head = [0u8; 64];
            let n = stream.read(&mut head).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..n]).into_owned())
        };
        let head = tokio::time::timeout(TIMEOUT, exchange).await??;
        // "HTTP/1.1 200 OK"
        head.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))
    }
}

/// Posts alerts from `board` until `stop`.
pub async fn run(
    target: Alertmanager,
    board: AlertBoard,
    resend: Duration,
    counter: IntCounterVec,
    mut stop: watch::Receiver<bool>,
) {
    let instance = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    // What Alertmanager last accepted of each alert: (firing, when).
    let mut sent: HashMap<AlertKey, (bool, SystemTime, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let due: Vec<AlertState> = board
            .fired()
            .into_iter()
            .filter(|a| match sent.get(&a.key) {
                None => true,
                Some((firing, starts, at)) => {
                    *firing != a.firing
                        || *starts != a.starts_at
                        || (a.firing && at.elapsed() >= resend)
                }
            })
            .collect();
        if due.is_empty() {
            continue;
        }
        let body = payload(&due, &instance, resend);
        match target.post(&body).await {
            Ok(status) if (200..300).contains(&status) => {
                counter.with_label_values(&["sent"]).inc();
                for a in due {
                    sent.insert(a.key.clone(), (a.firing, a.starts_at, Instant::now()));
                }
            }
            Ok(status) => {
                counter.with_label_values(&["failed"]).inc();
                tracing::warn!(
                    status,
                    "Alertmanager refused the alerts; retrying in a second"
                );
            }
            Err(err) => {
                counter.with_label_values(&["failed"]).inc();
                tracing::warn!(
                    "posting alerts to Alertmanager failed: {err}; retrying in a second"
                );
            }
        }
    }
}

/// The JSON array of the v2 `postableAlerts` schema.
pub fn payload(alerts: &[AlertState], instance: &str, resend: Duration) -> String {
    let items: Vec<String> = alerts
        .iter()
        .map(|a| {
            let (alertname, interface, port) = &a.key;
            let labels = JsonObject::new()
                .str("alertname", alertname)
                .str("interface", interface)
                .str("port", port)
                .str("instance", instance)
                .str("job", "handshake-monitor")
                .finish();
            let summary = match *alertname {
                super::PORT_SCAN => format!("port scan against {interface}"),
                super::SYNCOOKIE_FALLBACK => format!(
                    "SYN cookies from XDP off on {interface}: its SYNs go to the kernel's \
                     stack (see handshake_syncookie_fallbacks_total and the daemon's log)"
                ),
                _ => format!("SYN flood on {interface}, port {port}"),
            };
            let mut annotations = JsonObject::new().str("summary", &summary);
            // The fallback has no flood reading.
            if *alertname != super::SYNCOOKIE_FALLBACK {
                annotations = annotations
                    .str("syn_rate", &format!("{:.0}", a.reading.syn_rate))
                    .str("completion_ratio", &format!("{:.3}", a.reading.completion_ratio))
                    .str("baseline_syn_rate", &format!("{:.0}", a.reading.baseline));
            }
            let annotations = annotations.finish();
            // While firing, an end a few resends ahead: Alertmanager resolves
            // the alert itself if the re-sends stop.
            let ends = a.ends_at.unwrap_or_else(|| SystemTime::now() + resend * 4);
            format!(
                "{{\"labels\":{labels},\"annotations\":{annotations},\"startsAt\":\"{}\",\"endsAt\":\"{}\"}}",
                rfc3339(a.starts_at),
                rfc3339(ends)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let am = Alertmanager::parse("http://127.0.0.1:9093").unwrap();
        assert_eq!(
            (am.host.as_str(), am.port, am.prefix.as_str()),
            ("127.0.0.1", 9093, "")
        );
        let am = Alertmanager::parse("http://am.example:80/alertmanager/").unwrap();
        assert_eq!(am.prefix, "/alertmanager");
        let am = Alertmanager::parse("http://[::1]:9093").unwrap();
        assert_eq!(am.host, "::1");
        assert!(Alertmanager::parse("https://am:9093").is_err());
        assert!(Alertmanager::parse("http://:9093").is_err());
        assert!(Alertmanager::parse("http://am:port").is_err());
    }
}
