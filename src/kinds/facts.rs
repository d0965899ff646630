//! Everything observe reads from the host, read once and in batches before any resource
//! is checked: the lab's namespaces, one OVSDB transaction, one link dump per namespace
//! (in parallel, each on a thread inside its namespace), one read of the mount table.
//! The kinds say what they need ([`Needs`]); nothing is read that no kind asked for.

use crate::host::link;
use crate::host::netlink::Link;
use crate::host::{Lab, netns, ovs, rootfs};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What the kinds of a lab's records ask observe to read.
#[derive(Debug, Default)]
pub struct Needs {
    /// The bridges and ports of the lab's OVSDB.
    pub ovsdb: bool,
    /// The interfaces of these namespaces (None: the host's).
    pub links: BTreeSet<Option<String>>,
    /// The mount table.
    pub mounts: bool,
}

/// What the host said.
#[derive(Debug, Default)]
pub struct Facts {
    /// The lab's namespaces that exist (bound, not a bare file).
    pub namespaces: BTreeSet<String>,
    /// The lab's bridges and their ports; None when the database did not answer.
    pub bridges: Option<BTreeMap<String, ovs::BridgeRow>>,
    /// Interfaces by namespace (None: the host's) and name; a namespace that could not
    /// be read is absent.
    pub links: BTreeMap<Option<String>, BTreeMap<String, Link>>,
    pub mounts: BTreeSet<PathBuf>,
}

impl Facts {
    pub fn read(lab: &Lab, needs: &Needs) -> Facts {
        let prefix = lab.switch_ns();
        let namespaces: BTreeSet<String> = netns::list(&prefix)
            .into_iter()
            .filter(|n| *n == prefix || n.starts_with(&format!("{prefix}_")))
            .filter(|n| netns::exists(n))
            .collect();
        let bridges = if needs.ovsdb {
            lab.db().and_then(|mut db| ovs::dump(&mut db)).ok()
        } else {
            None
        };
        let wanted: Vec<Option<String>> = needs
            .links
            .iter()
            .filter(|ns| ns.as_ref().is_none_or(|n| namespaces.contains(n)))
            .cloned()
            .collect();
        let links = std::thread::scope(|s| {
            let handles: Vec<_> = wanted
                .chunks(wanted.len().div_ceil(16).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|ns| Some((ns.clone(), link::dump(ns.as_deref()).ok()?)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mounts = if needs.mounts {
            rootfs::mounts().into_iter().collect()
        } else {
            BTreeSet::new()
        };
        Facts {
            namespaces,
            bridges,
            links,
            mounts,
        }
    }

    /// Interface `name` of namespace `ns` (None: the host's).
    pub fn link(&self, ns: Option<&str>, name: &str) -> Option<&Link> {
        self.links.get(&ns.map(String::from))?.get(name)
    }
}
