//! Whether containers can be held in cgroups of their own on this host, and where.
//!
//! With cgroups a container gets a pids limit, a device allow-list (so it may be given
//! MKNOD: a node it makes of anything else cannot be opened) and its `cpu`/`ram` limits.
//! Two ways:
//! * a unified cgroup2 hierarchy and CAP_SYS_RESOURCE (for the BPF program that holds the
//!   device list): crun manages them (`--cgroup-manager=cgroupfs`);
//! * cgroup v1 hierarchies for pids, memory, cpu and devices, which crun 1.8 refuses (the
//!   v1/v2 hybrid of this project's development and CI machines): cloonix manages them
//!   itself ([`v1`]) and crun runs with `--cgroup-manager=disabled`.
//!
//! Where neither is there, containers run without, and `apply` and `status` say so.

pub mod v1;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CAP_SYS_RESOURCE: u32 = 24;

/// What this host offers.
#[derive(Debug, Clone, PartialEq)]
pub enum Support {
    /// A unified cgroup2 hierarchy that crun can manage.
    Unified,
    /// cgroup v1 hierarchies that cloonix manages.
    V1(v1::Hierarchies),
    /// Why neither.
    Unusable(String),
}

fn detect() -> Support {
    match detect_unified() {
        Ok(()) => Support::Unified,
        Err(why) => match v1::detect() {
            Some(h) => Support::V1(h),
            None => Support::Unusable(why),
        },
    }
}

/// Whether crun can manage cgroups here, or why not.
fn detect_unified() -> std::result::Result<(), String> {
    let Ok(c) = std::ffi::CString::new(ROOT) else {
        return Err("no cgroup hierarchy".into());
    };
    // SAFETY: statfs into a zeroed struct we own, on a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let unified = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0
        && st.f_type as i64 == CGROUP2_SUPER_MAGIC;
    if !unified {
        return Err(
            "its cgroups are a v1 or v1/v2 hybrid layout without the pids, memory, cpu and \
             devices hierarchies"
                .into(),
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    if effective & (1 << CAP_SYS_RESOURCE) == 0 {
        return Err("cloonix lacks CAP_SYS_RESOURCE, which crun needs for a device filter".into());
    }
    Ok(())
}

/// What this host offers, found once.
pub fn support() -> &'static Support {
    static FOUND: OnceLock<Support> = OnceLock::new();
    FOUND.get_or_init(detect)
}

/// Whether containers are held in cgroups: a pids limit, a device allow-list (and so
/// MKNOD), `cpu` and `ram` enforced.
pub fn held() -> bool {
    !matches!(support(), Support::Unusable(_))
}

/// What `apply` and `status` say where cgroups cannot be used.
pub fn unusable_note() -> Option<String> {
    match support() {
        Support::Unified | Support::V1(_) => None,
        Support::Unusable(why) => Some(format!(
            "containers run without cgroups here ({why}): no device allow-list, so they get \
             no MKNOD, and cpu/ram limits are not enforced"
        )),
    }
}

/// A container's cgroup, as crun's cgroupfs manager takes it.
pub fn path(lab: &str, endpoint: &str) -> String {
    format!("/cloonix/{lab}/{endpoint}")
}

fn dir(lab: &str) -> PathBuf {
    Path::new(ROOT).join("cloonix").join(lab)
}

/// What holds a container in cgroups.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold<'a> {
    /// Nothing: this host offers no cgroups that can be used.
    Nothing,
    /// crun, at this cgroups path.
    Crun(String),
    /// cloonix, in the container's v1 cgroups.
    Cloonix { lab: &'a str, endpoint: &'a str },
}

impl Hold<'_> {
    /// Whether the container is held: a pids limit and a device allow-list.
    pub fn holds(&self) -> bool {
        !matches!(self, Hold::Nothing)
    }
}

/// What holds the container `endpoint` of `lab` on this host.
pub fn hold<'a>(lab: &'a str, endpoint: &'a str) -> Hold<'a> {
    match support() {
        Support::Unified => Hold::Crun(path(lab, endpoint)),
        Support::V1(_) => Hold::Cloonix { lab, endpoint },
        Support::Unusable(_) => Hold::Nothing,
    }
}

/// Makes the container's cgroups where cloonix manages them (crun makes its own).
pub fn create(lab: &str, endpoint: &str, limits: &v1::Limits) -> crate::host::Result<()> {
    match support() {
        Support::V1(h) => h.create(lab, endpoint, limits),
        Support::Unified | Support::Unusable(_) => Ok(()),
    }
}

/// Has the process `cmd` starts join the container's cgroups (cloonix's own) before it
/// runs; an error where they cannot all be opened now (this process sees no v1
/// hierarchies, or the container's cgroups are gone).
pub fn join(cmd: &mut std::process::Command, lab: &str, endpoint: &str) -> crate::host::Result<()> {
    let Support::V1(h) = support() else {
        return Err(crate::host::HostError::Other(format!(
            "container {endpoint} is held in cgroups this cloonix cannot see"
        )));
    };
    v1::join_in_child(cmd, h.procs(lab, endpoint)?);
    Ok(())
}

/// Removes a container's cgroups once its processes are gone (crun's delete would; cloonix
/// removes crun's state itself), and the lab's when it is empty.
pub fn remove(lab: &str, endpoint: &str) -> crate::host::Result<()> {
    let _ = std::fs::remove_dir(dir(lab).join(endpoint));
    let _ = std::fs::remove_dir(dir(lab));
    match support() {
        Support::V1(h) => h.remove(lab, endpoint),
        Support::Unified | Support::Unusable(_) => Ok(()),
    }
}

/// Removes every cgroup of the lab's (after its processes are gone).
pub fn sweep(lab: &str) -> crate::host::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir(lab)) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir(lab));
    match support() {
        Support::V1(h) => h.sweep(lab),
        Support::Unified | Support::Unusable(_) => Ok(()),
    }
}

/// Whether any cgroup of the lab's is on this host.
pub fn any(lab: &str) -> bool {
    dir(lab).exists() || matches!(support(), Support::V1(h) if h.any(lab))
}

/// One rule of a device allow-list.
pub struct DeviceRule {
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: &'static str,
}

const fn rule(
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: &'static str,
) -> DeviceRule {
    DeviceRule {
        kind,
        major,
        minor,
        access,
    }
}

/// Docker's device allow-list: any node may be made, only these opened (null, zero, full,
/// random, urandom, tty, console, ptmx, the pty slaves, tun).
pub const DEVICES: [DeviceRule; 12] = [
    rule('c', None, None, "m"),
    rule('b', None, None, "m"),
    rule('c', Some(1), Some(3), "rwm"),
    rule('c', Some(1), Some(5), "rwm"),
    rule('c', Some(1), Some(7), "rwm"),
    rule('c', Some(1), Some(8), "rwm"),
    rule('c', Some(1), Some(9), "rwm"),
    rule('c', Some(5), Some(0), "rwm"),
    rule('c', Some(5), Some(1), "rwm"),
    rule('c', Some(5), Some(2), "rwm"),
    rule('c', Some(136), None, "rwm"),
    rule('c', Some(10), Some(200), "rwm"),
];

/// The OCI resources of a container: the device allow-list after a deny-all, the pids
/// limit and its `cpu`/`ram` limits.
pub fn resources(cpu: Option<f64>, ram: Option<u32>) -> Value {
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    for r in &DEVICES {
        let mut d = json!({"allow": true, "type": r.kind.to_string(), "access": r.access});
        if let Some(m) = r.major {
            d["major"] = m.into();
        }
        if let Some(m) = r.minor {
            d["minor"] = m.into();
        }
        devices.push(d);
    }
    let mut r = json!({"devices": devices, "pids": {"limit": v1::PIDS_PER_CONTAINER}});
    if let Some(mib) = ram {
        r["memory"] = json!({"limit": u64::from(mib) << 20});
    }
    if let Some(cpus) = cpu {
        r["cpu"] = json!({"quota": (cpus * 100_000.0).round() as i64, "period": 100_000});
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_deny_devices_but_the_harmless_ones() {
        let r = resources(Some(0.5), Some(64));
        assert_eq!(r["devices"][0], json!({"allow": false, "access": "rwm"}));
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        let opened: Vec<&Value> = r["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["access"] == "rwm" && d["allow"] == true)
            .collect();
        assert!(
            opened.iter().all(|d| d["type"] == "c"),
            "a block device may be opened"
        );
    }
}
