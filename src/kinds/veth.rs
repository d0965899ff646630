//! A veth pair from an endpoint's namespace, or from the host's (a tap), to the switch
//! namespace, where its other end is a port of a lan.
//!
//! An end in the host's namespace is the lab's only if it carries the lab's mark (alias
//! `cloonix:<lab>:<endpoint>`): a name taken by anything else is refused before anything
//! is touched (preflight) and again at creation, and nothing unmarked is ever changed or
//! deleted there. That end is made in a transient namespace of the lab's, marked, then
//! moved out under its final name.

use super::{Facts, HostView, Needs, Refusal, Seen, StepCx};
use crate::graph::{Netns, Resource, ResourceId, Veth};
use crate::host::link::{self, End, HostEnd};
use crate::host::{HostError, Lab, Result, netns};
use crate::status::{Health, LabStatus};

pub struct Driver;

fn inner(lab: &Lab, v: &Veth) -> End {
    End {
        ns: match &v.ns {
            Netns::Host => None,
            Netns::Endpoint(e) => Some(lab.endpoint_ns(e)),
        },
        name: v.ifname.clone(),
    }
}

fn outer(lab: &Lab, v: &Veth) -> End {
    End {
        ns: Some(lab.switch_ns()),
        name: v.peer.clone(),
    }
}

impl super::Driver for Driver {
    type Spec = Veth;
    type Receipt = ();

    fn preflight(lab: &Lab, host: &HostView, _r: &Resource, v: &Veth) -> Vec<Refusal> {
        if v.ns != Netns::Host {
            return Vec::new();
        }
        let mark = lab.mark(&v.endpoint);
        let mut out = Vec::new();
        if let Some(l) = host.links.get(&v.ifname)
            && l.alias.as_deref() != Some(mark.as_str())
        {
            out.push(Refusal::new(
                "name",
                format!(
                    "host interface `{}` exists and is not this lab's; choose another `name`",
                    v.ifname
                ),
            ));
        }
        out.extend(overlaps(host, &mark, v).into_iter().map(|m| Refusal {
            field: Some("ip"),
            message: m,
            host_item: true,
        }));
        out
    }

    fn create(cx: &StepCx, v: &Veth) -> Result<()> {
        let (lab, inner, outer) = (cx.lab, inner(cx.lab, v), outer(cx.lab, v));
        if inner.ns.is_some() {
            return link::create_veth(&inner, &outer, v.mac, &v.ips, v.mtu);
        }
        // A namespace of the lab's to make the host end in, for this step only.
        let staging = lab.endpoint_ns(&v.endpoint);
        netns::add(&staging)?;
        let mark = lab.mark(&v.endpoint);
        let made = link::create_host_veth(
            &HostEnd {
                name: &v.ifname,
                mark: &mark,
                staging: &staging,
                mac: v.mac,
                ips: &v.ips,
            },
            &outer,
            v.mtu,
            link::deaf_to_the_lab,
        );
        netns::del(&staging)?;
        made
    }

    fn update(cx: &StepCx, before: &Veth, v: &Veth, _r: ()) -> Result<()> {
        link::update(
            &inner(cx.lab, v),
            &before.ifname,
            &outer(cx.lab, v),
            v.mac,
            v.mtu,
            &before.ips,
            &v.ips,
            &cx.lab.mark(&v.endpoint),
        )
    }

    fn destroy(cx: &StepCx, v: &Veth, _r: ()) -> Result<()> {
        let inner = inner(cx.lab, v);
        match &inner.ns {
            // Going with the namespaces anyway.
            Some(_) if cx.lab.tearing_down => Ok(()),
            Some(_) => {
                link::delete_owned(&outer(cx.lab, v))?;
                link::delete_owned(&inner)
            }
            // The host end goes now, also when the whole lab goes: a namespace's removal
            // finishes later than destroy would return.
            None => {
                link::delete_owned(&outer(cx.lab, v))?;
                link::delete_marked(&v.ifname, &cx.lab.mark(&v.endpoint))
            }
        }
    }

    fn needs(lab: &Lab, v: &Veth, n: &mut Needs) {
        n.links.insert(Some(lab.switch_ns()));
        n.links.insert(inner(lab, v).ns);
    }

    fn observe(lab: &Lab, facts: &Facts, _id: &ResourceId, v: &mut Veth, _r: &()) -> Seen {
        let inner = inner(lab, v);
        let peer = facts.link(Some(&lab.switch_ns()), &v.peer);
        let state = facts.link(inner.ns.as_deref(), &v.ifname);
        let mark = lab.mark(&v.endpoint);
        match (state, peer) {
            (Some(s), Some(_)) if inner.ns.is_some() || s.alias.as_deref() == Some(&mark) => {
                v.mac = s.mac.unwrap_or(v.mac);
                v.mtu = s.mtu;
                // Only the addresses cloonix set count: one that a daemon or a `run`
                // command added is not drift.
                v.ips.retain(|ip| s.ips.contains(ip));
                Seen::Present
            }
            _ => Seen::Gone,
        }
    }

    fn report(_lab: &Lab, _r: &Resource, v: &Veth, _rc: &(), seen: &Seen, out: &mut LabStatus) {
        let ep = out.endpoint(&v.endpoint);
        if v.ns == Netns::Host {
            ep.kind = "tap".into();
        }
        let state = match seen {
            Seen::Present | Seen::Tainted(_) => Health::Up,
            Seen::Gone => {
                ep.problems.push(format!("interface {} is gone", v.iface));
                Health::Missing
            }
        };
        let iface = ep.interface(&v.iface);
        iface.state = state;
        iface.mac = Some(v.mac.to_string());
        iface.ips = v.ips.iter().map(|c| c.to_string()).collect();
    }

    /// Host veths carrying a tap's mark of this lab, `cloonix:<lab>:<endpoint>` exactly;
    /// those of endpoints' namespaces go with the namespaces. Nothing else is deleted here:
    /// a borrowed interface's mark (one field longer) is the phy kind's to give back.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let prefix = format!("cloonix:{}:", lab.name);
        let marked = match link::host_marked(&prefix) {
            Ok(m) => m,
            Err(e) => return vec![("host interfaces".into(), e)],
        };
        marked
            .into_iter()
            .filter(|(_, l)| {
                let endpoint = l.alias.as_deref().and_then(|a| a.strip_prefix(&prefix));
                l.veth && endpoint.is_some_and(|e| !e.is_empty() && !e.contains(':'))
            })
            .filter_map(|(name, l)| {
                let mark = l.alias.unwrap_or_default();
                link::delete_marked(&name, &mark)
                    .err()
                    .map(|e| (format!("host interface {name}"), e))
            })
            .collect()
    }
}

/// Address space that no public route leads to: private (RFC 1918, unique local), shared
/// (RFC 6598), link-local, and reserved for documentation and benchmarks.
const PRIVATE_SPACE: [&str; 12] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "198.18.0.0/15",
    "fc00::/7",
    "fe80::/10",
    "2001:db8::/32",
];

/// The tap's addresses that overlap an address or route the host has already (its own,
/// from an earlier apply, do not count; nor does a default route, which every address is
/// under): each would change how the host reaches that network.
fn overlaps(host: &HostView, mark: &str, v: &Veth) -> Vec<String> {
    let own: Option<u32> = host
        .links
        .values()
        .find(|l| l.alias.as_deref() == Some(mark))
        .map(|l| l.index);
    let foreign = |index: Option<u32>| index.is_none() || index != own;
    let mut out = Vec::new();
    for ip in &v.ips {
        let net = ip.0.trunc();
        // Every address is under a default route, so overlapping routes cannot tell a
        // harmless network from `8.8.8.1/24` or `128.0.0.1/1`: the host's traffic to those
        // would go into the lab. Only address space nobody routes publicly goes unasked.
        if !PRIVATE_SPACE
            .iter()
            .any(|p| p.parse::<ipnet::IpNet>().is_ok_and(|p| p.contains(&net)))
        {
            out.push(format!(
                "tap address {ip} is not in private address space: the host's traffic to {net} would go into the lab"
            ));
            continue;
        }
        let addr = host
            .links
            .iter()
            .filter(|(_, l)| foreign(Some(l.index)))
            .flat_map(|(name, l)| l.ips.iter().map(move |a| (name, a)))
            .find(|(_, a)| net.contains(&a.0.addr()) || a.0.trunc().contains(&ip.0.addr()));
        if let Some((name, a)) = addr {
            out.push(format!(
                "tap address {ip} overlaps {a} of host interface {name}"
            ));
            continue;
        }
        let route = host
            .routes
            .iter()
            .filter(|(r, oif)| r.prefix_len() > 0 && foreign(*oif))
            .find(|(r, _)| r.contains(&net.network()) || net.contains(&r.network()));
        if let Some((r, _)) = route {
            out.push(format!("tap address {ip} overlaps the host's route to {r}"));
        }
    }
    out
}
