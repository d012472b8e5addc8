//! Just enough of a BTF reader to find struct member offsets in the
//! running kernel's `/sys/kernel/btf/vmlinux`.
//!
//! aya parses BTF too, but keeps its type accessors crate-private, and the
//! kernel programs need a handful of offsets only. The format
//! (Documentation/bpf/btf.rst): a header, a type section of variable-size
//! records (type ids count from 1 in order), and a string section.

use std::{ops::Range, path::Path};

use thiserror::Error;

/// Where the kernel publishes its own BTF.
pub const KERNEL_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("struct {ty} has no member {member} in the kernel's BTF")]
    NoMember { ty: String, member: String },
    #[error("{field} in the kernel's BTF is {found}, expected {expected}")]
    Unexpected {
        field: String,
        found: String,
        expected: &'static str,
    },
}

/// A member's place and type, the end of a resolved path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// From the start of the outermost struct, in bytes.
    pub offset: u32,
    pub type_id: u32,
}

/// What a type is, once typedefs and qualifiers are looked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An integer of this many bytes.
    Int(u32),
    Pointer,
    Other(u32),
}

#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
    /// Where the kind-specific data after the 12-byte record starts.
    extra: usize,
}

pub struct Btf {
    data: Vec<u8>,
    /// Index `id - 1`: type ids count from 1 (0 is void).
    types: Vec<Type>,
    strings: Range<usize>,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let malformed = |what: &str| BtfError::Malformed(what.to_string());
        if data.len() < HEADER_LEN || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(malformed("bad magic (not little-endian BTF?)"));
        }
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (word(4), word(8), word(12), word(16), word(20));
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let end = start.checked_add(len)?;
            (end <= data.len()).then_some(start..end)
        };
        let type_range = section(type_off, type_len).ok_or_else(|| malformed("type section"))?;
        let strings = section(str_off, str_len).ok_or_else(|| malformed("string section"))?;

        let mut types = Vec::new();
        let mut at = type_range.start;
        while at < type_range.end {
            if at + TYPE_LEN > type_range.end {
                return Err(malformed("truncated type record"));
            }
            let info = word(at + 4) as u32;
            let ty = Type {
                name_off: word(at) as u32,
                kind: (info >> 24) & 0x1f,
                vlen: (info & 0xffff) as usize,
                kind_flag: info >> 31 == 1,
                size_or_type: word(at + 8) as u32,
                extra: at + TYPE_LEN,
            };
            at = ty.extra + extra_len(&ty)?;
            types.push(ty);
        }
        if at != type_range.end {
            return Err(malformed("type section overruns its length"));
        }
        Ok(Self {
            data,
            types,
            strings,
        })
    }

    /// The byte offset and type of `path` (member names, outermost first)
    /// inside struct `root`. Anonymous struct and union members are looked
    /// through, as C does.
    pub fn field(&self, root: &str, path: &[&str]) -> Result<Field, BtfError> {
        let mut type_id = self.struct_id(root)?;
        let mut bits = 0u32;
        let mut shown = root.to_string();
        for name in path {
            let member =
                self.member(self.resolve(type_id), name)
                    .ok_or_else(|| BtfError::NoMember {
                        ty: shown.clone(),
                        member: name.to_string(),
                    })?;
            shown = format!("{shown}.{name}");
            if member.bitfield || member.bit_offset % 8 != 0 {
                return Err(BtfError::Unexpected {
                    field: shown,
                    found: format!("a bitfield at bit {}", member.bit_offset),
                    expected: "a byte-aligned member",
                });
            }
            bits += member.bit_offset;
            type_id = member.type_id;
        }
        Ok(Field {
            offset: bits / 8,
            type_id,
        })
    }

    pub fn shape(&self, type_id: u32) -> Shape {
        let id = self.resolve(type_id);
        match self.get(id) {
            Some(t) if t.kind == KIND_INT && self.whole_int(t) => Shape::Int(t.size_or_type),
            Some(t) if t.kind == KIND_PTR => Shape::Pointer,
            Some(t) => Shape::Other(t.kind),
            None => Shape::Other(0),
        }
    }

    /// An INT that fills its bytes: old-style BTF marks a bitfield by an
    /// INT with fewer bits (or a bit offset) instead of a member flag.
    fn whole_int(&self, ty: &Type) -> bool {
        let Some(bytes) = self.data.get(ty.extra..ty.extra + 4) else {
            return false;
        };
        let encoding = u32::from_le_bytes(bytes.try_into().unwrap());
        let (bits, offset) = (encoding & 0xff, (encoding >> 16) & 0xff);
        offset == 0 && bits == ty.size_or_type * 8
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    fn name(&self, ty: &Type) -> &[u8] {
        let start = self.strings.start + ty.name_off as usize;
        let tail = self.data.get(start..self.strings.end).unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    /// The first complete struct named `name` (forward declarations have
    /// no members and are skipped).
    fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_STRUCT && t.vlen > 0 && self.name(t) == name.as_bytes())
            .map(|i| i as u32 + 1)
            .ok_or_else(|| BtfError::NoStruct(name.to_string()))
    }

    /// The type id of function `name` (a kfunc, for a call instruction's
    /// `imm`), if the kernel has it.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_FUNC && self.name(t) == name.as_bytes())
            .map(|i| i as u32 + 1)
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> u32 {
        // Bounded: a malformed chain must not loop forever.
        for _ in 0..32 {
            match self.get(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Member `name` of struct/union `id`, searching anonymous members
    /// depth-first; its offset is from the start of `id`.
    fn member(&self, id: u32, name: &str) -> Option<Member> {
        self.member_at_depth(id, name, 0)
    }

    fn member_at_depth(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        let ty = self.get(id)?;
        if !matches!(ty.kind, KIND_STRUCT | KIND_UNION) || depth > 8 {
            return None;
        }
        for i in 0..ty.vlen {
            let at = ty.extra + i * 12;
            let word = |k: usize| {
                u32::from_le_bytes(self.data[at + 4 * k..at + 4 * k + 4].try_into().unwrap())
            };
            let (name_off, type_id, offset) = (word(0), word(1), word(2));
            // With kind_flag set, the top 8 bits hold a bitfield's size.
            let member = Member {
                bit_offset: if ty.kind_flag {
                    offset & 0x00ff_ffff
                } else {
                    offset
                },
                type_id,
                bitfield: ty.kind_flag && offset >> 24 != 0,
            };
            let member_name = self.name(&Type { name_off, ..*ty });
            if member_name == name.as_bytes() {
                return Some(member);
            }
            if !member_name.is_empty() {
                continue;
            }
            if let Some(inner) = self.member_at_depth(self.resolve(type_id), name, depth + 1) {
                return Some(Member {
                    bit_offset: member.bit_offset + inner.bit_offset,
                    ..inner
                });
            }
        }
        None
    }
}

/// A struct or union member as BTF describes it.
#[derive(Clone, Copy)]
struct Member {
    bit_offset: u32,
    type_id: u32,
    /// A bitfield (kind_flag style); older BTF marks bitfields in the
    /// INT's own bit count instead, which [`Btf::shape`] checks.
    bitfield: bool,
}

/// Length of the kind-specific data after a type record.
fn extra_len(ty: &Type) -> Result<usize, BtfError> {
    Ok(match ty.kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * ty.vlen,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * ty.vlen,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        2 | 7 | 8..=12 | 16 | 18 => 0,
        kind => return Err(BtfError::Malformed(format!("unknown type kind {kind}"))),
    })
}

#[cfg(test)]
#[path = "btf_tests.rs"]
mod tests;
