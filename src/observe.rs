//! Reads a lab back from the host: the intent cloonix recorded, each resource checked by
//! its kind against the batched facts (one OVSDB transaction, one link dump per namespace,
//! one read of the mount table) and the identities in its receipt. A resource whose object
//! is gone is left out of the graph (drift, which apply restores); one cloonix cannot
//! vouch for is kept but tainted (apply replaces it); attributes the host can tell (MAC,
//! MTU, addresses, a port's bridge, a file's content) are taken from the host. Only
//! objects cloonix recorded are looked at: everything else on the host is foreign.

use crate::graph::{Graph, Resource, ResourceId};
use crate::host::{Lab, intent};
use crate::kinds::{self, Facts, Needs, Seen};
use crate::status::LabStatus;
use std::collections::{BTreeMap, BTreeSet};

/// A lab as observed.
pub struct Observation {
    pub lab: Lab,
    /// What exists (present or tainted), with what lives in what.
    pub graph: Graph,
    /// Every record, each with its resource as observed, its receipt and what was seen.
    pub entries: Vec<Entry>,
}

pub struct Entry {
    pub resource: Resource,
    pub receipt: serde_json::Value,
    pub seen: Seen,
}

/// The observed lab (empty when it does not exist).
pub fn observe(lab: &str) -> Graph {
    observe_lab(&Lab::new(lab)).graph
}

pub fn observe_lab(lab: &Lab) -> Observation {
    let records = intent::read_all(lab);
    let mut graph = Graph::new(&lab.name);
    if records.is_empty() {
        return Observation {
            lab: lab.clone(),
            graph,
            entries: Vec::new(),
        };
    }
    let mut needs = Needs::default();
    for rec in &records {
        kinds::needs(lab, &rec.resource, &mut needs);
    }
    let facts = Facts::read(lab, &needs);
    let mut kept = BTreeSet::new();
    let mut entries = Vec::with_capacity(records.len());
    for rec in &records {
        let mut r = rec.resource.clone();
        let seen = kinds::observe(lab, &facts, &mut r, &rec.receipt);
        match &seen {
            Seen::Present => {}
            Seen::Tainted(why) => r.tainted = Some(why.clone()),
            Seen::Gone => {}
        }
        if seen != Seen::Gone {
            kept.insert(r.id.clone());
            graph.insert(r.clone());
        }
        entries.push(Entry {
            resource: r,
            receipt: rec.receipt.clone(),
            seen,
        });
    }
    for rec in &records {
        for (to, dep) in &rec.deps {
            if kept.contains(&rec.resource.id) && kept.contains(to) {
                graph.depend(&rec.resource.id, to, *dep);
            }
        }
    }
    taint_homes(&mut graph);
    Observation {
        lab: lab.clone(),
        graph,
        entries,
    }
}

/// A tainted resource taints the parts of its own item that it lives in: a container
/// whose `run` commands were interrupted leaves its root filesystem and namespace in a
/// state nobody knows, so the whole endpoint is made anew (and, through what lives in
/// those, its interfaces), not the container alone on the same writable layer.
fn taint_homes(graph: &mut Graph) {
    let mut work: Vec<(ResourceId, String)> = graph
        .resources()
        .filter_map(|r| Some((r.id.clone(), r.tainted.clone()?)))
        .collect();
    while let Some((id, why)) = work.pop() {
        let Some(item) = graph.get(&id).map(|r| r.item.clone()) else {
            continue;
        };
        let homes: Vec<ResourceId> = graph
            .deps(&id)
            .into_iter()
            .filter(|(_, d)| *d == crate::graph::Dep::LivesIn)
            .map(|(h, _)| h.clone())
            .collect();
        for home in homes {
            let Some(mut r) = graph.get(&home).cloned() else {
                continue;
            };
            if r.item == item && r.tainted.is_none() {
                r.tainted = Some(why.clone());
                graph.insert(r);
                work.push((home, why.clone()));
            }
        }
    }
}

impl Observation {
    /// Each recorded resource's receipt, for the executor.
    pub fn receipts(&self) -> BTreeMap<ResourceId, serde_json::Value> {
        self.entries
            .iter()
            .map(|e| (e.resource.id.clone(), e.receipt.clone()))
            .collect()
    }

    /// Whether the lab has anything on record.
    pub fn exists(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The lab's status as its kinds report it.
    pub fn status(&self) -> LabStatus {
        let mut out = LabStatus::new(&self.lab.name);
        for e in &self.entries {
            kinds::report(&self.lab, &e.resource, &e.receipt, &e.seen, &mut out);
        }
        out.settle();
        out
    }
}
