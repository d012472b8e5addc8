//! `handshake-monitor block add|remove|list`: checks its arguments here,
//! so a typo fails without a daemon, then asks the daemon.

use std::path::Path;

use anyhow::bail;

use super::{
    cidr::{Cidr, format_duration},
    control::{BlockView, Request, request},
};
use crate::cli::BlockAction;

pub fn run(action: &BlockAction, socket: &Path) -> anyhow::Result<()> {
    let req = match action {
        BlockAction::Add { cidr, ttl } => Request::Add {
            cidr: cidr.parse::<Cidr>()?.to_string(),
            ttl_secs: ttl.map(|t| t.as_secs()),
        },
        BlockAction::Remove { cidr } => Request::Remove {
            cidr: cidr.parse::<Cidr>()?.to_string(),
        },
        BlockAction::List { .. } => Request::List,
    };
    let response = request(socket, &req)?.checked()?;
    match action {
        BlockAction::List { json: true } => {
            println!("{}", serde_json::to_string_pretty(&response.entries)?);
        }
        BlockAction::List { json: false } => print!("{}", table(&response.entries)),
        BlockAction::Add { .. } => {
            for e in &response.entries {
                println!("blocked {} (expires: {})", e.cidr, expiry(e));
            }
        }
        BlockAction::Remove { .. } => {
            for e in &response.entries {
                println!("unblocked {}", e.cidr);
            }
        }
    }
    Ok(())
}

fn read_status(socket: &Path) -> anyhow::Result<crate::status::Status> {
    let response = request(socket, &Request::Status)?;
    match (response.ok, response.status) {
        (true, Some(status)) => Ok(*status),
        _ => bail!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon sent no status".into())
        ),
    }
}

/// `handshake-monitor status`.
pub fn status(socket: &Path, json: bool) -> anyhow::Result<()> {
    let status = read_status(socket)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", crate::status::render(&status, None));
    }
    Ok(())
}

/// `handshake-monitor top`: the status once a second, counters as rates.
pub fn top(socket: &Path, iterations: Option<u64>) -> anyhow::Result<()> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut previous: Option<(crate::status::Status, std::time::Instant)> = None;
    let mut shown = 0u64;
    while iterations.is_none_or(|n| shown < n) {
        let status = read_status(socket)?;
        let now = std::time::Instant::now();
        let before = previous
            .as_ref()
            .map(|(s, at)| (s, now.duration_since(*at)));
        if terminal {
            // Clear the screen and home the cursor.
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", crate::status::render(&status, before));
        if !terminal {
            println!();
        }
        previous = Some((status, now));
        shown += 1;
        if iterations.is_none_or(|n| shown < n) {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    Ok(())
}

fn expiry(e: &BlockView) -> String {
    e.expires_in_secs.map_or("never".into(), |s| {
        format!("in {}", format_duration(std::time::Duration::from_secs(s)))
    })
}

fn table(entries: &[BlockView]) -> String {
    if entries.is_empty() {
        return "no blocks in force\n".into();
    }
    let mut out = format!("{:<40} {:<7} {:<12} REASON\n", "CIDR", "ORIGIN", "EXPIRES");
    for e in entries {
        out.push_str(&format!(
            "{:<40} {:<7} {:<12} {}\n",
            e.cidr,
            e.origin,
            expiry(e),
            e.reason
        ));
    }
    out
}
