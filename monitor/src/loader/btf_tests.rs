use std::path::Path;

use super::*;

/// Builds a BTF blob from (name, info, size_or_type, extra words).
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        at
    }

    fn add(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, size: u32, extra: &[u32]) {
        let name = self.string(name);
        let info = kind << 24 | vlen | u32::from(kind_flag) << 31;
        for word in [name, info, size].iter().chain(extra) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// Members as (name, type, offset word).
    fn add_struct(
        &mut self,
        kind: u32,
        name: &str,
        flag: bool,
        size: u32,
        members: &[(&str, u32, u32)],
    ) {
        let mut extra = Vec::new();
        for (member, ty, offset) in members {
            extra.extend([self.string(member), *ty, *offset]);
        }
        self.add(name, kind, members.len() as u32, flag, size, &extra);
    }

    fn build(self) -> Vec<u8> {
        let mut out = Vec::new();
        let header = [
            u32::from(MAGIC) | 1 << 16,
            HEADER_LEN as u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ];
        for word in header {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// `struct outer { int x; union { int a; void *b; }; inner_t t; int bits:3; u8 half:4 (old style) }`
/// with a forward declaration of `outer` first.
fn sample() -> Btf {
    let mut b = Builder::new();
    b.add("int", KIND_INT, 0, false, 4, &[32]); // 1
    b.add("u8", KIND_INT, 0, false, 1, &[4]); // 2: a 4-bit old-style bitfield int
    b.add("", KIND_PTR, 0, false, 0, &[]); // 3: void *
    b.add_struct(KIND_STRUCT, "inner", false, 8, &[("p", 3, 0)]); // 4
    b.add("inner_t", KIND_TYPEDEF, 0, false, 4, &[]); // 5
    b.add_struct(KIND_UNION, "", false, 8, &[("a", 1, 0), ("b", 3, 0)]); // 6
    b.add_struct(KIND_STRUCT, "outer", false, 0, &[]); // 7: forward
    let members = [
        ("x", 1, 0),
        ("", 6, 64),
        ("t", 5, 128),
        ("bits", 1, 3 << 24 | 192),
        ("half", 2, 224),
    ];
    b.add_struct(KIND_STRUCT, "outer", true, 32, &members); // 8
    b.add("const_int", KIND_CONST, 0, false, 1, &[]); // 9
    Btf::parse(b.build()).expect("sample BTF parses")
}

#[test]
fn finds_plain_anonymous_and_nested_members() {
    let btf = sample();
    let x = btf.field("outer", &["x"]).unwrap();
    assert_eq!((x.offset, btf.shape(x.type_id)), (0, Shape::Int(4)));
    let a = btf.field("outer", &["a"]).unwrap();
    assert_eq!((a.offset, btf.shape(a.type_id)), (8, Shape::Int(4)));
    let b = btf.field("outer", &["b"]).unwrap();
    assert_eq!((b.offset, btf.shape(b.type_id)), (8, Shape::Pointer));
    // Through a typedef'd struct member.
    let p = btf.field("outer", &["t", "p"]).unwrap();
    assert_eq!((p.offset, btf.shape(p.type_id)), (16, Shape::Pointer));
    assert_eq!(btf.shape(9), Shape::Int(4), "const is looked through");
}

#[test]
fn refuses_bitfields() {
    let btf = sample();
    assert!(matches!(
        btf.field("outer", &["bits"]),
        Err(BtfError::Unexpected { .. })
    ));
    // Old style: byte-aligned member, but the INT itself is 4 bits wide.
    let half = btf.field("outer", &["half"]).unwrap();
    assert_eq!(half.offset, 28);
    assert_eq!(btf.shape(half.type_id), Shape::Other(KIND_INT));
}

#[test]
fn names_what_is_missing() {
    let btf = sample();
    let err = btf.field("outer", &["t", "q"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "struct outer.t has no member q in the kernel's BTF"
    );
    let err = btf.field("nosuch", &["x"]).unwrap_err();
    assert_eq!(err.to_string(), "the kernel's BTF has no struct nosuch");
}

#[test]
fn rejects_malformed_blobs() {
    assert!(Btf::parse(vec![0; 8]).is_err());
    let mut blob = Builder::new();
    blob.add("int", KIND_INT, 0, false, 4, &[32]);
    let mut bytes = blob.build();
    // Claim a type section longer than the blob.
    bytes[12] = 0xff;
    assert!(Btf::parse(bytes).is_err());
    let mut blob = Builder::new();
    blob.add("", 31, 0, false, 0, &[]);
    assert!(matches!(
        Btf::parse(blob.build()),
        Err(BtfError::Malformed(_))
    ));
}

/// The running kernel's BTF, where the project runs (Linux with BTF is a
/// requirement, checked at start-up).
#[test]
fn reads_the_running_kernel() {
    let path = Path::new(KERNEL_BTF_PATH);
    assert!(path.exists(), "{} is required", path.display());
    let btf = Btf::from_file(path).unwrap();
    let common = btf.field("sock", &["__sk_common"]).unwrap();
    assert_eq!(common.offset, 0, "struct sock begins with sock_common");
    let net = btf
        .field("sock", &["__sk_common", "skc_net", "net"])
        .unwrap();
    assert_eq!(btf.shape(net.type_id), Shape::Pointer);
    let inum = btf.field("net", &["ns", "inum"]).unwrap();
    assert_eq!(btf.shape(inum.type_id), Shape::Int(4));
    // Inside sk_buff's anonymous struct-in-union.
    let dev = btf.field("sk_buff", &["dev"]).unwrap();
    assert_eq!(btf.shape(dev.type_id), Shape::Pointer);
    assert_eq!(dev.offset, 16, "after next and prev");
}
