//! What a program really sees: its maps looked up through the kernel (the
//! program's map ids), not through the bench's own handles, so a check
//! reads the state the next packet will be judged by.

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
