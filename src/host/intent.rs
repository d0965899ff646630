//! What cloonix recorded when it made each resource: the resource as it was asked for,
//! what it lives in, and its kind's receipt of what the host cannot tell later (a
//! process's identity, a container's `run` results, a borrowed interface's original
//! state). Observe reads these back, then checks each against the real object.
//!
//! One file per resource, written after the resource is made (and, for a kind that must
//! remember something before it is done, at checkpoints along the way), removed after it
//! is gone; so an apply killed at any point leaves records of exactly what exists, or a
//! little less, which the sweep of `destroy` recognises by name and identity.

use super::{Lab, Result, io};
use crate::graph::{Dep, Resource, ResourceId};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub resource: Resource,
    pub deps: Vec<(ResourceId, Dep)>,
    /// The kind's receipt, in the kind's own type (see `crate::kinds::Driver::Receipt`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub receipt: serde_json::Value,
}

fn file(lab: &Lab, id: &ResourceId) -> PathBuf {
    // Names may hold `/` (a file's path) and `%`: escape both to keep one flat directory.
    let name = id.name.replace('%', "%25").replace('/', "%2F");
    lab.intent_dir()
        .join(format!("{}@{name}.json", id.kind.as_str()))
}

/// Writes a record whole or not at all (through a rename).
pub fn write(lab: &Lab, record: &Record) -> Result<()> {
    std::fs::create_dir_all(lab.intent_dir()).map_err(io("create the intent directory"))?;
    let path = file(lab, &record.resource.id);
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(record).expect("resources serialize");
    std::fs::write(&tmp, text).map_err(io("record intent"))?;
    std::fs::rename(&tmp, &path).map_err(io("record intent"))
}

pub fn remove(lab: &Lab, id: &ResourceId) -> Result<()> {
    match std::fs::remove_file(file(lab, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove intent")(e)),
        _ => Ok(()),
    }
}

/// Every record of the lab; unreadable ones are skipped (observe then sees no such resource,
/// and apply makes it again).
pub fn read_all(lab: &Lab) -> Vec<Record> {
    let Ok(dir) = std::fs::read_dir(lab.intent_dir()) else {
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

/// The last apply of a lab: which file, when, whether it succeeded, and the topology it
/// asked for (with its checks), so that `status` can tell what is missing, `check LAB`
/// can run its checks, and an apply from another file can say whose lab it changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub file: String,
    pub at: String,
    pub ok: bool,
    pub topology: crate::model::Topology,
}

fn applied_file(lab: &Lab) -> PathBuf {
    lab.run.join("applied.json")
}

pub fn write_applied(lab: &Lab, applied: &Applied) -> Result<()> {
    std::fs::create_dir_all(&lab.run).map_err(io("create the lab's directory"))?;
    let path = applied_file(lab);
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(applied).expect("topologies serialize");
    std::fs::write(&tmp, text).map_err(io("record the apply"))?;
    std::fs::rename(&tmp, &path).map_err(io("record the apply"))
}

pub fn read_applied(lab: &Lab) -> Option<Applied> {
    serde_json::from_slice(&std::fs::read(applied_file(lab)).ok()?).ok()
}
