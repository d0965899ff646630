//! veth pairs between a namespace (an endpoint's, or the host's) and the lab's switch
//! namespace: made straight in their namespaces, addressed, offload off, and read back with
//! one dump per namespace.
//!
//! All of it is rtnetlink in process (`netlink.rs`), each request sent from a thread inside
//! the namespace concerned: no process per interface.

use super::{Result, io, netns};
use crate::model::units::{Cidr, Mac};
use std::collections::BTreeMap;

/// One end of a veth: where it lives and what it is called there.
#[derive(Debug, Clone)]
pub struct End {
    /// The namespace; None is the host's.
    pub ns: Option<String>,
    pub name: String,
}

/// Creates the pair `inner` ↔ `outer`, both ends up, offload off, `inner` with its MAC
/// and addresses. A leftover of an interrupted apply under the same names is replaced.
pub fn create_veth(inner: &End, outer: &End, mac: Mac, ips: &[Cidr], mtu: u32) -> Result<()> {
    let what = format!("create veth {} ↔ {}", inner.name, outer.name);
    let _ = delete(inner);
    let _ = delete(outer);
    // One netlink request makes both ends, each straight in its namespace.
    let open = |ns: &Option<String>| -> Result<Option<std::fs::File>> {
        ns.as_ref()
            .map(|n| std::fs::File::open(netns::path(n)).map_err(io(format!("open namespace {n}"))))
            .transpose()
    };
    let (a_ns, b_ns) = (open(&inner.ns)?, open(&outer.ns)?);
    use std::os::fd::AsRawFd;
    super::netlink::create_veth(
        &inner.name,
        a_ns.as_ref().map(|f| f.as_raw_fd()),
        &outer.name,
        b_ns.as_ref().map(|f| f.as_raw_fd()),
        mtu,
    )
    .map_err(io(&what))?;
    let (name, ips, w) = (inner.name.clone(), ips.to_vec(), what.clone());
    in_ns(&inner.ns, move || {
        super::netlink::configure(&name, Some(mac), &ips).map_err(io(&w))?;
        netns::tx_checksum_off(&name)
    })?;
    let name = outer.name.clone();
    in_ns(&outer.ns, move || {
        super::netlink::configure(&name, None, &[]).map_err(io(&what))?;
        netns::tx_checksum_off(&name)
    })
}

/// Runs `f` in namespace `ns` (None: here).
fn in_ns(ns: &Option<String>, f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    match ns {
        Some(ns) => netns::within(ns, f),
        None => f(),
    }
}

/// Changes what can change on a running interface: its name, MAC, MTU and addresses; the
/// peer follows the MTU.
#[allow(clippy::too_many_arguments)]
pub fn update(
    end: &End,
    old_name: &str,
    peer: &End,
    mac: Mac,
    mtu: u32,
    old_ips: &[Cidr],
    ips: &[Cidr],
) -> Result<()> {
    let what = format!("update interface {}", end.name);
    let remove: Vec<Cidr> = old_ips
        .iter()
        .filter(|ip| !ips.contains(ip))
        .copied()
        .collect();
    let add: Vec<Cidr> = ips
        .iter()
        .filter(|ip| !old_ips.contains(ip))
        .copied()
        .collect();
    let (old, new, w) = (old_name.to_string(), end.name.clone(), what.clone());
    in_ns(&end.ns, move || {
        super::netlink::update(&old, &new, Some(mac), mtu, &remove, &add).map_err(io(&w))
    })?;
    let name = peer.name.clone();
    in_ns(&peer.ns, move || {
        super::netlink::update(&name, &name, None, mtu, &[], &[]).map_err(io(&what))
    })
}

/// Deletes a link (and with it its veth peer); one that is gone is fine.
pub fn delete(end: &End) -> Result<()> {
    if let Some(ns) = &end.ns
        && !netns::exists(ns)
    {
        return Ok(());
    }
    let name = end.name.clone();
    in_ns(&end.ns, move || {
        super::netlink::delete(&name).map_err(io("delete link"))
    })
}

/// What the kernel says about one interface.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub ips: Vec<Cidr>,
    pub alias: Option<String>,
}

/// Every interface of a namespace (None: the host's): one rtnetlink dump, in process.
pub fn dump(ns: Option<&str>) -> Result<BTreeMap<String, LinkState>> {
    let read = || super::netlink::interfaces().map_err(io("read interfaces"));
    match ns {
        Some(ns) => netns::within(ns, read),
        None => read(),
    }
}
