//! A real Alertmanager (Debian's prometheus-alertmanager) in a lab
//! namespace, for the alert push tests.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{http, unique, wait_until};

pub const AM_PORT: u16 = 19093;

/// Alertmanager in `ns` on 127.0.0.1:AM_PORT, with a receiver that drops
/// everything; killed and its data removed on drop.
pub struct Alertmanager {
    child: Child,
    dir: PathBuf,
}

impl Alertmanager {
    pub fn start(ns: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hm-am-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .expect("alertmanager config");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus-alertmanager"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{AM_PORT}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager (cargo xtask setup installs it)");
        let am = Self { child, dir };
        let up = wait_until(Duration::from_secs(15), || am.alerts(ns).is_ok());
        assert!(up, "Alertmanager did not come up");
        am
    }

    /// The active alerts, as Alertmanager's JSON.
    pub fn alerts(&self, ns: &str) -> std::io::Result<String> {
        http::get(
            ns,
            SocketAddr::from(([127, 0, 0, 1], AM_PORT)),
            "/api/v2/alerts",
        )
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
