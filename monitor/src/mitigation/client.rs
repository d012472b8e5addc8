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
    let response = request(socket, &req)?;
    if !response.ok {
        bail!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon refused".into())
        );
    }
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
