//! deploy/prometheus: the rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`), and a real Prometheus server (Debian's
//! `prometheus`, installed by `cargo xtask setup`) running in a lab
//! namespace with those rules scrapes the real daemon there and records
//! exactly the handshakes the test made.
//!
//! The server test needs root (namespaces, BPF); run with
//! `cargo xtask test -- deploy_prometheus::`.

use crate::support;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::{
    deploy::{TempDir, deploy_file, run_tool},
    handshakes::{Monitor, SERVER, Series},
    http,
    lab::NetnsLab,
    require_root, traffic, wait_until,
};

const RULES: &str = "prometheus/handshake-monitor.rules.yml";
const TESTS: &str = "prometheus/tests.yml";
const METRICS_PORT: u16 = 19967;
const PROM_PORT: u16 = 19090;
const SERVICE_PORT: u16 = 8080;
const CONNECTIONS: usize = 7;
/// Prometheus starts in about a second here; scrapes and rule evaluations
/// run every second.
const PROM_TIMEOUT: Duration = Duration::from_secs(30);

fn promtool(args: &[&str]) {
    let (ok, text) = run_tool("promtool", args);
    assert!(
        ok,
        "`promtool {}` failed (cargo xtask setup installs Debian's prometheus):\n{text}",
        args.join(" ")
    );
}

#[test]
fn promtool_checks_the_rules() {
    promtool(&["check", "rules", deploy_file(RULES).to_str().unwrap()]);
}

#[test]
fn promtool_unit_tests_pass() {
    promtool(&["test", "rules", deploy_file(TESTS).to_str().unwrap()]);
}

/// Every alert the brief names is in the rules file.
#[test]
fn the_rules_cover_the_detector_and_the_daemons_health() {
    let rules = std::fs::read_to_string(deploy_file(RULES)).expect("rules file");
    for needle in [
        "alert: HandshakeMonitorSynFlood",
        "handshake_alert_firing{alertname=\"SynFlood\"}",
        "alert: HandshakeMonitorPortScan",
        "handshake_alert_firing{alertname=\"PortScan\"}",
        "alert: HandshakeMonitorMitigationDropping",
        "alert: HandshakeMonitorCaptureLoss",
        "alert: HandshakeMonitorFlowTableNearFull",
        "alert: HandshakeMonitorDown",
        "up{job=\"handshake-monitor\"} == 0",
    ] {
        assert!(rules.contains(needle), "{RULES} lacks {needle}");
    }
}

/// A Prometheus server in a namespace, its data in a scratch directory;
/// killed, and the directory removed, on drop.
struct Prometheus {
    child: Child,
    ns: String,
    _dir: TempDir,
}

impl Prometheus {
    fn start(ns: &str, target: u16) -> Self {
        let dir = TempDir::new("prom");
        let rules = deploy_file(RULES);
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: handshake-monitor\n    static_configs:\n      \
             - targets: ['127.0.0.1:{target}']\n",
            rules.display()
        );
        let config = dir.write("prometheus.yml", &config);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROM_PORT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (cargo xtask setup installs Debian's prometheus)");
        let prom = Self {
            child,
            ns: ns.to_string(),
            _dir: dir,
        };
        let up = wait_until(PROM_TIMEOUT, || prom.get("/-/ready").is_ok());
        assert!(up, "Prometheus did not come up:\n{}", prom.log());
        prom
    }

    fn get(&self, path: &str) -> std::io::Result<String> {
        http::get(
            &self.ns,
            SocketAddr::from(([127, 0, 0, 1], PROM_PORT)),
            path,
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The samples of an instant query: `(labels, value)`.
    fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let body = self
            .get(&format!("/api/v1/query?query={}", url_encode(promql)))
            .unwrap_or_else(|err| panic!("querying {promql}: {err}\n{}", self.log()));
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON from the API");
        assert_eq!(json["status"], "success", "{promql}: {body}");
        json["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|s| {
                let value = s["value"][1].as_str().expect("a sample value");
                (s["metric"].clone(), value.parse().expect("a number"))
            })
            .collect()
    }

    /// Waits until `promql` has exactly one sample, of value `want`.
    fn wait_for_value(&self, promql: &str, want: f64) {
        let mut last = Vec::new();
        let held = wait_until(PROM_TIMEOUT, || {
            last = self.query(promql);
            matches!(&last[..], [(_, got)] if *got == want)
        });
        assert!(
            held,
            "Prometheus: `{promql}` should be exactly {want} within {PROM_TIMEOUT:?}; last \
             result {last:?}\nlog:\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_records_the_rules() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, METRICS_PORT, &[]);
    let prom = Prometheus::start(&link.peer_ns, METRICS_PORT);
    let iface = &link.peer_if;

    // The target is up before the traffic, so the counters' rise from 0 is
    // in Prometheus's data and rate() sees it.
    prom.wait_for_value("up{job=\"handshake-monitor\"}", 1.0);
    let completed = format!(
        "handshake_tcp_handshakes_total{{job=\"handshake-monitor\",interface=\"{iface}\",\
         role=\"server\",result=\"completed\"}}"
    );
    prom.wait_for_value(&completed, 0.0);

    let addr = SocketAddr::from((link.peer_addr, SERVICE_PORT));
    let server = traffic::Server::start(&link.peer_ns, addr, CONNECTIONS);
    traffic::exchange_many(&lab.hub, addr, CONNECTIONS);
    server.join();
    monitor.settled_at(Series::Handshakes(SERVER, "completed"), CONNECTIONS as f64);

    prom.wait_for_value(&completed, CONNECTIONS as f64);
    for result in ["reset", "timed_out"] {
        prom.wait_for_value(
            &format!(
                "handshake_tcp_handshakes_total{{interface=\"{iface}\",role=\"server\",\
                 result=\"{result}\"}}"
            ),
            0.0,
        );
    }
    // The recording rule: every server handshake that ended completed.
    prom.wait_for_value(
        &format!(
            "handshake:tcp_handshake_completion:ratio_rate5m{{job=\"handshake-monitor\",\
             interface=\"{iface}\",role=\"server\"}}"
        ),
        1.0,
    );
    // The SYN rate rule has a positive sample for the interface's ingress.
    let syn_rate = prom.query(&format!(
        "handshake:tcp_syns:rate5m{{interface=\"{iface}\",direction=\"ingress\"}} > 0"
    ));
    assert_eq!(syn_rate.len(), 1, "handshake:tcp_syns:rate5m: {syn_rate:?}");
    // No alert fires on this quiet lab.
    let firing = prom.query("ALERTS{alertstate=\"firing\"}");
    assert!(firing.is_empty(), "alerts firing: {firing:?}");
}
