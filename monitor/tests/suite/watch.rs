//! End to end: `handshake-monitor watch` against the real daemon, two
//! watchers at once, one with `--json` on a pipe and one readable on a
//! pseudo-terminal (`script`), each asserted on exactly what it receives.
//!
//! Needs root (namespaces, BPF), except the first test; run with
//! `cargo xtask test -- watch::`.

use crate::support;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    os::unix::net::UnixStream,
    process::Command,
    thread::{self, JoinHandle},
    time::Duration,
};

use support::{
    daemon::{BINARY, Daemon},
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    require_root, wait_until,
    watcher::{Watcher, watch_once},
};

/// Records follow the traffic by the daemon's bookkeeping only.
const RECORD_TIMEOUT: Duration = Duration::from_secs(15);

const NO_DAEMON: &str = "handshake-monitor: error: no handshake-monitor daemon is running \
                         (nothing answers on ";
const BAD_STATE: &str = "--state \"S2\": unknown connection state \
                         (use S0, S1, SF, REJ, RSTO, RSTR or RSTOS0)";

/// Watchers the daemon counts (`status --json`).
fn watchers(daemon: &Daemon) -> u64 {
    daemon.status_json()["watchers"].as_u64().expect("watchers")
}

fn wait_for_watchers(daemon: &Daemon, count: u64) {
    assert!(
        wait_until(Duration::from_secs(10), || watchers(daemon) == count),
        "the daemon counts {} watchers, not {count}",
        watchers(daemon)
    );
}

/// One raw request line on the control socket: every line of the answer.
fn raw_request(socket: &str, request: &str) -> Vec<String> {
    let mut stream = UnixStream::connect(socket).expect("connecting to the control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(stream, "{request}").unwrap();
    BufReader::new(stream)
        .lines()
        .collect::<Result<_, _>>()
        .expect("reading the answer to its end")
}

#[test]
fn bad_filters_fail_before_the_daemon_is_asked_and_no_daemon_is_said() {
    let socket =
        std::env::temp_dir().join(format!("hmt-{}-nowatch/control.sock", std::process::id()));
    let socket = socket.to_str().expect("utf-8");
    for (args, message) in [
        (vec!["--state", "S1,S2"], BAD_STATE.to_string()),
        (
            vec!["--sni", "www*.example.test"],
            "--sni \"www*.example.test\": expected a host name (www.example.com) or a leading \
             wildcard (*.example.com)"
                .to_string(),
        ),
        (
            vec!["--client", "198.18.0.1/24"],
            "--client: 198.18.0.1/24 has host bits set; the prefix is 198.18.0.0/24".to_string(),
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--control-socket", socket]);
        let (status, stdout, stderr) = watch_once(&args);
        assert_eq!(status.code(), Some(1), "{args:?}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, format!("handshake-monitor: error: {message}\n"));
    }
    // Port 0 is no server port: refused by the argument parser.
    let (status, _, stderr) = watch_once(&["--port", "0", "--control-socket", socket]);
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("invalid value '0' for '--port <N>'"),
        "{stderr}"
    );

    let (status, stdout, stderr) = watch_once(&[
        "--json",
        "--state",
        "sf",
        "--sni",
        "*.example.test",
        "--control-socket",
        socket,
    ]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.starts_with(NO_DAEMON), "{stderr}");
    assert!(stderr.contains(socket), "{stderr}");
}

#[test]
fn the_daemon_refuses_bad_filters_counts_watchers_and_ends_their_streams() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let mut monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19975, &[]);
    let socket = monitor.daemon.control_socket.clone().expect("socket");

    // The daemon checks the filters itself: anything may connect.
    assert_eq!(
        raw_request(&socket, r#"{"op":"watch","state":["S1","S2"]}"#),
        [format!(
            r#"{{"ok":false,"error":{},"entries":[]}}"#,
            serde_json::json!(BAD_STATE)
        )]
    );
    assert_eq!(
        raw_request(&socket, r#"{"op":"watch","port":0}"#),
        [r#"{"ok":false,"error":"--port 0: a server port is 1 to 65535","entries":[]}"#]
    );
    assert_eq!(watchers(&monitor.daemon), 0);

    let json = Watcher::piped(&["--json"], &socket);
    let mut terminal = Watcher::on_terminal(&["--state", "S1,sf", "--port", "8080"], &socket);
    wait_for_watchers(&monitor.daemon, 2);
    let out = Command::new(BINARY)
        .args(["status", "--control-socket", &socket])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("watch clients: 2\n"), "{text}");

    // Ctrl-C: exit 0, and nothing printed but the terminal's echo of it.
    terminal.interrupt();
    let (status, _) = terminal.wait();
    assert!(status.success(), "{status}");
    let printed: String = terminal.rest().concat();
    assert_eq!(printed.replace("^C", ""), "");
    // The daemon noticed it go.
    wait_for_watchers(&monitor.daemon, 1);

    // The daemon stops: the other one says so.
    let mut json = json;
    assert!(monitor.daemon.terminate().success());
    let (status, stderr) = json.wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr, "handshake-monitor: error: the daemon stopped\n");
    assert_eq!(json.rest(), Vec::<String>::new());
}

/// A plain HTTP server in `ns` answering one request, closing first.
fn http_server(ns: &str, addr: SocketAddr) -> JoinHandle<()> {
    let listener = in_netns(ns, || TcpListener::bind(addr)).expect("binding the HTTP server");
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accepting curl");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("reading the request");
            request.push(byte[0]);
        }
        // No Content-Length: the body ends with the server's FIN, so curl
        // cannot close first (with a length it may, once it has the body,
        // before this thread's close: the close's initiator would be a race).
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok\n")
            .expect("answering");
    })
}

fn curl(ns: &str, url: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "--max-time", "10", url])
        .output()
        .expect("running curl")
}

#[test]
fn two_watchers_receive_exactly_the_records_their_filters_match() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let events = std::env::temp_dir().join(format!(
        "hmt-{}-{}-watch-events.log",
        std::process::id(),
        support::unique()
    ));
    let _ = std::fs::remove_file(&events);
    let events_arg = events.to_str().expect("utf-8").to_string();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19976,
        &["--port", "8080", "--events", &events_arg],
    );
    let socket = monitor.daemon.control_socket.clone().expect("socket");
    let client = link.hub_addr.to_string();
    let client_net = format!("{client}/32");

    let json = Watcher::piped(
        &[
            "--json",
            "--port",
            "8080",
            "--state",
            "S1",
            "--client",
            &client_net,
        ],
        &socket,
    );
    let terminal = Watcher::on_terminal(&["--state", "s1,SF", "--port", "8080"], &socket);
    // Its reader gone at once: the first record it is sent ends it, quietly.
    let mut closed = Watcher::unread(&["--json", "--port", "8080"], &socket);
    wait_for_watchers(&monitor.daemon, 3);

    // Refused (nothing listens on 8081): a record neither watcher wants.
    let refused = curl(&lab.hub, &format!("http://{}:8081/", link.peer_addr));
    assert!(!refused.status.success());
    let server = http_server(&link.peer_ns, SocketAddr::from((link.peer_addr, 8080)));
    let out = curl(&lab.hub, &format!("http://{}:8080/", link.peer_addr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    server.join().expect("the HTTP server");

    let got = json.exactly(1, RECORD_TIMEOUT);
    let record: serde_json::Value = serde_json::from_str(&got[0]).expect("a JSON line");
    let server = link.peer_addr.to_string();
    for (field, value) in [
        ("type", serde_json::json!("tcp_handshake")),
        ("interface", serde_json::json!(link.peer_if)),
        ("role", serde_json::json!("server")),
        ("client_ip", serde_json::json!(client)),
        ("server_ip", serde_json::json!(server)),
        ("server_port", serde_json::json!(8080)),
        ("outcome", serde_json::json!("completed")),
        ("conn_state", serde_json::json!("S1")),
    ] {
        assert_eq!(record[field], value, "{field} of {record}");
    }
    // The very line of the events log.
    assert!(
        wait_until(RECORD_TIMEOUT, || std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| l == got[0])),
        "{} not in the events log:\n{}",
        got[0],
        std::fs::read_to_string(&events).unwrap_or_default()
    );

    // Readable: the same handshake, then its close (curl's server closes
    // first).
    let flow = format!(
        "{client}:{} → {server}:8080",
        record["client_port"].as_u64().expect("client_port")
    );
    let iface = &link.peer_if;
    let lines = terminal.exactly(2, RECORD_TIMEOUT);
    let handshake = format!(
        "{flow} S1 completed on {iface} (server): SYN {} → SYN-ACK {} (ack {} = x+1, ",
        record["client_isn"],
        record["server_isn"],
        (record["client_isn"].as_u64().expect("client_isn") + 1) % (1 << 32)
    );
    assert!(
        lines[0].starts_with(&handshake),
        "{:?}\nnot {handshake:?}...",
        lines[0]
    );
    let close = format!("{flow} SF on {iface} (server): closed gracefully by the server after ");
    assert!(
        lines[1].starts_with(&close),
        "{:?}\nnot {close:?}...",
        lines[1]
    );

    let (status, stderr) = closed.wait();
    assert!(status.success(), "{status}");
    assert_eq!(stderr, "");
    let _ = std::fs::remove_file(&events);
}
