//! End to end: TLS hellos of real peers (openssl s_client/s_server, curl)
//! captured by the kernel programs, reassembled, parsed and reported as
//! metrics and events-log lines, compared with what the client was told to
//! send. The daemon watches the server's veth.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- tls::`.

use crate::support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::{cmd, handshakes::Monitor, lab::NetnsLab, prom, require_root, unique, wait_until};

const TLS_PORT: u16 = 4433;

/// A throwaway self-signed certificate in a temporary directory.
struct Cert {
    dir: PathBuf,
}

impl Cert {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("hm-tls-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&dir).expect("temp dir");
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        cmd::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=example.test",
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&cert),
            ],
        );
        Self { dir }
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `openssl s_server` in `ns`, serving `connections` handshakes, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &str, cert: &Cert, connections: usize, extra: &[&str]) -> Self {
        let mut args = vec![
            "netns", "exec", ns, "openssl", "s_server", "-quiet", "-accept",
        ];
        let port = TLS_PORT.to_string();
        let naccept = connections.to_string();
        let (key, crt) = (cert.key(), cert.cert());
        args.extend([port.as_str(), "-naccept", naccept.as_str()]);
        args.extend(["-key", path_str(&key), "-cert", path_str(&crt)]);
        args.extend_from_slice(extra);
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let mut server = Self(child);
        // Looked up in the kernel's tables: a probe connection would use
        // up one of the `-naccept` handshakes (and show in the metrics).
        let mut exited = None;
        let listening = wait_until(Duration::from_secs(10), || {
            exited = server.0.try_wait().expect("polling openssl s_server");
            exited.is_some() || support::netns::tcp_listening(ns, TLS_PORT)
        });
        assert!(
            listening && exited.is_none(),
            "openssl s_server never listened on port {TLS_PORT} in {ns} (exit: {exited:?})"
        );
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `openssl s_client` handshake from `ns`, closing right after.
fn s_client(ns: &str, addr: &str, extra: &[&str]) {
    let connect = format!("{addr}:{TLS_PORT}");
    let mut args = vec![
        "netns", "exec", ns, "timeout", "10", "openssl", "s_client", "-connect", &connect,
    ];
    args.extend_from_slice(extra);
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Cipher"),
        "s_client did not complete a handshake: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s_client_output(ns: &str, addr: &str, extra: &[&str]) -> std::process::Output {
    let connect = format!("{addr}:{TLS_PORT}");
    let mut args = vec![
        "netns", "exec", ns, "timeout", "10", "openssl", "s_client", "-connect", &connect,
    ];
    args.extend_from_slice(extra);
    Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client")
}

/// The events log's lines of one type, waiting until `count` are there.
fn events(path: &Path, kind: &str, count: usize) -> Vec<String> {
    let needle = format!("\"type\":\"{kind}\"");
    let read = || -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    };
    wait_until(Duration::from_secs(10), || read().len() >= count);
    let lines = read();
    assert_eq!(lines.len(), count, "{kind} events in {}", path.display());
    lines
}

struct TlsLab {
    lab: NetnsLab,
    cert: Cert,
    monitor: Monitor,
    events: PathBuf,
}

impl TlsLab {
    fn new(metrics_port: u16) -> Self {
        require_root();
        let lab = NetnsLab::pair();
        let cert = Cert::new();
        let events = cert.dir.join("events.jsonl");
        let link = lab.link();
        let args = ["--events", path_str(&events)];
        let monitor = Monitor::start(&link.peer_ns, &link.peer_if, metrics_port, &args);
        Self {
            lab,
            cert,
            monitor,
            events,
        }
    }

    fn server_ip(&self) -> String {
        self.lab.link().peer_addr.to_string()
    }

    fn iface(&self) -> &str {
        &self.lab.link().peer_if
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut all = vec![("interface", self.iface())];
        all.extend_from_slice(labels);
        prom::value(&self.monitor.scrape().text, name, &all).unwrap_or(0.0)
    }
}

#[test]
fn tls13_with_sni_and_alpn() {
    let t = TlsLab::new(19961);
    let _server = Server::start(&t.lab.link().peer_ns, &t.cert, 1, &["-alpn", "h2"]);
    let extra = [
        "-tls1_3",
        "-servername",
        "example.test",
        "-alpn",
        "h2,http/1.1",
    ];
    s_client(&t.lab.hub, &t.server_ip(), &extra);

    let ch = events(&t.events, "tls_client_hello", 1).remove(0);
    assert!(ch.contains("\"sni\":\"example.test\""), "{ch}");
    assert!(ch.contains("\"alpn\":[\"h2\",\"http/1.1\"]"), "{ch}");
    assert!(ch.contains("\"tls_version\":\"tls1.3\""), "{ch}");
    assert!(ch.contains("\"direction\":\"ingress\""), "{ch}");
    assert!(ch.contains(&format!("\"dst_port\":{TLS_PORT}")), "{ch}");
    assert!(ch.contains("\"ja4\":\"t13d"), "{ch}");
    let sh = events(&t.events, "tls_server_hello", 1).remove(0);
    assert!(sh.contains("\"tls_version\":\"tls1.3\""), "{sh}");
    assert!(sh.contains("\"cipher\":\"TLS_AES_256_GCM_SHA384\""), "{sh}");

    let hellos = [
        ("direction", "ingress"),
        ("version", "tls1.3"),
        ("pq_key_share", "false"),
    ];
    assert_eq!(t.metric("handshake_tls_client_hellos_total", &hellos), 1.0);
    let server = [
        ("direction", "egress"),
        ("version", "tls1.3"),
        ("cipher", "TLS_AES_256_GCM_SHA384"),
    ];
    assert_eq!(t.metric("handshake_tls_server_hellos_total", &server), 1.0);
    let timing = [("role", "server")];
    assert_eq!(
        t.metric("handshake_tls_hello_duration_seconds_count", &timing),
        1.0
    );
}

#[test]
fn tls12_without_sni() {
    let t = TlsLab::new(19962);
    let _server = Server::start(&t.lab.link().peer_ns, &t.cert, 1, &[]);
    s_client(&t.lab.hub, &t.server_ip(), &["-tls1_2", "-noservername"]);

    let ch = events(&t.events, "tls_client_hello", 1).remove(0);
    assert!(ch.contains("\"sni\":null"), "{ch}");
    assert!(ch.contains("\"alpn\":[]"), "{ch}");
    assert!(ch.contains("\"tls_version\":\"tls1.2\""), "{ch}");
    assert!(ch.contains("\"ja4\":\"t12i"), "{ch}");
    let sh = events(&t.events, "tls_server_hello", 1).remove(0);
    assert!(sh.contains("\"tls_version\":\"tls1.2\""), "{sh}");
    assert!(
        sh.contains("\"cipher\":\"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\""),
        "{sh}"
    );
    assert!(sh.contains("\"ja3s\":"), "{sh}");
    let hellos = [
        ("direction", "ingress"),
        ("version", "tls1.2"),
        ("pq_key_share", "false"),
    ];
    assert_eq!(t.metric("handshake_tls_client_hellos_total", &hellos), 1.0);
}

#[test]
fn client_hello_over_several_segments_on_a_small_mtu() {
    let t = TlsLab::new(19963);
    let link = t.lab.link();
    // MSS 260: a ClientHello with a long SNI needs three segments or more.
    cmd::ip(&[
        "-n",
        &t.lab.hub,
        "link",
        "set",
        "dev",
        &link.hub_if,
        "mtu",
        "300",
    ]);
    cmd::ip(&[
        "-n",
        &link.peer_ns,
        "link",
        "set",
        "dev",
        &link.peer_if,
        "mtu",
        "300",
    ]);
    let _server = Server::start(&link.peer_ns, &t.cert, 1, &[]);
    let sni = format!("{}.example.test", "a".repeat(60));
    s_client(
        &t.lab.hub,
        &t.server_ip(),
        &["-tls1_3", "-servername", &sni],
    );

    let ch = events(&t.events, "tls_client_hello", 1).remove(0);
    assert!(ch.contains(&format!("\"sni\":\"{sni}\"")), "{ch}");
    let segments: u32 = ch
        .split("\"segments\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("segments field");
    assert!(segments >= 2, "{ch}");
    let sum = t.metric(
        "handshake_tls_client_hello_segments_sum",
        &[("direction", "ingress")],
    );
    assert_eq!(sum, f64::from(segments));
}

#[test]
fn curl_over_https() {
    let t = TlsLab::new(19964);
    let _server = Server::start(&t.lab.link().peer_ns, &t.cert, 1, &["-www"]);
    let url = format!("https://example.test:{TLS_PORT}/");
    let resolve = format!("example.test:{TLS_PORT}:{}", t.server_ip());
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.lab.hub,
            "curl",
            "-sk",
            "--max-time",
            "10",
            "--http1.1",
        ])
        .args(["--resolve", &resolve, &url])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ch = events(&t.events, "tls_client_hello", 1).remove(0);
    assert!(ch.contains("\"sni\":\"example.test\""), "{ch}");
    assert!(ch.contains("\"alpn\":[\"http/1.1\"]"), "{ch}");
    events(&t.events, "tls_server_hello", 1);
}

#[test]
fn a_refused_version_shows_as_a_plaintext_alert() {
    let t = TlsLab::new(19965);
    let _server = Server::start(&t.lab.link().peer_ns, &t.cert, 1, &["-tls1_2"]);
    // The handshake fails by design: the server refuses TLS 1.3 with a
    // fatal protocol_version alert, sent before any encryption.
    let _ = s_client_output(&t.lab.hub, &t.server_ip(), &["-tls1_3"]);
    let alert = [
        ("direction", "egress"),
        ("level", "fatal"),
        ("description", "protocol_version"),
    ];
    wait_until(Duration::from_secs(10), || {
        t.metric("handshake_tls_alerts_total", &alert) >= 1.0
    });
    assert_eq!(t.metric("handshake_tls_alerts_total", &alert), 1.0);
    events(&t.events, "tls_client_hello", 1);
    events(&t.events, "tls_server_hello", 0);
}

/// The value of a field of an events-log line, as its JSON text.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":");
    let rest = &line[line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + key.len()..];
    let end = if rest.starts_with('[') {
        rest.find(']').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    };
    &rest[..end.expect("end of the field")]
}

fn assert_field(line: &str, name: &str, want: &str) {
    assert_eq!(field(line, name), want, "{name} in {line}");
}

#[test]
fn a_hello_retry_request_shows_both_client_hellos() {
    let t = TlsLab::new(19969);
    // The server takes X25519 only; the client's first key share is P-256,
    // so the server answers with a HelloRetryRequest. As tcpdump shows for
    // openssl 3.0, the client (middlebox-compatibility mode) then sends a
    // ChangeCipherSpec record and its second ClientHello in one segment
    // (`14 03 03 00 01 01 16 03 03 ..`): that hello starts 6 bytes into its
    // segment.
    let ns = t.lab.link().peer_ns.clone();
    let _server = Server::start(&ns, &t.cert, 1, &["-tls1_3", "-groups", "X25519"]);
    s_client(
        &t.lab.hub,
        &t.server_ip(),
        &[
            "-tls1_3",
            "-groups",
            "P-256:X25519",
            "-servername",
            "example.test",
        ],
    );

    let client = events(&t.events, "tls_client_hello", 2);
    let server = events(&t.events, "tls_server_hello", 2);
    // One flow: the same client port throughout.
    let port = field(&client[0], "src_port");
    assert_field(&client[1], "src_port", port);
    assert_field(&server[0], "dst_port", port);
    assert_field(&server[1], "dst_port", port);
    // secp256r1 (23) first; then the X25519 (29) share the server asked for.
    assert_field(&client[0], "key_share_groups", "[23]");
    assert_field(&client[1], "key_share_groups", "[29]");
    for ch in &client {
        assert_field(ch, "sni", "\"example.test\"");
        assert_field(ch, "segments", "1");
        let ja3 = field(ch, "ja3").trim_matches('"');
        assert!(
            ja3.len() == 32 && ja3.bytes().all(|b| b.is_ascii_hexdigit()),
            "{ch}"
        );
        assert!(field(ch, "ja4").starts_with("\"t13d"), "{ch}");
    }
    assert_field(&server[0], "hello_retry_request", "true");
    assert_field(&server[1], "hello_retry_request", "false");
    for sh in &server {
        assert_field(sh, "key_share_group", "\"x25519\"");
    }

    let hellos = [
        ("direction", "ingress"),
        ("version", "tls1.3"),
        ("pq_key_share", "false"),
    ];
    assert_eq!(t.metric("handshake_tls_client_hellos_total", &hellos), 2.0);
}
