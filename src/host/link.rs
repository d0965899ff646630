//! veth pairs between a namespace (an endpoint's, or the host's) and the lab's switch
//! namespace: made straight in their namespaces, addressed, and read back with
//! one dump per namespace. Every request is rtnetlink in process, sent from a thread
//! inside the namespace concerned.
//!
//! The host's namespace is not the lab's: an interface there is changed or deleted only if
//! it carries the lab's mark (its alias), and a name that is taken there is never freed to
//! make room. An end bound for the host is made in a namespace of the lab's, marked there,
//! and moved out under its final name in one request, which fails, moving nothing, if the
//! name is taken: so no unmarked interface of cloonix's ever stands in the host.

use super::netlink::{self, Change, Link};
use super::{HostError, Result, io, netns};
use crate::model::units::{Cidr, Mac};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;

/// One end of a veth: where it lives and what it is called there.
#[derive(Debug, Clone)]
pub struct End {
    /// The namespace; None is the host's.
    pub ns: Option<String>,
    pub name: String,
}

/// Runs `f` in namespace `ns` (None: the host's, on this thread).
fn in_ns<T: Send + 'static>(
    ns: &Option<String>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match ns {
        Some(ns) => netns::within(ns, f),
        None => f(),
    }
}

fn open_ns(name: &str) -> Result<File> {
    File::open(netns::path(name)).map_err(io(format!("open namespace {name}")))
}

/// Sets an interface of the calling thread's namespace up with its MAC and addresses.
/// Offloads stay on: the kernel datapath handles them, and the userspace one runs with
/// TSO (see `host::ovs`), which carries whole 64 KiB segments instead of wire frames.
fn configure(name: &str, mac: Option<Mac>, ips: &[Cidr]) -> Result<()> {
    let what = format!("configure {name}");
    let index = netlink::index_of(name)
        .ok_or_else(|| HostError::Other(format!("{what}: no such interface")))?;
    netlink::set(
        index,
        &Change {
            mac,
            up: Some(true),
            ..Default::default()
        },
    )
    .map_err(io(&what))?;
    for ip in ips {
        netlink::add_address(index, ip).map_err(io(&what))?;
    }
    Ok(())
}

/// Creates the pair `inner` ↔ `outer`, both in namespaces of the lab, both up,
/// `inner` with its MAC and addresses. A leftover of an interrupted apply under the same
/// names is replaced: inside the lab's own namespaces, those names are the lab's.
pub fn create_veth(inner: &End, outer: &End, mac: Mac, ips: &[Cidr], mtu: u32) -> Result<()> {
    let (Some(inner_ns), Some(outer_ns)) = (&inner.ns, &outer.ns) else {
        return Err(HostError::Other(format!(
            "{}: an end in the host's namespace is made by create_host_veth",
            inner.name
        )));
    };
    let what = format!("create veth {} ↔ {}", inner.name, outer.name);
    delete_owned(inner)?;
    delete_owned(outer)?;
    let (a, b) = (open_ns(inner_ns)?, open_ns(outer_ns)?);
    netlink::create_veth(
        &inner.name,
        Some(a.as_fd()),
        &outer.name,
        Some(b.as_fd()),
        mtu,
    )
    .map_err(io(&what))?;
    let (name, ips) = (inner.name.clone(), ips.to_vec());
    in_ns(&inner.ns, move || configure(&name, Some(mac), &ips))?;
    let name = outer.name.clone();
    in_ns(&outer.ns, move || configure(&name, None, &[]))
}

/// What the host end of a pair is, besides its name.
pub struct HostEnd<'a> {
    pub name: &'a str,
    /// The lab's mark, set as its alias.
    pub mark: &'a str,
    /// The lab's namespace it is made in before it moves to the host.
    pub staging: &'a str,
    pub mac: Mac,
    pub ips: &'a [Cidr],
}

/// Creates a pair with one end in the host's namespace, marked. A host interface of that
/// name is refused (or, if it carries this very mark, is a leftover of an interrupted
/// apply and is replaced). `prepare` runs on the host end in the host's namespace before
/// it comes up (per-interface sysctls, say).
pub fn create_host_veth(
    host: &HostEnd,
    outer: &End,
    mtu: u32,
    prepare: impl FnOnce(&str) -> Result<()>,
) -> Result<()> {
    let Some(outer_ns) = &outer.ns else {
        return Err(HostError::Other("a host veth's peer is in the lab".into()));
    };
    let what = format!("create host interface {}", host.name);
    if let Some(existing) = host_link(host.name)? {
        if existing.alias.as_deref() != Some(host.mark) {
            return Err(taken(host.name));
        }
        netlink::delete(existing.index).map_err(io(&what))?;
    }
    let staged = End {
        ns: Some(host.staging.to_string()),
        name: host.name.to_string(),
    };
    delete_owned(&staged)?;
    delete_owned(outer)?;
    let (a, b) = (open_ns(host.staging)?, open_ns(outer_ns)?);
    netlink::create_veth(
        host.name,
        Some(a.as_fd()),
        &outer.name,
        Some(b.as_fd()),
        mtu,
    )
    .map_err(io(&what))?;
    // Marked, then moved out under its own name: the move fails if the name is taken
    // meanwhile, and then the pair stays in the lab, where it is removed.
    let to_host = netns::host()?;
    let (name, mark, w) = (host.name.to_string(), host.mark.to_string(), what.clone());
    let moved = netns::within(host.staging, move || {
        let index = netlink::index_of(&name)
            .ok_or_else(|| HostError::Other(format!("{w}: it vanished")))?;
        netlink::set(
            index,
            &Change {
                alias: Some(&mark),
                ..Default::default()
            },
        )
        .map_err(io(&w))?;
        netlink::set(
            index,
            &Change {
                netns: Some(to_host.as_fd()),
                ..Default::default()
            },
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => taken(&name),
            _ => io(&w)(e),
        })
    });
    if let Err(e) = moved {
        let _ = delete_owned(outer);
        return Err(e);
    }
    prepare(host.name)?;
    configure(host.name, Some(host.mac), host.ips)?;
    let name = outer.name.clone();
    in_ns(&outer.ns, move || configure(&name, None, &[]))
}

fn taken(name: &str) -> HostError {
    HostError::Other(format!(
        "host interface `{name}` exists and is not this lab's; cloonix leaves it alone"
    ))
}

/// The host's interface of that name, if there is one.
fn host_link(name: &str) -> Result<Option<Link>> {
    Ok(netlink::interfaces()
        .map_err(io("read the host's interfaces"))?
        .remove(name))
}

/// The host's interface `name` if it carries `mark`; an error if it is there without it.
fn marked_host_link(name: &str, mark: &str) -> Result<Option<Link>> {
    match host_link(name)? {
        Some(l) if l.alias.as_deref() == Some(mark) => Ok(Some(l)),
        Some(_) => Err(taken(name)),
        None => Ok(None),
    }
}

/// Changes what can change on a running interface: its name, MAC, MTU and addresses; the
/// peer follows the MTU. An end in the host's namespace must carry `mark`.
#[allow(clippy::too_many_arguments)]
pub fn update(
    end: &End,
    old_name: &str,
    peer: &End,
    mac: Mac,
    mtu: u32,
    old_ips: &[Cidr],
    ips: &[Cidr],
    mark: &str,
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
    if end.ns.is_none() {
        if old_name != end.name {
            return Err(HostError::Other(format!(
                "{what}: a host interface is made anew under a new name, not renamed"
            )));
        }
        if marked_host_link(old_name, mark)?.is_none() {
            return Err(HostError::Other(format!("{what}: it is gone")));
        }
    }
    let (old, new, w) = (old_name.to_string(), end.name.clone(), what.clone());
    in_ns(&end.ns, move || {
        let index = netlink::index_of(&old)
            .ok_or_else(|| HostError::Other(format!("{w}: no interface {old}")))?;
        if new != old {
            let down = Change {
                up: Some(false),
                ..Default::default()
            };
            netlink::set(index, &down).map_err(io(&w))?;
            let rename = Change {
                name: Some(&new),
                ..Default::default()
            };
            netlink::set(index, &rename).map_err(io(&w))?;
        }
        let change = Change {
            mac: Some(mac),
            mtu: Some(mtu),
            up: Some(true),
            ..Default::default()
        };
        netlink::set(index, &change).map_err(io(&w))?;
        for ip in &remove {
            netlink::del_address(index, ip).map_err(io(&w))?;
        }
        for ip in &add {
            netlink::add_address(index, ip).map_err(io(&w))?;
        }
        Ok(())
    })?;
    let name = peer.name.clone();
    in_ns(&peer.ns, move || {
        let index = netlink::index_of(&name)
            .ok_or_else(|| HostError::Other(format!("{what}: no peer {name}")))?;
        let change = Change {
            mtu: Some(mtu),
            ..Default::default()
        };
        netlink::set(index, &change).map_err(io(&what))
    })
}

/// Deletes a link in one of the lab's namespaces (and with it its veth peer); one that is
/// gone, or whose namespace is gone, is fine.
pub fn delete_owned(end: &End) -> Result<()> {
    let Some(ns) = &end.ns else {
        return Err(HostError::Other(format!(
            "{}: the host's interfaces are deleted by delete_marked",
            end.name
        )));
    };
    if !netns::exists(ns) {
        return Ok(());
    }
    let name = end.name.clone();
    netns::within(ns, move || match netlink::index_of(&name) {
        Some(index) => netlink::delete(index).map_err(io(format!("delete {name}"))),
        None => Ok(()),
    })
}

/// Deletes the host's interface `name` if it carries `mark`. One without the mark is not
/// the lab's (the lab's is gone, and someone else took the name) and is left alone; one
/// that is gone is fine. Deleted by index, as found with its mark, so that an interface
/// made anew under that name meanwhile is not touched.
pub fn delete_marked(name: &str, mark: &str) -> Result<()> {
    match host_link(name)? {
        Some(l) if l.alias.as_deref() == Some(mark) => {
            netlink::delete(l.index).map_err(io(format!("delete host interface {name}")))
        }
        Some(_) | None => Ok(()),
    }
}

/// The host's interfaces whose mark starts with `prefix`, with their marks.
pub fn host_marked(prefix: &str) -> Result<Vec<(String, Link)>> {
    Ok(netlink::interfaces()
        .map_err(io("read the host's interfaces"))?
        .into_iter()
        .filter(|(_, l)| l.alias.as_deref().is_some_and(|a| a.starts_with(prefix)))
        .collect())
}

/// Every interface of a namespace (None: the host's): one rtnetlink dump, in process.
pub fn dump(ns: Option<&str>) -> Result<BTreeMap<String, Link>> {
    let read = || netlink::interfaces().map_err(io("read interfaces"));
    match ns {
        Some(ns) => netns::within(ns, read),
        None => read(),
    }
}

/// The host's routes: destination and outgoing interface.
pub fn host_routes() -> Result<Vec<(ipnet::IpNet, Option<u32>)>> {
    netlink::routes().map_err(io("read the host's routes"))
}

/// Sets the sysctls that keep a host interface from taking orders from the lab: no router
/// advertisements, no address autoconfiguration, no redirects. Set before it comes up.
pub fn deaf_to_the_lab(name: &str) -> Result<()> {
    let set = |path: String| std::fs::write(&path, "0").map_err(io(format!("set {path}")));
    // A host without IPv6 has nothing to take from advertisements.
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        for key in ["accept_ra", "autoconf", "accept_redirects"] {
            set(format!("/proc/sys/net/ipv6/conf/{name}/{key}"))?;
        }
    }
    set(format!("/proc/sys/net/ipv4/conf/{name}/accept_redirects"))
}
