//! The plan at the level of the file's items (lab, lan, endpoint, interface), which is what
//! users read and count. Renames of interfaces are recognised here, for display only: the
//! steps stay what they are (each interface keeps its identity by name).

use super::{Op, Step, by_item};
use crate::graph::names::{derived_mac, iface_order};
use crate::graph::{Graph, Item, Resource, Spec};
use crate::model::units::{Cidr, Mac};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemOp {
    Create,
    Update,
    Replace,
    Destroy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemChange {
    pub item: Item,
    pub op: ItemOp,
    /// For an interface that takes the place of another: the name it had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// Why it is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What changes in it, one line each (settings, attributes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The steps that carry it out, as indices into the plan's steps.
    pub steps: Vec<usize>,
}

impl ItemChange {
    /// The lab line is shown but not counted: the summary counts lans, endpoints and
    /// interfaces.
    pub fn counted(&self) -> bool {
        self.item != Item::Lab
    }
}

pub fn summarize(steps: &[Step], desired: &Graph, observed: &Graph) -> Vec<ItemChange> {
    let want = by_item(desired);
    let have = by_item(observed);
    let mut grouped: BTreeMap<&Item, Vec<usize>> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        grouped.entry(&s.resource.item).or_default().push(i);
    }
    let mut out: Vec<ItemChange> = grouped
        .into_iter()
        .map(|(item, ix)| {
            let op = match (want.contains_key(item), have.contains_key(item)) {
                (true, false) => ItemOp::Create,
                (false, true) => ItemOp::Destroy,
                _ if ix.iter().any(|&i| steps[i].replace.is_some()) => ItemOp::Replace,
                _ => ItemOp::Update,
            };
            let reason = (op == ItemOp::Replace).then(|| reason(&ix, steps));
            let details = match op {
                ItemOp::Update => ix.iter().flat_map(|&i| detail(&steps[i])).collect(),
                _ => Vec::new(),
            };
            ItemChange {
                item: item.clone(),
                op,
                renamed_from: None,
                reason,
                details,
                steps: ix,
            }
        })
        .collect();
    find_renames(&mut out, (desired, &want), (observed, &have));
    out.sort_by_key(|c| (order_key(&c.item), c.op != ItemOp::Destroy));
    out
}

/// The root cause of a replacement: the attributes that changed, with their values, rather
/// than "its parent is replaced" or the internal instance hash that follows them.
fn reason(ix: &[usize], steps: &[Step]) -> String {
    let creates = || ix.iter().map(|&i| &steps[i]).filter(|s| s.op == Op::Create);
    let mut seen = BTreeSet::new();
    let direct: Vec<String> = creates()
        .flat_map(|s| &s.changes)
        .filter(|c| c.field != "instance" && seen.insert(c.field))
        .map(|c| format!("{} {} → {}", c.field, short(&c.from), short(&c.to)))
        .collect();
    if !direct.is_empty() {
        return direct.join(", ");
    }
    let whys: BTreeSet<&str> = creates().filter_map(|s| s.replace.as_deref()).collect();
    whys.into_iter().collect::<Vec<_>>().join("; ")
}

fn detail(s: &Step) -> Vec<String> {
    let what = match &s.resource.spec {
        Spec::File(f) => format!("file {}", f.path),
        _ => String::new(),
    };
    match s.op {
        Op::Create if !what.is_empty() => vec![format!("+ {what}")],
        Op::Destroy if !what.is_empty() => vec![format!("- {what}")],
        Op::Create | Op::Destroy => Vec::new(),
        Op::Update => s
            .changes
            .iter()
            .map(|c| match (c.field, what.is_empty()) {
                ("content", false) => format!("~ {what}: content changed"),
                (field, true) => format!("~ {field}: {} → {}", short(&c.from), short(&c.to)),
                (field, false) => {
                    format!("~ {what}: {field} {} → {}", short(&c.from), short(&c.to))
                }
            })
            .collect(),
    }
}

fn short(v: &str) -> String {
    const MAX: usize = 60;
    if v.chars().count() <= MAX {
        v.to_string()
    } else {
        format!("{}…", v.chars().take(MAX).collect::<String>())
    }
}

type Essence = (String, Vec<Cidr>, Option<Mac>);

/// What makes an interface the same interface under another name: its lan, its addresses,
/// and its MAC when one was given (a derived MAC follows the name).
fn essence(g: &Graph, rs: &[&Resource]) -> Option<Essence> {
    let mut lan = None;
    let mut addr = None;
    for r in rs {
        match &r.spec {
            Spec::Port(p) => lan = Some(p.lan.clone()),
            Spec::Veth(v) => {
                addr = Some((v.endpoint.clone(), v.iface.clone(), v.ips.clone(), v.mac))
            }
            Spec::Nic(n) => {
                addr = Some((n.endpoint.clone(), n.iface.clone(), n.ips.clone(), n.mac))
            }
            _ => {}
        }
    }
    let (ep, iface, ips, mac) = addr?;
    let explicit = (mac != derived_mac(&g.lab, &ep, &iface)).then_some(mac);
    Some((lan?, ips, explicit))
}

/// Pairs each changed interface of the file with a changed interface of the lab that has its
/// essence under another name, in order: removing `eth0` of three unnamed ones shows as
/// `eth1 → eth0` and `eth2 → eth1`, and one interface gone.
type Side<'g> = (&'g Graph, &'g HashMap<&'g Item, Vec<&'g Resource>>);

fn find_renames(out: &mut Vec<ItemChange>, (desired, want): Side, (observed, have): Side) {
    // Interfaces with changes, per endpoint; only endpoints that lose or change one can
    // have a rename.
    let mut per_endpoint: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, c) in out.iter().enumerate() {
        if let Item::Interface(e, n) = &c.item {
            per_endpoint.entry(e).or_default().push((i, n));
        }
    }
    let mut sources_used: BTreeSet<usize> = BTreeSet::new();
    let mut renames: Vec<(usize, usize)> = Vec::new();
    for changed in per_endpoint.values() {
        let sources: Vec<(usize, &str, Essence)> = changed
            .iter()
            .filter(|(i, _)| matches!(out[*i].op, ItemOp::Destroy | ItemOp::Update))
            .filter_map(|&(i, n)| Some((i, n, essence(observed, have.get(&out[i].item)?)?)))
            .collect();
        if sources.is_empty() {
            continue;
        }
        for &(di, dname) in changed {
            if !matches!(out[di].op, ItemOp::Create | ItemOp::Update) {
                continue;
            }
            let Some(want_ess) = want.get(&out[di].item).and_then(|rs| essence(desired, rs)) else {
                continue;
            };
            let source = sources.iter().find(|(oi, oname, ess)| {
                *oname != dname && !sources_used.contains(oi) && *ess == want_ess
            });
            if let Some((oi, _, _)) = source {
                sources_used.insert(*oi);
                renames.push((di, *oi));
            }
        }
    }
    let targets: BTreeSet<usize> = renames.iter().map(|(d, _)| *d).collect();
    let mut absorbed = BTreeSet::new();
    for &(d, o) in &renames {
        let Item::Interface(_, from) = out[o].item.clone() else {
            unreachable!()
        };
        out[d].renamed_from = Some(from);
        out[d].op = ItemOp::Update;
        out[d].details.clear();
        if targets.contains(&o) {
            continue;
        }
        // The old interface lives on under the new name; its own name is either free now
        // (nothing to show) or taken by a new interface.
        if want.contains_key(&out[o].item) {
            out[o].op = ItemOp::Create;
            out[o].details.clear();
        } else {
            let steps = std::mem::take(&mut out[o].steps);
            out[d].steps.extend(steps);
            absorbed.insert(o);
        }
    }
    for &(d, _) in &renames {
        // The name was taken over while its old self did not move: that one is gone.
        if have.contains_key(&out[d].item) && !sources_used.contains(&d) {
            out.push(ItemChange {
                item: out[d].item.clone(),
                op: ItemOp::Destroy,
                renamed_from: None,
                reason: None,
                details: Vec::new(),
                steps: Vec::new(),
            });
        }
    }
    let mut i = 0;
    out.retain(|_| {
        i += 1;
        !absorbed.contains(&(i - 1))
    });
}

fn order_key(item: &Item) -> (u8, String, (String, u64), u8) {
    match item {
        Item::Lab => (0, String::new(), (String::new(), 0), 0),
        Item::Lan(n) => (1, n.clone(), (String::new(), 0), 0),
        Item::Endpoint(e) => (2, e.clone(), (String::new(), 0), 0),
        Item::Interface(e, i) => (2, e.clone(), iface_order(i), 1),
    }
}
