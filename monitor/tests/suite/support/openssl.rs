//! Real TLS peers: `openssl s_server` in a lab namespace under a guard, and
//! one-shot `openssl s_client` handshakes, bounded in time.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use super::{cmd, deploy::TempDir, netns, wait_until};

/// openssl listens within milliseconds; the margin is for a loaded machine.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A throwaway self-signed certificate, removed with its directory.
pub struct Cert {
    dir: TempDir,
}

impl Cert {
    pub fn new() -> Self {
        let dir = TempDir::new("tls");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
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

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `openssl s_server` in `ns` on `port`, serving `connections` handshakes;
/// killed on drop.
pub struct TlsServer(Child);

impl TlsServer {
    pub fn start(ns: &str, cert: &Cert, port: u16, connections: usize, extra: &[&str]) -> Self {
        let (accept, naccept) = (port.to_string(), connections.to_string());
        let (key, crt) = (cert.key(), cert.cert());
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "openssl", "s_server", "-quiet"])
            .args(["-accept", &accept, "-naccept", &naccept])
            .args(["-key", path_str(&key), "-cert", path_str(&crt)])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let mut server = Self(child);
        server.wait_listening(ns, port);
        server
    }

    /// Until the port listens (looked up in the kernel's tables: a probe
    /// connection would use up one of the `-naccept` handshakes).
    fn wait_listening(&mut self, ns: &str, port: u16) {
        let mut exited = None;
        let listening = wait_until(LISTEN_TIMEOUT, || {
            exited = self.0.try_wait().expect("polling openssl s_server");
            exited.is_some() || netns::tcp_listening(ns, port)
        });
        assert!(
            listening && exited.is_none(),
            "openssl s_server never listened on port {port} in {ns} (exit: {exited:?})"
        );
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `openssl s_client` handshake from `ns` to `addr:port`, closing right
/// after (at most 10 s); its output, whether or not it succeeded.
pub fn s_client(ns: &str, addr: &str, port: u16, extra: &[&str]) -> Output {
    let connect = format!("{addr}:{port}");
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "10", "openssl", "s_client"])
        .args(["-connect", &connect])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client")
}
