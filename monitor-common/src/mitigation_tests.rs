use super::*;

const SECOND: u64 = 1_000_000_000;

#[test]
fn gcra_admits_the_burst_then_the_rate() {
    let gcra = Gcra::new(10, 5);
    let mut cell = 0;
    let now = 100 * SECOND;
    let admitted = (0..20).filter(|_| gcra.admit(&mut cell, now)).count();
    assert_eq!(admitted, 5, "a burst of 5 at one instant");
    // One interval later exactly one more fits.
    assert!(gcra.admit(&mut cell, now + SECOND / 10));
    assert!(!gcra.admit(&mut cell, now + SECOND / 10));
    // Over a long quiet spell the cell does not bank more than the burst.
    let later = now + 60 * SECOND;
    let admitted = (0..20).filter(|_| gcra.admit(&mut cell, later)).count();
    assert_eq!(admitted, 5);
}

#[test]
fn gcra_holds_a_steady_rate() {
    let gcra = Gcra::new(100, 1);
    let mut cell = 0;
    // 1000 SYNs evenly over one second at 1000/s: 100 admitted.
    let admitted = (0..1000u64)
        .filter(|i| gcra.admit(&mut cell, 50 * SECOND + i * SECOND / 1000))
        .count();
    assert_eq!(admitted, 100);
}

#[test]
fn a_zero_rate_admits_nothing_past_the_burst() {
    let gcra = Gcra::new(0, 1);
    let mut cell = 0;
    assert!(gcra.admit(&mut cell, SECOND));
    assert!(!gcra.admit(&mut cell, 1000 * SECOND));
}

#[test]
fn ipv4_is_mapped_and_prefixed_to_a_slash_24() {
    let mut raw = [0u8; 16];
    raw[..4].copy_from_slice(&[198, 18, 0, 7]);
    let m = mapped(&raw, 4);
    assert_eq!(m, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 7]);
    let (prefix, len) = rate_prefix(&m, 4);
    assert_eq!(len, 120);
    assert_eq!(prefix[12..], [198, 18, 0, 0]);
}

#[test]
fn ipv6_prefix_is_a_slash_64() {
    let addr = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0xaa, 0xbb, 0, 0, 0, 0, 0, 9];
    assert_eq!(mapped(&addr, 6), addr);
    let (prefix, len) = rate_prefix(&addr, 6);
    assert_eq!(len, 64);
    assert_eq!(prefix[..8], addr[..8]);
    assert_eq!(prefix[8..], [0; 8]);
}

#[test]
fn limiter_indexes_stay_in_their_sketch_and_row() {
    for i in 0..1000u32 {
        let mut addr = [0u8; 16];
        addr[12..].copy_from_slice(&i.to_be_bytes());
        for limiter in [Limiter::Source, Limiter::Prefix] {
            for row in 0..LIMITER_ROWS {
                let index = limiter_index(limiter, row, &addr);
                let base = (limiter as u32 * LIMITER_ROWS + row) * LIMITER_CELLS;
                assert!((base..base + LIMITER_CELLS).contains(&index));
                assert!(index < LIMITER_ENTRIES);
            }
        }
    }
}

#[test]
fn rows_hash_independently() {
    // Addresses colliding in row 0 should mostly not collide in row 1.
    let target = [0u8; 16];
    let cell0 = hash(&target, 0) & (LIMITER_CELLS - 1);
    let mut both = 0;
    let mut row0 = 0;
    for i in 1..200_000u32 {
        let mut addr = [0u8; 16];
        addr[12..].copy_from_slice(&i.to_be_bytes());
        if hash(&addr, 0) & (LIMITER_CELLS - 1) == cell0 {
            row0 += 1;
            if hash(&addr, 1) & (LIMITER_CELLS - 1) == hash(&target, 1) & (LIMITER_CELLS - 1) {
                both += 1;
            }
        }
    }
    assert!(row0 > 0, "some addresses share the row-0 cell");
    assert_eq!(both, 0, "none of them share the row-1 cell too");
}

#[test]
fn a_block_applies_until_it_expires() {
    let entry = PolicyEntry {
        kind: kind::BLOCK,
        expires_ns: 10 * SECOND,
        ..PolicyEntry::default()
    };
    assert!(entry.blocks(9 * SECOND));
    assert!(!entry.blocks(10 * SECOND));
    let forever = PolicyEntry {
        expires_ns: 0,
        ..entry
    };
    assert!(forever.blocks(u64::MAX));
    let allow = PolicyEntry {
        kind: kind::ALLOW,
        ..forever
    };
    assert!(!allow.blocks(0));
}

fn source(i: u32) -> [u8; 16] {
    let mut addr = [0u8; 16];
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr[12..].copy_from_slice(&i.to_be_bytes());
    addr
}

#[test]
fn a_flooding_source_owns_its_slot() {
    let mut slot = OffenderSlot::default();
    let attacker = source(1);
    for i in 0..1000u32 {
        slot.note(&attacker, 128, 0, 80, 1);
        // Interleaved strangers that land in the same slot.
        if i % 10 == 0 {
            slot.note(&source(1000 + i), 128, 0, 80, 1);
        }
    }
    assert_eq!(slot.addr, attacker);
    assert_eq!(slot.count, 1000 - 100);
}

#[test]
fn random_sources_build_no_count() {
    let mut slot = OffenderSlot::default();
    for i in 0..10_000u32 {
        slot.note(&source(i), 128, 0, 80, 1);
    }
    assert!(slot.count <= 1, "count {}", slot.count);
}

#[test]
fn a_new_epoch_empties_the_slot() {
    let mut slot = OffenderSlot::default();
    for _ in 0..50 {
        slot.note(&source(1), 128, 0, 80, 1);
    }
    slot.note(&source(2), 128, 0, 443, 2);
    assert_eq!((slot.addr, slot.count, slot.port), (source(2), 1, 443));
}

#[test]
fn the_policy_filter_covers_what_an_entry_covers() {
    let v4 = |a: [u8; 4]| {
        mapped(
            &[a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            4,
        )
    };
    let bit_of = |addr: &[u8; 16], family| {
        let (word, bit) = policy_filter_bit(addr, family);
        word * 64 + bit
    };
    let host = [198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    // A host entry covers exactly the bit of its /16.
    assert_eq!(
        policy_filter_span(&v4([198, 18, 0, 2]), 128),
        (bit_of(&host, 4), 1)
    );
    // A /15 covers two /16s; a /8, 256.
    assert_eq!(
        policy_filter_span(&v4([198, 18, 0, 0]), 96 + 15),
        (198 * 256 + 18, 2)
    );
    assert_eq!(
        policy_filter_span(&v4([10, 0, 0, 0]), 96 + 8),
        (10 * 256, 256)
    );
    // IPv6 sources use the second half, by their first 16 bits.
    let v6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let (start, count) = policy_filter_span(&v6, 48);
    assert_eq!((start, count), (bit_of(&v6, 6), 1));
    assert_eq!(start, 1024 * 64 + 0x2001);
    assert_eq!(policy_filter_span(&v6, 3), (1024 * 64 + 0x2000, 8192));
}
