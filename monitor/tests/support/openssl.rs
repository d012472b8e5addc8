//! Real TLS peers: `openssl s_server` in a lab namespace under a guard, and
//! one-shot `openssl s_client` handshakes, bounded in time.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use super::{cmd, deploy::TempDir};

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
        let (port, naccept) = (port.to_string(), connections.to_string());
        let (key, crt) = (cert.key(), cert.cert());
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "openssl", "s_server", "-quiet"])
            .args(["-accept", &port, "-naccept", &naccept])
            .args(["-key", path_str(&key), "-cert", path_str(&crt)])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        // It listens within milliseconds.
        std::thread::sleep(Duration::from_millis(300));
        Self(child)
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
