//! veth pairs between a namespace (an endpoint's, or the host's) and the lab's switch
//! namespace: made straight in their namespaces, addressed, offload off, and read back with
//! one dump per namespace.
//!
//! This goes through iproute2 (`ip -batch`, `ip -json`): one process per namespace and
//! step, each one netlink conversation. An in-process rtnetlink client is the next step.

use super::{HostError, Result, io, netns};
use crate::model::units::{Cidr, Mac};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `ip -batch -` in namespace `ns` (None: the host's), one command per line.
pub fn batch(ns: Option<&str>, lines: &[String], what: &str) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::Missing {
                program: "ip".into(),
                package: "iproute2",
            },
            _ => io(what)(e),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(lines.join("\n").as_bytes())
        .and_then(|_| stdin.write_all(b"\n"))
        .map_err(io(what))?;
    drop(stdin);
    let out = child.wait_with_output().map_err(io(what))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HostError::Command {
            what: what.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

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

/// Changes what can change on a running interface: its name, MAC, MTU and addresses.
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
    let mut lines = Vec::new();
    if old_name != end.name {
        lines.push(format!("link set dev {old_name} down"));
        lines.push(format!("link set dev {old_name} name {}", end.name));
    }
    lines.push(format!(
        "link set dev {} address {mac} mtu {mtu} up",
        end.name
    ));
    for ip in old_ips.iter().filter(|ip| !ips.contains(ip)) {
        lines.push(format!("address del {ip} dev {}", end.name));
    }
    for ip in ips.iter().filter(|ip| !old_ips.contains(ip)) {
        lines.push(format!("address add {ip} dev {}", end.name));
    }
    batch(end.ns.as_deref(), &lines, &what)?;
    batch(
        peer.ns.as_deref(),
        &[format!("link set dev {} mtu {mtu}", peer.name)],
        &what,
    )
}

/// Deletes a link (and with it its veth peer); one that is gone is fine.
pub fn delete(end: &End) -> Result<()> {
    if let Some(ns) = &end.ns
        && !netns::exists(ns)
    {
        return Ok(());
    }
    match batch(
        end.ns.as_deref(),
        &[format!("link del dev {}", end.name)],
        "delete link",
    ) {
        Err(HostError::Command { stderr, .. }) if stderr.contains("Cannot find device") => Ok(()),
        other => other,
    }
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
