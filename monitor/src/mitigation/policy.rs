//! The kernel's policy table (allowlist and blocklist in one LPM trie),
//! with the rules the kernel cannot check: no block of everything, no
//! block overlapping the allowlist, a bounded blocklist.

use aya::maps::{Array, LpmTrie, MapData, MapError, lpm_trie::Key};
use monitor_common::mitigation::{
    POLICY_FILTER_WORDS, PolicyEntry, kind, origin, policy_filter_span,
};
use thiserror::Error;

use super::cidr::Cidr;

pub type Trie = LpmTrie<MapData, [u8; 16], PolicyEntry>;
/// The kernel's filter in front of the trie (`HM_POLICY_FILTER`).
pub type Filter = Array<MapData, u64>;

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("refusing to block {0}: it covers every address of its family")]
    Everything(Cidr),
    #[error("{cidr} overlaps allowlisted {allowed}; the allowlist is never blocked")]
    Allowlisted { cidr: Cidr, allowed: Cidr },
    #[error(
        "the blocklist is full ({capacity} entries); remove entries with `handshake-monitor block \
         remove`, wait for some to expire, or raise mitigation.blocklist_capacity"
    )]
    Full { capacity: usize },
    #[error("{0} is not in the blocklist")]
    NotBlocked(Cidr),
    #[error("updating the kernel policy table")]
    Map(#[from] MapError),
}

/// An entry as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub cidr: Cidr,
    pub entry: PolicyEntry,
}

pub struct PolicyTable {
    trie: Trie,
    filter: Filter,
    /// What the kernel's filter holds: only changed words are written.
    filter_words: Vec<u64>,
    allowlist: Vec<Cidr>,
    capacity: usize,
}

impl PolicyTable {
    /// The table over `trie` (which may hold pinned entries of an earlier
    /// run) and its kernel filter, brought in line with it.
    pub fn new(trie: Trie, filter: Filter, capacity: usize) -> Result<Self, MapError> {
        let mut table = Self {
            trie,
            filter,
            filter_words: vec![0; POLICY_FILTER_WORDS as usize],
            allowlist: Vec::new(),
            capacity,
        };
        // The kernel's copy starts zeroed only if it was not pinned.
        for (i, word) in table.filter_words.iter_mut().enumerate() {
            *word = table.filter.get(&(i as u32), 0)?;
        }
        table.sync_filter()?;
        Ok(table)
    }

    /// Rewrites the filter words that the entries now cover differently.
    /// Bits are set before a new entry could need them only to within this
    /// call: a SYN racing a `block add` may pass, as it would a moment
    /// earlier.
    fn sync_filter(&mut self) -> Result<(), MapError> {
        let mut wanted = vec![0u64; POLICY_FILTER_WORDS as usize];
        for listed in self.entries()? {
            let key = listed.cidr.policy_key();
            let (start, count) = policy_filter_span(&key.addr, key.prefix_len);
            for bit in start..start + count {
                wanted[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        for (i, (&want, have)) in wanted.iter().zip(self.filter_words.iter_mut()).enumerate() {
            if want != *have {
                self.filter.set(i as u32, want, 0)?;
                *have = want;
            }
        }
        Ok(())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A smaller capacity keeps the blocks beyond it; new ones wait.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    pub fn allowlist(&self) -> &[Cidr] {
        &self.allowlist
    }

    /// Every entry, allow and block, in address order.
    pub fn entries(&self) -> Result<Vec<Listed>, MapError> {
        let mut out = Vec::new();
        for item in self.trie.iter() {
            let (key, entry) = item?;
            let policy_key = monitor_common::mitigation::PolicyKey {
                prefix_len: key.prefix_len(),
                addr: key.data(),
            };
            if let Some(cidr) = Cidr::from_policy_key(&policy_key) {
                out.push(Listed { cidr, entry });
            }
        }
        out.sort_by_key(|l| l.cidr);
        Ok(out)
    }

    pub fn blocks(&self) -> Result<Vec<Listed>, MapError> {
        let mut entries = self.entries()?;
        entries.retain(|l| l.entry.kind == kind::BLOCK);
        Ok(entries)
    }

    /// Checks a block without applying it.
    pub fn check_block(&self, cidr: Cidr) -> Result<(), PolicyError> {
        if cidr.is_everything() {
            return Err(PolicyError::Everything(cidr));
        }
        if let Some(allowed) = self.allowlist.iter().find(|a| a.overlaps(&cidr)) {
            return Err(PolicyError::Allowlisted {
                cidr,
                allowed: *allowed,
            });
        }
        let blocks = self.blocks()?;
        if blocks.len() >= self.capacity && !blocks.iter().any(|l| l.cidr == cidr) {
            return Err(PolicyError::Full {
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Adds (or replaces) a block; checked first, so nothing is half-applied.
    pub fn block(&mut self, cidr: Cidr, entry: PolicyEntry) -> Result<(), PolicyError> {
        self.check_block(cidr)?;
        self.insert(cidr, entry)?;
        self.sync_filter()?;
        Ok(())
    }

    pub fn unblock(&mut self, cidr: Cidr) -> Result<PolicyEntry, PolicyError> {
        let key = key_of(cidr);
        match self.trie.get(&key, 0) {
            Ok(entry) if entry.kind == kind::BLOCK => {
                self.trie.remove(&key)?;
                self.sync_filter()?;
                Ok(entry)
            }
            Ok(_) | Err(MapError::KeyNotFound) => Err(PolicyError::NotBlocked(cidr)),
            Err(err) => Err(err.into()),
        }
    }

    /// Makes the table's allow entries exactly `allowlist`. Blocks that
    /// overlap it (left by an earlier run, before the allowlist changed) are
    /// removed and returned: the allowlist wins.
    pub fn set_allowlist(
        &mut self,
        allowlist: &[Cidr],
        now_ns: u64,
    ) -> Result<Vec<Listed>, MapError> {
        let mut lifted = Vec::new();
        for listed in self.entries()? {
            let stale_allow = listed.entry.kind == kind::ALLOW && !allowlist.contains(&listed.cidr);
            let overlapping_block = listed.entry.kind == kind::BLOCK
                && allowlist.iter().any(|a| a.overlaps(&listed.cidr));
            if stale_allow || overlapping_block {
                self.trie.remove(&key_of(listed.cidr))?;
            }
            if overlapping_block {
                lifted.push(listed);
            }
        }
        for cidr in allowlist {
            let entry = PolicyEntry {
                kind: kind::ALLOW,
                origin: origin::CONFIG,
                added_ns: now_ns,
                ..PolicyEntry::default()
            };
            self.insert(*cidr, entry)?;
        }
        self.allowlist = allowlist.to_vec();
        self.sync_filter()?;
        Ok(lifted)
    }

    /// Deletes the blocks whose time is up (the kernel already ignores
    /// them) and returns them.
    pub fn expire(&mut self, now_ns: u64) -> Result<Vec<Listed>, MapError> {
        let mut expired = Vec::new();
        for listed in self.blocks()? {
            if !listed.entry.blocks(now_ns) {
                self.trie.remove(&key_of(listed.cidr))?;
                expired.push(listed);
            }
        }
        if !expired.is_empty() {
            self.sync_filter()?;
        }
        Ok(expired)
    }

    fn insert(&mut self, cidr: Cidr, entry: PolicyEntry) -> Result<(), MapError> {
        let key = key_of(cidr);
        let entry = PolicyEntry {
            prefix_len: key.prefix_len() as u8,
            ..entry
        };
        self.trie.insert(&key, entry, 0)
    }
}

fn key_of(cidr: Cidr) -> Key<[u8; 16]> {
    let key = cidr.policy_key();
    Key::new(key.prefix_len, key.addr)
}
