//! Interface addresses (`ip:` of an eth or a tap): each a host address of its subnet, given
//! once on its interface, and used by one interface only on its lan. A duplicate address
//! on a lan is the classic lab mistake that shows up only as pings that sometimes fail.

use super::super::units::Cidr;
use super::reader::Cx;
use crate::diag::Pos;
use crate::yaml::{Node, Value};
use ipnet::IpNet;
use std::net::IpAddr;

impl Cx {
    /// Reads `ip:`, one address or a list, of an interface on `lan` (`None` when the lan
    /// itself is in error); `None` when any address is invalid.
    pub(super) fn cidrs(&mut self, node: &Node, lan: Option<&str>) -> Option<Vec<Cidr>> {
        let nodes: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let lan = lan.and_then(|l| self.lans.get(l).copied());
        let mut cidrs = Vec::new();
        let mut here: Vec<(IpAddr, Pos)> = Vec::new();
        let mut ok = true;
        for n in nodes {
            let Some(cidr) = self.parse::<Cidr>(n, "address") else {
                ok = false;
                continue;
            };
            ok &= self.host_address(n.pos, &cidr.0);
            let addr = cidr.0.addr();
            if let Some((_, first)) = here.iter().find(|(a, _)| *a == addr) {
                self.err(
                    n.pos,
                    format!("address {addr} is given twice on this interface"),
                    format!("it is already given at line {}; keep one", first.line),
                );
                ok = false;
                continue;
            }
            here.push((addr, n.pos));
            if let Some(lan) = lan {
                ok &= self.claim(lan, addr, n.pos);
            }
            cidrs.push(cidr);
        }
        ok.then_some(cidrs)
    }

    /// An address of a subnet's own (its network address, or IPv4's broadcast) is not one
    /// a host can have: the kernel takes it, and the lab fails in ways hard to trace.
    /// /31 and /32 (and IPv6's /127 and /128) have no such addresses.
    fn host_address(&mut self, pos: Pos, net: &IpNet) -> bool {
        let what = match net {
            IpNet::V4(n) if n.prefix_len() < 31 && n.addr() == n.network() => "network",
            IpNet::V4(n) if n.prefix_len() < 31 && n.addr() == n.broadcast() => "broadcast",
            // IPv6 has no broadcast; its network address is the subnet-router anycast one.
            IpNet::V6(n) if n.prefix_len() < 127 && n.addr() == n.network() => "network",
            _ => return true,
        };
        let (first, last) = hosts(net);
        let len = net.prefix_len();
        self.err(
            pos,
            format!("{} is the {what} address of {}", net.addr(), net.trunc()),
            format!("a host's address there is from {first} to {last}, e.g. `{first}/{len}`"),
        );
        false
    }

    /// Takes `addr` on the lan numbered `lan`; false (and an error) when another interface
    /// has it already.
    pub(super) fn claim(&mut self, lan: usize, addr: IpAddr, pos: Pos) -> bool {
        let Some(first) = self.addresses.get(&(lan, addr)).copied() else {
            self.addresses.insert((lan, addr), pos);
            return true;
        };
        let name = match self.full() {
            true => String::new(),
            false => self
                .lans
                .iter()
                .find(|(_, id)| **id == lan)
                .map(|(n, _)| n.clone())
                .unwrap_or_default(),
        };
        self.err(
            pos,
            format!("address {addr} is already on lan `{name}`"),
            format!(
                "line {} gives it to another interface of this lan; each needs its own",
                first.line
            ),
        );
        false
    }
}

/// The first and last host address of a subnet with a network (and broadcast) address.
fn hosts(net: &IpNet) -> (IpAddr, IpAddr) {
    match net {
        IpNet::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            (
                IpAddr::from((lo + 1).to_be_bytes()),
                IpAddr::from((hi - 1).to_be_bytes()),
            )
        }
        IpNet::V6(n) => {
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            (
                IpAddr::from((lo + 1).to_be_bytes()),
                IpAddr::from(hi.to_be_bytes()),
            )
        }
    }
}
