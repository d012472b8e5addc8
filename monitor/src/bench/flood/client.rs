//! The real client beside the flood: one HTTP/1.0 GET at a time to the
//! lab's server, a new connection each (handshake plus request, what
//! curl's `%{time_total}` measures), paced, bounded in time.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

const INTERVAL: Duration = Duration::from_millis(50);
/// A request that takes longer counts as failed, at this latency.
const TIMEOUT: Duration = Duration::from_secs(3);

pub struct Latencies {
    /// Milliseconds, failed requests included at the time they took.
    pub ms: Vec<f64>,
    pub failed: u64,
}

impl Latencies {
    /// The `q` quantile (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

fn get(server: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body)?;
    if !body.starts_with(b"HTTP/1.0 200") {
        return Err(std::io::Error::other("not a 200 response"));
    }
    Ok(())
}

/// Requests `server` every [`INTERVAL`] for `duration`, from the calling
/// thread's namespace.
pub fn run(server: SocketAddr, duration: Duration) -> Latencies {
    let start = Instant::now();
    let mut out = Latencies {
        ms: Vec::new(),
        failed: 0,
    };
    let mut next = start;
    while start.elapsed() < duration {
        let began = Instant::now();
        if get(server).is_err() {
            out.failed += 1;
        }
        out.ms.push(began.elapsed().as_secs_f64() * 1e3);
        next += INTERVAL;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
    out
}

/// Whether one request succeeds within the timeout (the server is up).
pub fn reachable(server: SocketAddr) -> bool {
    get(server).is_ok()
}
