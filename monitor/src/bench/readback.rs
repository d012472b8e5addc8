//! What a program really sees: its maps looked up through the kernel (the
//! program's map ids), not through the bench's own handles, so a check
//! reads the state the next packet will be judged by.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::Context as _;
use aya::{
    Pod,
    maps::{Array, Map, MapData, MapInfo},
    programs::ProgramInfo,
};

/// The map of `program` named `name`, if it uses one.
pub fn map_named(program: &ProgramInfo, name: &str) -> anyhow::Result<Option<MapData>> {
    let ids = program
        .map_ids()
        .context("reading the program's map ids")?
        .context("the kernel reports no map ids (Linux 4.15+)")?;
    for id in ids {
        let info = MapInfo::from_id(id).with_context(|| format!("map id {id}"))?;
        // The kernel keeps the first 15 bytes of a map's name.
        let short = &name.as_bytes()[..name.len().min(15)];
        if info.name() == short {
            return Ok(Some(MapData::from_id(id)?));
        }
    }
    Ok(None)
}

/// Entry 0 of the array map `name` of `program`.
pub fn first<T: Pod>(program: &ProgramInfo, name: &str) -> anyhow::Result<T> {
    let map = map_named(program, name)?
        .with_context(|| format!("the program uses no map named {name}"))?;
    let array: Array<MapData, T> = Array::try_from(Map::Array(map))
        .with_context(|| format!("{name} is not an array of the expected value size"))?;
    Ok(array.get(&0, 0)?)
}

/// Keys in a hash map, walked with BPF_MAP_GET_NEXT_KEY (any key type:
/// only the kernel's key size is needed).
pub fn count_entries(map: &MapData) -> anyhow::Result<u64> {
    let key_size = map.info()?.key_size() as usize;
    let fd = map.fd().as_fd().as_raw_fd();
    let (mut key, mut next) = (vec![0u8; key_size], vec![0u8; key_size]);
    let mut count = 0u64;
    let mut first = true;
    loop {
        // union bpf_attr for BPF_MAP_*_ELEM: map_fd, pad, key, next_key.
        #[repr(C)]
        struct Attr {
            map_fd: u32,
            _pad: u32,
            key: u64,
            next_key: u64,
        }
        let attr = Attr {
            map_fd: fd as u32,
            _pad: 0,
            // A null key asks for the first key.
            key: if first { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
        };
        const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
        // SAFETY: attr and both key buffers outlive the call; the buffers
        // are the map's key size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                &raw const attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOENT) {
                return Ok(count);
            }
            return Err(err).context("BPF_MAP_GET_NEXT_KEY");
        }
        count += 1;
        first = false;
        std::mem::swap(&mut key, &mut next);
    }
}
