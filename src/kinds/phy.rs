//! A real host interface borrowed into the lab: moved into the switch namespace and
//! attached to a lan, and given back to the host (its name, MTU, addresses, alias and
//! up/down state) when it is removed, before its namespace goes. Needs `--allow-host`.
//!
//! What is given back is recorded before the interface moves, so an apply killed between
//! the two still leaves the lab knowing how to give it back; and its alias, while the lab
//! has it, says whose it is and what it was called, for a sweep without a record.

use super::{Facts, HostView, Needs, Refusal, Seen, StepCx};
use crate::graph::{PhySpec, Resource, ResourceId};
use crate::host::netlink::{self, Change};
use crate::host::{HostError, Lab, Result, io, netns};
use crate::model::units::Cidr;
use crate::status::{Health, LabStatus};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::AsFd;

/// The interface as the host had it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Borrowed {
    pub name: String,
    pub mtu: u32,
    pub up: bool,
    pub alias: Option<String>,
    pub ips: Vec<Cidr>,
}

pub struct Driver;

/// The alias it carries while the lab has it: the lab's mark and its own name.
fn mark(lab: &Lab, endpoint: &str, device: &str) -> String {
    format!("{}:{device}", lab.mark(endpoint))
}

/// Moves interface `name` of the switch namespace back to the host as `to`, restoring
/// what `b` says of it.
fn give_back(lab: &Lab, name: &str, to: &str, b: &Borrowed) -> Result<()> {
    let what = format!("give {to} back to the host");
    let host = netns::host()?;
    let (name, to_name, w) = (name.to_string(), to.to_string(), what.clone());
    netns::within(&lab.switch_ns(), move || {
        let Some(index) = netlink::index_of(&name) else {
            return Ok(());
        };
        let down = Change {
            up: Some(false),
            ..Default::default()
        };
        netlink::set(index, &down).map_err(io(&w))?;
        let out = Change {
            name: Some(&to_name),
            netns: Some(host.as_fd()),
            ..Default::default()
        };
        netlink::set(index, &out).map_err(io(&w))
    })?;
    let index = netlink::index_of(to)
        .ok_or_else(|| HostError::Other(format!("{what}: it is not on the host")))?;
    let restore = Change {
        mtu: Some(b.mtu),
        alias: Some(b.alias.as_deref().unwrap_or("")),
        ..Default::default()
    };
    netlink::set(index, &restore).map_err(io(&what))?;
    for ip in &b.ips {
        netlink::add_address(index, ip).map_err(io(&what))?;
    }
    netlink::set(
        index,
        &Change {
            up: Some(b.up),
            ..Default::default()
        },
    )
    .map_err(io(&what))
}

impl super::Driver for Driver {
    type Spec = PhySpec;
    type Receipt = Option<Borrowed>;

    fn preflight(lab: &Lab, host: &HostView, r: &Resource, s: &PhySpec) -> Vec<Refusal> {
        let ours = mark(lab, &r.id.name, &s.device);
        let borrowed = host.switch_links.contains_key(&s.ifname);
        match host.links.get(&s.device) {
            _ if borrowed => Vec::new(),
            None => vec![Refusal::new(
                "device",
                format!("host interface `{}` does not exist", s.device),
            )],
            Some(_) if s.device == "lo" => vec![Refusal::new(
                "device",
                "the host's loopback cannot be borrowed",
            )],
            Some(l) => match l.alias.as_deref() {
                Some(a) if a.starts_with("cloonix:") && a != ours => vec![Refusal::new(
                    "device",
                    format!("host interface `{}` belongs to cloonix ({a})", s.device),
                )],
                _ => Vec::new(),
            },
        }
    }

    fn create(cx: &StepCx, s: &PhySpec) -> Result<Option<Borrowed>> {
        let lab = cx.lab;
        let what = format!("borrow host interface {}", s.device);
        let inside =
            |name: String| netns::within(&lab.switch_ns(), move || Ok(netlink::index_of(&name)));
        // Already in the lab: an earlier apply moved it and its record went astray; what
        // the host had is not known any more beyond its name.
        let mut receipt = Some(Borrowed {
            name: s.device.clone(),
            mtu: 1500,
            ..Default::default()
        });
        if inside(s.ifname.clone())?.is_none() {
            let link = netlink::interfaces()
                .map_err(io(&what))?
                .remove(&s.device)
                .ok_or_else(|| HostError::Other(format!("{what}: it does not exist")))?;
            receipt = Some(Borrowed {
                name: s.device.clone(),
                mtu: link.mtu,
                up: link.up,
                alias: link.alias.clone().filter(|a| !a.is_empty()),
                ips: link.ips.clone(),
            });
            // Recorded before it moves: from here on the lab knows how to give it back.
            // Nothing of it is changed on the host's side: it moves first (the kernel takes
            // it down as it goes), so a device that cannot move (a bridge, a bond) is refused
            // untouched, and one killed half-way is either untouched or in the lab.
            cx.checkpoint(&receipt)?;
            let switch = File::open(netns::path(&lab.switch_ns())).map_err(io(&what))?;
            netlink::set(
                link.index,
                &Change {
                    name: Some(&s.ifname),
                    netns: Some(switch.as_fd()),
                    ..Default::default()
                },
            )
            .map_err(io(&what))?;
        }
        let (name, mtu) = (s.ifname.clone(), s.mtu);
        let tag = mark(lab, cx.name(), &s.device);
        netns::within(&lab.switch_ns(), move || {
            let index = netlink::index_of(&name)
                .ok_or_else(|| HostError::Other(format!("{what}: it vanished")))?;
            let up = Change {
                alias: Some(&tag),
                mtu: Some(mtu),
                up: Some(true),
                ..Default::default()
            };
            netlink::set(index, &up).map_err(io(&what))?;
            // Offload off: the kernel checksums in software what leaves through it.
            let _ = netns::tx_checksum_off(&name);
            Ok(())
        })?;
        Ok(receipt)
    }

    fn update(
        cx: &StepCx,
        _before: &PhySpec,
        s: &PhySpec,
        r: Option<Borrowed>,
    ) -> Result<Option<Borrowed>> {
        let (name, mtu, what) = (s.ifname.clone(), s.mtu, format!("update {}", s.device));
        netns::within(&cx.lab.switch_ns(), move || {
            let index = netlink::index_of(&name)
                .ok_or_else(|| HostError::Other(format!("{what}: it is not in the lab")))?;
            let change = Change {
                mtu: Some(mtu),
                ..Default::default()
            };
            netlink::set(index, &change).map_err(io(&what))
        })?;
        Ok(r)
    }

    /// Given back also when the whole lab goes: its namespace's removal would leave it on
    /// the host under the lab's name for it, without its addresses.
    fn destroy(cx: &StepCx, s: &PhySpec, r: Option<Borrowed>) -> Result<()> {
        let b = r.unwrap_or_else(|| Borrowed {
            name: s.device.clone(),
            mtu: s.mtu,
            up: false,
            alias: None,
            ips: Vec::new(),
        });
        give_back(cx.lab, &s.ifname, &b.name, &b)
    }

    fn needs(lab: &Lab, _s: &PhySpec, n: &mut Needs) {
        n.links.insert(Some(lab.switch_ns()));
    }

    fn observe(
        lab: &Lab,
        facts: &Facts,
        _id: &ResourceId,
        s: &mut PhySpec,
        _r: &Option<Borrowed>,
    ) -> Seen {
        match facts.link(Some(&lab.switch_ns()), &s.ifname) {
            Some(l) => {
                s.mtu = l.mtu;
                Seen::Present
            }
            None => Seen::Gone,
        }
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        s: &PhySpec,
        _rc: &Option<Borrowed>,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = "phy".into();
        if *seen == Seen::Gone {
            ep.problems
                .push(format!("host interface {} is not in the lab", s.device));
            ep.state = ep.state.max(Health::Down);
        }
    }

    /// Interfaces in the switch namespace that carry this lab's phy mark, given back under
    /// the name the mark keeps (their addresses, unrecorded, are not restored).
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let prefix = format!("cloonix:{}:", lab.name);
        let Ok(links) = crate::host::link::dump(Some(&lab.switch_ns())) else {
            return Vec::new();
        };
        links
            .into_iter()
            .filter_map(|(name, l)| {
                let alias = l.alias?;
                let rest = alias.strip_prefix(&prefix)?;
                let (_, device) = rest.split_once(':')?;
                let b = Borrowed {
                    name: device.to_string(),
                    mtu: l.mtu,
                    up: false,
                    alias: None,
                    ips: Vec::new(),
                };
                give_back(lab, &name, device, &b)
                    .err()
                    .map(|e| (format!("borrowed interface {device}"), e))
            })
            .collect()
    }
}
