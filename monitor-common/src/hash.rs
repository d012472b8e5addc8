//! Hashing shared by the kernel's sketches and tables: cheap in BPF
//! (shifts, xors and two multiplies), and well mixed.

/// An address's 16 bytes folded into 64 bits, the high half turned by
/// `rotate` so that the two halves' patterns do not cancel.
#[inline(always)]
pub fn fold(a: &[u8; 16], rotate: u32) -> u64 {
    let lo = u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let hi = u64::from_le_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    lo ^ hi.rotate_left(rotate)
}

/// murmur3's 64-bit finalizer, cut to 32 bits.
#[inline(always)]
pub fn fmix64(mut h: u64) -> u32 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32
}
