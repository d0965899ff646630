//! "This lab on this host": the names and places of everything a lab makes, in one value
//! that the drivers and the observer take. Nothing here touches the host; it only says
//! where things are.

use super::{RUN_ROOT, STATE_ROOT, ovs};
use crate::graph::names;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Lab {
    pub name: String,
    /// Runtime files: sockets, records, the OVS database. Removed by `destroy`.
    pub run: PathBuf,
    /// What takes room on disk: containers' writable layers (later, VM overlays). Kept off
    /// `/run`, a small tmpfs on most hosts. Removed by `destroy`.
    pub state: PathBuf,
    /// The whole lab is going: its namespaces and OVS database go at the end, so objects
    /// inside them need not be taken out one by one.
    pub tearing_down: bool,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
        // Its name becomes paths under /run and /var/lib as root: never `..`, never a `/`.
        // Callers check what users type and say so; this is the line nothing crosses.
        assert!(crate::model::is_name(name), "not a lab name: {name:?}");
        Lab {
            name: name.to_string(),
            run: PathBuf::from(RUN_ROOT).join(name),
            state: PathBuf::from(STATE_ROOT).join(name),
            tearing_down: false,
        }
    }

    /// The switch namespace, where the OVS daemons and bridges live.
    pub fn switch_ns(&self) -> String {
        names::switch_ns(&self.name)
    }

    /// An endpoint's network namespace.
    pub fn endpoint_ns(&self, endpoint: &str) -> String {
        names::endpoint_ns(&self.name, endpoint)
    }

    /// The mark on every interface cloonix makes in the host's namespace (its alias):
    /// nothing there is changed or deleted without it.
    pub fn mark(&self, endpoint: &str) -> String {
        format!("cloonix:{}:{endpoint}", self.name)
    }

    /// crun's id of an endpoint's container.
    pub fn container_id(&self, endpoint: &str) -> String {
        format!("{}.{endpoint}", self.name)
    }

    pub fn ovs_dir(&self) -> PathBuf {
        self.run.join("ovs")
    }

    pub fn crun_root(&self) -> PathBuf {
        self.run.join("crun")
    }

    pub fn intent_dir(&self) -> PathBuf {
        self.run.join("intent")
    }

    /// An endpoint's files on disk: its root filesystem's layers and OCI bundle.
    pub fn endpoint_dir(&self, endpoint: &str) -> PathBuf {
        self.state.join("ep").join(endpoint)
    }

    /// A connection to the lab's OVSDB.
    pub fn db(&self) -> super::Result<ovs::Ovsdb> {
        ovs::Ovsdb::connect(&self.ovs_dir())
    }
}
