//! The two-namespace lab `cargo xtask demo` and `cargo xtask soak` run
//! the daemon in: a server namespace (daemon, HTTP and TLS servers) and a
//! client namespace joined by a veth pair, in 198.18.77.0/24. Everything it
//! starts is stopped, and the namespaces deleted, when it drops.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::proc;

pub const SERVER_NS: &str = "hmdemo-srv";
pub const CLIENT_NS: &str = "hmdemo-cli";
pub const SERVER_IF: &str = "hmdemo-s";
const CLIENT_IF: &str = "hmdemo-c";
pub const SERVER_IP: &str = "198.18.77.1";
const CLIENT_IP: &str = "198.18.77.2";
/// The flood's spoofed source: an address nobody in the lab owns.
pub const ATTACKER_IP: &str = "198.18.77.100";
pub const METRICS: &str = "127.0.0.1:19870";
pub const HTTP_PORT: &str = "8080";
pub const TLS_PORT: &str = "4433";

pub struct Lab {
    children: Vec<Child>,
    work: PathBuf,
}

impl Lab {
    pub fn new(work: PathBuf) -> Self {
        Self {
            children: Vec::new(),
            work,
        }
    }

    pub fn build(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.work)?;
        for ns in [SERVER_NS, CLIENT_NS] {
            // A lab left by an interrupted demo is replaced.
            let _ = quiet("ip", &["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "link", "add", SERVER_IF, "netns", SERVER_NS, "type", "veth", "peer", "name",
            CLIENT_IF, "netns", CLIENT_NS,
        ])?;
        for (ns, dev, addr) in [
            (SERVER_NS, SERVER_IF, SERVER_IP),
            (CLIENT_NS, CLIENT_IF, CLIENT_IP),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn spawn(&mut self, ns: &str, program: &Path, args: &[&str], log: &str) -> Result<()> {
        let log = std::fs::File::create(self.work.join(log))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        self.children.push(child);
        Ok(())
    }

    pub fn start_daemon(&mut self, binary: &Path, extra: &[&str]) -> Result<()> {
        let socket = self.socket();
        let events = self.work.join("events.jsonl");
        let config = self.work.join("demo.toml");
        // Short automatic blocks, so the demo shows one without leaving it.
        std::fs::write(&config, "[mitigation]\nauto_block_ttl_seconds = 30\n")?;
        let args = [
            "run",
            "--iface",
            SERVER_IF,
            "--metrics-addr",
            METRICS,
            "--port",
            HTTP_PORT,
            "--port",
            TLS_PORT,
            "--mitigation",
            "enforce",
            "--pin-dir",
            "",
            "--control-socket",
            path(&socket)?,
            "--events",
            path(&events)?,
            "--config",
            path(&config)?,
        ];
        let args: Vec<&str> = args.iter().chain(extra).copied().collect();
        self.spawn(SERVER_NS, binary, &args, "daemon.log")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !in_ns_ok(
            SERVER_NS,
            "curl",
            &["-sf", &format!("http://{METRICS}/healthz")],
        ) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.work.join("daemon.log")).unwrap_or_default();
                bail!("the daemon did not come up within 20 s:\n{log}");
            }
            thread::sleep(Duration::from_millis(100));
        }
        println!("daemon attached to {SERVER_IF} in namespace {SERVER_NS}, metrics on {METRICS}");
        Ok(())
    }

    pub fn start_servers(&mut self) -> Result<()> {
        let (cert, key) = (self.work.join("cert.pem"), self.work.join("key.pem"));
        quiet(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=demo.test",
                "-days",
                "1",
                "-keyout",
                path(&key)?,
                "-out",
                path(&cert)?,
            ],
        )?;
        let python = Path::new("/usr/bin/python3");
        let http = ["-m", "http.server", HTTP_PORT, "--bind", SERVER_IP];
        self.spawn(SERVER_NS, python, &http, "http.log")?;
        let tls = [
            "s_server",
            "-accept",
            TLS_PORT,
            "-www",
            "-cert",
            path(&cert)?,
            "-key",
            path(&key)?,
        ];
        self.spawn(SERVER_NS, Path::new("/usr/bin/openssl"), &tls, "tls.log")?;
        // Both listening before the clients come.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !in_ns_ok(
            CLIENT_NS,
            "curl",
            &[
                "-sf",
                "-o",
                "/dev/null",
                &format!("http://{SERVER_IP}:{HTTP_PORT}/"),
            ],
        ) || !in_ns_ok(
            CLIENT_NS,
            "curl",
            &[
                "-skf",
                "-o",
                "/dev/null",
                &format!("https://{SERVER_IP}:{TLS_PORT}/"),
            ],
        ) {
            if Instant::now() > deadline {
                bail!("the demo's HTTP and TLS servers did not come up");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn clients(&self) -> Result<()> {
        self.clients_n(20, 10)?;
        println!("done: every request answered");
        Ok(())
    }

    /// `http` HTTP and `https` HTTPS requests and one TLS 1.2 handshake,
    /// each of which must succeed.
    pub fn clients_n(&self, http: usize, https: usize) -> Result<()> {
        for _ in 0..http {
            in_ns(
                CLIENT_NS,
                "curl",
                &[
                    "-sf",
                    "-o",
                    "/dev/null",
                    &format!("http://{SERVER_IP}:{HTTP_PORT}/"),
                ],
            )?;
        }
        for _ in 0..https {
            in_ns(
                CLIENT_NS,
                "curl",
                &[
                    "-skf",
                    "-o",
                    "/dev/null",
                    &format!("https://{SERVER_IP}:{TLS_PORT}/"),
                ],
            )?;
        }
        let connect = format!("{SERVER_IP}:{TLS_PORT}");
        in_ns(
            CLIENT_NS,
            "sh",
            &[
                "-c",
                &format!(
                    "openssl s_client -connect {connect} -servername demo.test -tls1_2 </dev/null >/dev/null 2>&1"
                ),
            ],
        )?;
        Ok(())
    }

    /// The daemon's pid (the first child started).
    pub fn daemon_pid(&self) -> Option<u32> {
        self.children.first().map(Child::id)
    }

    /// SIGTERM to the daemon, then its exit status within 10 s.
    pub fn stop_daemon(&mut self) -> Result<std::process::ExitStatus> {
        let Some(child) = self.children.first_mut() else {
            bail!("no daemon running");
        };
        // SAFETY: kill with the pid of our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("the daemon did not exit within 10 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's /metrics text.
    pub fn scrape(&self) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", SERVER_NS, "curl", "-sf"])
            .arg(format!("http://{METRICS}/metrics"))
            .output()?;
        if !out.status.success() {
            bail!("scraping the daemon failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn flood(&self) -> Result<()> {
        // -i u100: one SYN per 100 us; -c: bounded in count; timeout: in time.
        in_ns(
            CLIENT_NS,
            "timeout",
            &[
                "10",
                "hping3",
                "-q",
                "-S",
                "-p",
                HTTP_PORT,
                "-i",
                "u100",
                "-c",
                "20000",
                "-a",
                ATTACKER_IP,
                SERVER_IP,
            ],
        )
        .or_else(|_| Ok::<(), anyhow::Error>(()))?;
        println!("flood sent");
        Ok(())
    }

    pub fn show(&self, binary: &Path, args: &[&str]) -> Result<()> {
        let socket = self.socket();
        let mut cmd = Command::new(binary);
        cmd.args(args).args(["--control-socket", path(&socket)?]);
        proc::run(&mut cmd)
    }

    pub fn metrics(&self) -> Result<()> {
        let text = self.scrape()?;
        let wanted = [
            "handshake_tcp_handshakes_total{",
            "handshake_tls_client_hellos_total{",
            "handshake_alert_firing{alertname=\"SynFlood\"",
            "handshake_xdp_dropped_packets_total{",
            "handshake_blocklist_entries{",
        ];
        for line in text.lines() {
            if wanted.iter().any(|w| line.starts_with(w)) && !line.ends_with(" 0") {
                println!("{line}");
            }
        }
        Ok(())
    }

    pub fn events(&self) -> Result<()> {
        let text = std::fs::read_to_string(self.work.join("events.jsonl")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in lines.iter().rev().take(4).rev() {
            println!("{line}");
        }
        Ok(())
    }

    pub fn socket(&self) -> PathBuf {
        self.work.join("control.sock")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [SERVER_NS, CLIENT_NS] {
            let _ = quiet("ip", &["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

pub fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a temporary path that is not UTF-8")
}

fn ip(args: &[&str]) -> Result<()> {
    quiet("ip", args)
}

pub fn quiet(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    quiet("ip", &all)
}

pub fn in_ns_ok(ns: &str, program: &str, args: &[&str]) -> bool {
    in_ns(ns, program, args).is_ok()
}
