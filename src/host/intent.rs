//! What cloonix recorded when it made each resource: the resource as it was asked for, and
//! what it lives in. Observe reads these back for what the host cannot tell (a container's
//! `run` and `env`, which item a veth belongs to), then checks each against the real object.
//!
//! One file per resource, written after the resource is made and removed after it is gone,
//! so an apply killed at any point leaves records of exactly what exists (or a little less).

use super::{LabDirs, Result, io};
use crate::graph::{Dep, Resource, ResourceId};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub resource: Resource,
    pub deps: Vec<(ResourceId, Dep)>,
}

fn file(dirs: &LabDirs, id: &ResourceId) -> PathBuf {
    // Names may hold `/` (a file's path) and `%`: escape both to keep one flat directory.
    let name = id.name.replace('%', "%25").replace('/', "%2F");
    dirs.intent()
        .join(format!("{}@{name}.json", id.kind.as_str()))
}

pub fn write(dirs: &LabDirs, record: &Record) -> Result<()> {
    std::fs::create_dir_all(dirs.intent()).map_err(io("create the intent directory"))?;
    let path = file(dirs, &record.resource.id);
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(record).expect("resources serialize");
    std::fs::write(&tmp, text).map_err(io("record intent"))?;
    std::fs::rename(&tmp, &path).map_err(io("record intent"))
}

pub fn remove(dirs: &LabDirs, id: &ResourceId) -> Result<()> {
    match std::fs::remove_file(file(dirs, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove intent")(e)),
        _ => Ok(()),
    }
}

/// Every record of the lab; unreadable ones are skipped (observe then sees no such resource,
/// and apply makes it again).
pub fn read_all(dirs: &LabDirs) -> Vec<Record> {
    let Ok(dir) = std::fs::read_dir(dirs.intent()) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = dir
        .filter_map(|e| {
            let path = e.ok()?.path();
            if path.extension()? != "json" {
                return None;
            }
            serde_json::from_slice(&std::fs::read(path).ok()?).ok()
        })
        .collect();
    out.sort_by(|a, b| a.resource.id.cmp(&b.resource.id));
    out
}
