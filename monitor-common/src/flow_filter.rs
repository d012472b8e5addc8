//! How many of the flow table's entries fall in each bucket of flow
//! hashes. A segment whose bucket holds none (the SYN-ACK answering a
//! spoofed SYN, above all) has no connection to look up, and skips the
//! lookup in a table of tens of megabytes: a bucket is one read in an
//! array small enough to stay in cache.
//!
//! A count only goes wrong upward (an entry the LRU table evicted on its
//! own is never subtracted; a tuple whose stale entry is replaced is added
//! twice), which costs a lookup that finds nothing, never a connection
//! missed.

/// Buckets of the filter (one `u32` count each: 256 KiB).
pub const FLOW_FILTER_BUCKETS: u32 = 1 << 16;

/// The bucket of a flow hash (`half_open::flow_hash`): its top bits, where
/// the half-open table takes the low ones for a slot.
#[inline(always)]
pub const fn bucket(hash: u32) -> u32 {
    hash >> (32 - FLOW_FILTER_BUCKETS.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_filter_from_the_top_bits() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(u32::MAX), FLOW_FILTER_BUCKETS - 1);
        assert_eq!(bucket(0x0000_ffff), 0);
        assert_eq!(bucket(0x0001_0000), 1);
    }
}
