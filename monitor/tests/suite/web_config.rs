//! End to end: `/metrics` over TLS with basic authentication, configured
//! in node_exporter's web config format, checked with a real curl; and the
//! web config's bad inputs.
//!
//! Needs root (namespaces, BPF); run with
//! `cargo xtask test -- web_config::`.

use crate::support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use support::{
    attach,
    daemon::{BINARY, Daemon, run_to_exit},
    lab::NetnsLab,
    openssl::Cert,
    require_root,
};

const METRICS: &str = "127.0.0.1:19948";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> Dir {
    let d = std::env::temp_dir().join(format!(
        "hmt-{}-{}-web",
        std::process::id(),
        support::unique()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    Dir(d)
}

/// curl inside `ns`: (HTTP status code, body). 000 when no HTTP answer.
fn curl(ns: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "--max-time", "5"])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.trim_end().to_string())
}

#[test]
fn metrics_over_tls_with_basic_auth() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let d = dir();
    let tls = Cert::new();
    let (cert, key) = (tls.cert(), tls.key());
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = d.0.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: '{hash}'\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("web config");
    let args: Vec<String> = [
        "run",
        "--iface",
        &link.peer_if,
        "--metrics-addr",
        METRICS,
        "--web-config",
        web.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::spawn(&link.peer_ns, &[], Path::new(BINARY), &args);
    let healthz = format!("https://{METRICS}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    // /healthz needs no credentials (probes carry none), only TLS.
    while curl(&link.peer_ns, &["-k", &healthz]) != ("200".into(), "ok".into()) {
        assert!(
            Instant::now() < deadline,
            "no TLS /healthz:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = format!("https://{METRICS}/metrics");
    let (code, body) = curl(&link.peer_ns, &["-k", "-u", "prometheus:s3cret", &metrics]);
    assert_eq!(code, "200");
    assert!(body.contains("handshake_build_info"), "{body}");
    // Twice: the second answer comes from the verified-credentials cache.
    let (code, _) = curl(&link.peer_ns, &["-k", "-u", "prometheus:s3cret", &metrics]);
    assert_eq!(code, "200");
    assert_eq!(curl(&link.peer_ns, &["-k", &metrics]).0, "401");
    assert_eq!(
        curl(&link.peer_ns, &["-k", "-u", "prometheus:wrong", &metrics]).0,
        "401"
    );
    assert_eq!(
        curl(&link.peer_ns, &["-k", "-u", "nobody:s3cret", &metrics]).0,
        "401"
    );
    // Plain HTTP gets no HTTP answer from a TLS endpoint.
    assert_eq!(
        curl(&link.peer_ns, &[&format!("http://{METRICS}/metrics")]).0,
        "000"
    );
    // The certificate is the one configured.
    let (code, _) = curl(
        &link.peer_ns,
        &[
            "--cacert",
            cert.to_str().expect("utf-8"),
            "--resolve",
            "example.test:19948:127.0.0.1",
            "-u",
            "prometheus:s3cret",
            "https://example.test:19948/metrics",
        ],
    );
    assert_eq!(code, "200");
    assert!(daemon.terminate().success());
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
}

#[test]
fn a_bad_web_config_is_named_and_attaches_nothing() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let d = dir();
    let tls = Cert::new();
    let cert = tls.cert();
    let cases = [
        (
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
            "tls_server_config.cert_file: /nonexistent.crt",
        ),
        (
            &*format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                cert.display(),
                cert.display()
            ),
            "tls_server_config.key_file",
        ),
        (
            "basic_auth_users:\n  prometheus: plaintext\n",
            "basic_auth_users.prometheus: not a bcrypt hash",
        ),
        (
            "tls_config:\n  cert_file: x\n",
            "unknown field `tls_config`",
        ),
    ];
    for (body, expected) in cases {
        let web = d.0.join("bad.yml");
        std::fs::write(&web, body).expect("web config");
        let args = [
            "run",
            "--iface",
            &link.peer_if,
            "--metrics-addr",
            METRICS,
            "--web-config",
            web.to_str().expect("utf-8"),
        ];
        let (status, stderr) = run_to_exit(&link.peer_ns, &[], Path::new(BINARY), &args);
        assert!(!status.success());
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
        attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
    }
}
