//! The labs on this host, and which cached images they use.

use crate::graph::Kind;
use crate::host::{Lab, RUN_ROOT, STATE_ROOT, intent};
use std::collections::{BTreeMap, BTreeSet};

/// The names of the labs that exist on this host.
pub fn labs() -> Vec<String> {
    let mut out: Vec<String> = [RUN_ROOT, STATE_ROOT]
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|l| crate::model::is_name(l))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// For each cached image a lab's root filesystem or VM was made from, the labs using it.
pub fn image_users() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in labs() {
        for rec in intent::read_all(&Lab::new(&name)) {
            if !matches!(rec.resource.id.kind, Kind::Rootfs | Kind::Vm) {
                continue;
            }
            if let Some(id) = rec.receipt.get("image").and_then(|v| v.as_str()) {
                out.entry(id.to_string()).or_default().insert(name.clone());
            }
        }
    }
    out
}
