//! veth pairs between a namespace (an endpoint's, or the host's) and the lab's switch
//! namespace: made straight in their namespaces, addressed, offload off, and read back with
//! one dump per namespace.
//!
//! This goes through iproute2 (`ip -batch`, `ip -json`): one process per namespace and
//! step, each one netlink conversation. An in-process rtnetlink client is the next step.

use super::{HostError, Result, io, netns};
use crate::model::units::{Cidr, Mac};
use serde::Deserialize;
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
    let place = |e: &End| match &e.ns {
        Some(ns) => format!(" netns {ns}"),
        None => String::new(),
    };
    batch(
        None,
        &[format!(
            "link add {}{} mtu {mtu} type veth peer name {}{} mtu {mtu}",
            inner.name,
            place(inner),
            outer.name,
            place(outer)
        )],
        &what,
    )?;
    let mut lines = vec![format!("link set dev {} address {mac} up", inner.name)];
    lines.extend(
        ips.iter()
            .map(|ip| format!("address add {ip} dev {}", inner.name)),
    );
    batch(inner.ns.as_deref(), &lines, &what)?;
    batch(
        outer.ns.as_deref(),
        &[format!("link set dev {} up", outer.name)],
        &what,
    )?;
    offload_off(inner)?;
    offload_off(outer)
}

fn offload_off(end: &End) -> Result<()> {
    let name = end.name.clone();
    match &end.ns {
        Some(ns) => netns::within(ns, move || netns::tx_checksum_off(&name)),
        None => netns::tx_checksum_off(&name),
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

#[derive(Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    ifalias: Option<String>,
    #[serde(default)]
    addr_info: Vec<IpAddr>,
}

#[derive(Deserialize)]
struct IpAddr {
    local: String,
    prefixlen: u8,
    #[serde(default)]
    scope: String,
}

/// Every interface of a namespace (None: the host's), in one dump.
pub fn dump(ns: Option<&str>) -> Result<BTreeMap<String, LinkState>> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = super::run(cmd.args(["-json", "address", "show"]), "read interfaces")?;
    let links: Vec<IpLink> =
        serde_json::from_str(&out).map_err(|e| HostError::Other(format!("ip -json: {e}")))?;
    Ok(links
        .into_iter()
        .map(|l| {
            let ips = l
                .addr_info
                .iter()
                .filter(|a| a.scope != "link")
                .filter_map(|a| format!("{}/{}", a.local, a.prefixlen).parse().ok())
                .collect();
            let state = LinkState {
                mac: l.address.as_deref().and_then(|m| m.parse().ok()),
                mtu: l.mtu,
                ips,
                alias: l.ifalias,
            };
            (l.ifname, state)
        })
        .collect())
}
