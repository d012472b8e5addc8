//! Resolving the kfunc call the kernel object makes, which aya 0.14's
//! loader cannot: it relocates maps, helpers and BPF-to-BPF calls, but has
//! no `ksym` support (no `BPF_PSEUDO_KFUNC_CALL` fix-up). The kernel
//! program emits the call as a raw instruction with a placeholder id
//! (`monitor_common::syncookie::KFUNC_PLACEHOLDER_INSN`); here the
//! placeholder becomes the kfunc's type id in the running kernel's BTF,
//! in a copy of the object, before aya parses it.

use std::path::Path;

use monitor_common::syncookie::{KFUNC_PLACEHOLDER_IMM, KFUNC_PLACEHOLDER_INSN};

use super::btf::Btf;

/// The kfunc the TC ingress program calls (Linux 6.9+).
pub const ASSIGN_REQSK: &str = "bpf_sk_assign_tcp_reqsk";

/// An ELF object in 8-byte aligned memory (the ELF parser reads it in
/// place, as `include_bytes_aligned!` provides for the original).
pub struct Object {
    words: Vec<u64>,
    len: usize,
}

impl Object {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// A copy of `object` with every placeholder call set to `id`; also how
/// many it found.
pub fn patch(object: &[u8], id: Option<u32>) -> (Object, usize) {
    let mut words = vec![0u64; object.len().div_ceil(8)];
    // SAFETY: `words` has room for `object.len()` bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), object.len()) };
    bytes.copy_from_slice(object);
    let needle = KFUNC_PLACEHOLDER_INSN.to_le_bytes();
    let mut found = 0;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        if bytes[at..at + 8] == needle {
            found += 1;
            let imm = id.unwrap_or(KFUNC_PLACEHOLDER_IMM);
            bytes[at + 4..at + 8].copy_from_slice(&imm.to_le_bytes());
            at += 8;
        } else {
            at += 1;
        }
    }
    let len = object.len();
    (Object { words, len }, found)
}

/// The kfunc's id in the running kernel (`None`: older than 6.9, or BTF
/// unreadable: the cookie ACK program then cannot load).
pub fn assign_reqsk_id(btf_path: &Path) -> Option<u32> {
    Btf::from_file(btf_path).ok()?.func_id(ASSIGN_REQSK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_every_placeholder_and_nothing_else() {
        let mut object = vec![0xaau8; 3];
        object.extend_from_slice(&KFUNC_PLACEHOLDER_INSN.to_le_bytes());
        object.extend_from_slice(&[1, 2, 3]);
        object.extend_from_slice(&KFUNC_PLACEHOLDER_INSN.to_le_bytes());
        let (patched, found) = patch(&object, Some(0x0001_0203));
        assert_eq!(found, 2);
        let b = patched.bytes();
        assert_eq!(b.len(), object.len());
        assert_eq!(&b[3..11], &[0x85, 0x20, 0, 0, 3, 2, 1, 0]);
        assert_eq!(&b[11..14], &[1, 2, 3]);
        assert_eq!(&b[14..22], &[0x85, 0x20, 0, 0, 3, 2, 1, 0]);
        assert_eq!(b.as_ptr() as usize % 8, 0);
    }
}
