//! Reads a lab back from the host into a graph: the intent cloonix recorded, each resource
//! checked against the real object in batched reads (one OVSDB transaction, one link dump
//! per namespace, one scan of crun's state, one read of the mount table). A resource whose
//! object is gone is left out (drift, which apply restores); attributes the host can tell
//! (MAC, MTU, addresses, a port's bridge, a file's content) are taken from the host.
//! Only objects cloonix recorded are looked at: everything else on the host is foreign.

use crate::apply::Context;
use crate::graph::names::{endpoint_ns, switch_ns};
use crate::graph::{Graph, Netns, Resource, Spec};
use crate::host::{crun, intent, link, netns, ovs};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The observed lab (empty when it does not exist).
pub fn observe(lab: &str) -> Graph {
    let cx = Context::new(lab);
    let records = intent::read_all(&cx.dirs);
    let mut g = Graph::new(lab);
    if records.is_empty() {
        return g;
    }
    let facts = Facts::read(&cx, &records);
    let mut kept = BTreeSet::new();
    for rec in &records {
        if let Some(r) = facts.check(&cx, &rec.resource) {
            kept.insert(r.id.clone());
            g.insert(r);
        }
    }
    for rec in &records {
        for (to, dep) in &rec.deps {
            if kept.contains(&rec.resource.id) && kept.contains(to) {
                g.depend(&rec.resource.id, to, *dep);
            }
        }
    }
    g
}

/// Everything observe needs from the host, read once.
struct Facts {
    namespaces: BTreeSet<String>,
    ovs_running: bool,
    bridges: BTreeMap<String, ovs::BridgeRow>,
    links: BTreeMap<Option<String>, BTreeMap<String, link::LinkState>>,
    mounts: BTreeSet<PathBuf>,
}

impl Facts {
    fn read(cx: &Context, records: &[intent::Record]) -> Facts {
        let namespaces: BTreeSet<String> = netns::list(&switch_ns(&cx.lab))
            .into_iter()
            .filter(|n| netns::exists(n))
            .collect();
        let ovs_running = ovs::running(&cx.dirs);
        let bridges = if ovs_running {
            ovs::Ovsdb::connect(&cx.dirs)
                .and_then(|mut db| ovs::dump(&mut db))
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        // The namespaces whose links matter, each dumped once, in parallel.
        let mut wanted: BTreeSet<Option<String>> = BTreeSet::new();
        for r in records {
            if let Spec::Port(_) = &r.resource.spec {
                wanted.insert(Some(switch_ns(&cx.lab)));
            }
            if let Spec::Veth(v) = &r.resource.spec {
                wanted.insert(Some(switch_ns(&cx.lab)));
                wanted.insert(match &v.ns {
                    Netns::Host => None,
                    Netns::Endpoint(e) => Some(endpoint_ns(&cx.lab, e)),
                });
            }
        }
        let wanted: Vec<Option<String>> = wanted
            .into_iter()
            .filter(|ns| ns.as_ref().is_none_or(|n| namespaces.contains(n)))
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
        Facts {
            namespaces,
            ovs_running,
            bridges,
            links,
            mounts: crun::mounts().into_iter().collect(),
        }
    }

    fn link(&self, ns: Option<String>, name: &str) -> Option<&link::LinkState> {
        self.links.get(&ns)?.get(name)
    }

    /// The resource as it really is, or None when its object is gone.
    fn check(&self, cx: &Context, recorded: &Resource) -> Option<Resource> {
        let mut r = recorded.clone();
        let name = r.id.name.clone();
        let present = match &mut r.spec {
            Spec::SwitchNs => self.namespaces.contains(&switch_ns(&cx.lab)),
            Spec::Ovs => self.ovs_running,
            Spec::Bridge { mtu, .. } => match self.bridges.get(&name) {
                Some(row) if row.owner.as_deref() == Some(&recorded.id.to_string()) => {
                    if let Some(m) = row.mtu {
                        *mtu = m;
                    }
                    true
                }
                _ => false,
            },
            Spec::EndpointNs { .. } => self.namespaces.contains(&endpoint_ns(&cx.lab, &name)),
            Spec::Veth(v) => {
                let inner_ns = match &v.ns {
                    Netns::Host => None,
                    Netns::Endpoint(e) => Some(endpoint_ns(&cx.lab, e)),
                };
                let peer = self.link(Some(switch_ns(&cx.lab)), &v.peer);
                match (self.link(inner_ns, &v.ifname), peer) {
                    (Some(state), Some(_)) => {
                        v.mac = state.mac.unwrap_or(v.mac);
                        v.mtu = state.mtu;
                        // Only the addresses cloonix set count: one that a daemon or a
                        // `run` command added is not drift.
                        v.ips.retain(|ip| state.ips.contains(ip));
                        true
                    }
                    _ => false,
                }
            }
            Spec::Port(p) => {
                let on = self
                    .bridges
                    .iter()
                    .find(|(_, b)| b.ports.contains_key(&p.ifname));
                // A port whose device vanished is no port: the datapath does not take a
                // new device of the same name back by itself.
                let device = self.link(Some(switch_ns(&cx.lab)), &p.ifname).is_some();
                match on {
                    Some((bridge, _)) if device => {
                        p.lan = bridge.clone();
                        true
                    }
                    _ => false,
                }
            }
            Spec::Rootfs(_) => self.mounts.contains(&cx.paths(&name).merged()),
            Spec::File(f) => match crun::read_file(&cx.paths(&f.endpoint).merged(), &f.path) {
                Some(content) => {
                    f.content = content;
                    true
                }
                None => false,
            },
            Spec::Container(_) => {
                crun::pid(&cx.dirs.crun_root(), &cx.container_id(&name)).is_some()
            }
            _ => true,
        };
        present.then_some(r)
    }
}
