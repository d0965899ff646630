//! Whether crun can hold containers in cgroups of their own on this host, and where.
//!
//! With cgroups a container gets a device allow-list (so it may be given MKNOD: a node it
//! makes of anything else cannot be opened) and its `cpu`/`ram` limits. crun 1.8 uses them
//! only on a unified cgroup2 hierarchy, and needs CAP_SYS_RESOURCE for the BPF program
//! that holds the device list. Where either is missing (this project's development and CI
//! machines: a v1/v2 hybrid, no CAP_SYS_RESOURCE), containers run without, and `apply`
//! and `status` say so.

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
    /// Why not.
    Unusable(String),
}

fn detect() -> Support {
    let Ok(c) = std::ffi::CString::new(ROOT) else {
        return Support::Unusable("no cgroup hierarchy".into());
    };
    // SAFETY: statfs into a zeroed struct we own, on a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let unified = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0
        && st.f_type as i64 == CGROUP2_SUPER_MAGIC;
    if !unified {
        return Support::Unusable(
            "its cgroups are a v1 or v1/v2 hybrid layout, which crun refuses".into(),
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    if effective & (1 << CAP_SYS_RESOURCE) == 0 {
        return Support::Unusable(
            "cloonix lacks CAP_SYS_RESOURCE, which crun needs for a device filter".into(),
        );
    }
    Support::Unified
}

/// What this host offers, found once.
pub fn support() -> &'static Support {
    static FOUND: OnceLock<Support> = OnceLock::new();
    FOUND.get_or_init(detect)
}

pub fn usable() -> bool {
    *support() == Support::Unified
}

/// What `apply` and `status` say where cgroups cannot be used.
pub fn unusable_note() -> Option<String> {
    match support() {
        Support::Unified => None,
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

/// Removes a container's cgroup once its processes are gone (crun's delete would; cloonix
/// removes crun's state itself), and the lab's when it is empty.
pub fn remove(lab: &str, endpoint: &str) {
    let _ = std::fs::remove_dir(dir(lab).join(endpoint));
    let _ = std::fs::remove_dir(dir(lab));
}

/// Removes every cgroup of the lab's (after its processes are gone).
pub fn sweep(lab: &str) {
    if let Ok(entries) = std::fs::read_dir(dir(lab)) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir(lab));
}

/// The OCI resources of a container: Docker's device list (any node may be made, only the
/// harmless ones opened) and its limits.
pub fn resources(cpu: Option<f64>, ram: Option<u32>) -> Value {
    let dev = |t: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = json!({"allow": true, "type": t, "access": access});
        if let Some(m) = major {
            d["major"] = m.into();
        }
        if let Some(m) = minor {
            d["minor"] = m.into();
        }
        d
    };
    let devices = vec![
        json!({"allow": false, "access": "rwm"}),
        dev("c", None, None, "m"),
        dev("b", None, None, "m"),
        dev("c", Some(1), Some(3), "rwm"),
        dev("c", Some(1), Some(5), "rwm"),
        dev("c", Some(1), Some(7), "rwm"),
        dev("c", Some(1), Some(8), "rwm"),
        dev("c", Some(1), Some(9), "rwm"),
        dev("c", Some(5), Some(0), "rwm"),
        dev("c", Some(5), Some(1), "rwm"),
        dev("c", Some(5), Some(2), "rwm"),
        dev("c", Some(136), None, "rwm"),
        dev("c", Some(10), Some(200), "rwm"),
    ];
    let mut r = json!({"devices": devices});
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
