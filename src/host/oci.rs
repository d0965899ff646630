//! The OCI configuration of a container: what it may do to the host. A stranger's demo
//! runs in it, so a container that is not `privileged` is confined at least as tightly as
//! Docker's and podman's defaults:
//!
//! * capabilities: Docker's default set plus NET_ADMIN (to configure interfaces and run
//!   routing daemons), and MKNOD only where a device cgroup holds what a device node can
//!   reach; never SYS_ADMIN, SYS_PTRACE or SYS_MODULE;
//! * `/proc/sys` read-only but for `/proc/sys/net`, which belongs to the container's own
//!   network namespace (`sysctl -w net.ipv4.ip_forward=1` works and stays in it);
//! * the masked and read-only paths of Docker and podman together;
//! * Docker's default seccomp filter, resolved for these capabilities (and compiled to
//!   BPF once per run, for crun to load as it is);
//! * no new privileges, and a read-only sysfs.
//!
//! `privileged: true` (which needs `--allow-host`) lifts all of it.

use super::rootfs::Paths;
use super::{HostError, Result, seccomp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// The small init bound into every container as pid 1.
pub const INIT: &str = "/usr/bin/catatonit";

/// What a container is asked to be.
pub struct Spec<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub netns: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub sysctl: &'a BTreeMap<String, String>,
    pub privileged: bool,
    /// What holds it in cgroups (see cgroups/).
    pub cgroups: super::cgroups::Hold<'a>,
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
}

/// Docker's default capabilities but MKNOD (a device node is only harmless where a device
/// cgroup limits what it reaches: added where cgroups hold one), plus NET_ADMIN.
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    "CAP_NET_ADMIN",
];

/// Docker's masked paths and podman's, together.
const MASKED: [&str; 14] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/dev/block",
    "/sys/firmware",
    "/sys/fs/selinux",
];

const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Every capability cloonix itself may hand on (its bounding set), for a privileged
/// container: it cannot be given more, and asking for more makes crun fail.
fn all_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, n)| format!("CAP_{n}"))
        .collect()
}

/// The seccomp filter of every non-privileged container, resolved once per run of cloonix
/// (they all have the same capabilities: with MKNOD where cgroups hold, or without).
pub(crate) fn filter(
    mknod: bool,
) -> std::result::Result<&'static Value, &'static seccomp::SeccompError> {
    type Filter = std::sync::OnceLock<std::result::Result<Value, seccomp::SeccompError>>;
    static WITH: Filter = std::sync::OnceLock::new();
    static WITHOUT: Filter = std::sync::OnceLock::new();
    let (cell, extra) = match mknod {
        true => (&WITH, Some("CAP_MKNOD")),
        false => (&WITHOUT, None),
    };
    cell.get_or_init(|| {
        let caps: Vec<&str> = CAPS.iter().copied().chain(extra).collect();
        seccomp::for_container(&caps)
    })
    .as_ref()
}

/// The base64 BPF program of `filter(mknod)`, compiled once per run of cloonix and handed to
/// crun in the annotation `run.oci.seccomp_bpf_data`, so that `crun run` does not compile
/// the profile again for each container (see seccomp/bpf.rs for the cost and for what crun
/// does with it). `None` where libseccomp could not compile it: crun then compiles the
/// `linux.seccomp` section itself, as it did before, and the filter is the same.
fn filter_bpf(mknod: bool) -> Option<&'static str> {
    static WITH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    static WITHOUT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let cell = if mknod { &WITH } else { &WITHOUT };
    cell.get_or_init(|| {
        let section = filter(mknod).ok()?;
        seccomp::bpf::annotation(section)
            .map_err(|e| {
                eprintln!("cloonix: note: crun compiles the seccomp filter itself: {e}");
            })
            .ok()
    })
    .as_deref()
}

/// The environment every process of the container starts with.
pub fn env_list(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    out.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    out
}

/// The OCI configuration of a container.
pub fn config(p: &Paths, s: &Spec) -> Result<Value> {
    let caps: Vec<String> = if s.privileged {
        all_caps()
    } else {
        let mut caps: Vec<String> = CAPS.iter().map(|c| c.to_string()).collect();
        if s.cgroups.holds() {
            caps.push("CAP_MKNOD".into());
        }
        caps
    };
    let sysfs = if s.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sysfs}),
        json!({"destination": "/.cloonix/init", "type": "bind", "source": INIT, "options": ["bind", "ro"]}),
    ];
    let mut linux = json!({
        "namespaces": [
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "network", "path": s.netns.display().to_string()},
        ],
        "sysctl": s.sysctl,
    });
    if let super::cgroups::Hold::Crun(path) = &s.cgroups {
        linux["cgroupsPath"] = path.clone().into();
        let mut resources = super::cgroups::resources(s.cpu, s.ram);
        if s.privileged {
            resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
        }
        linux["resources"] = resources;
    }
    let mut annotations = serde_json::Map::new();
    if !s.privileged {
        // Made before /proc/sys turns read-only, and kept writable under it: the net
        // sysctls a process sees are those of its own network namespace.
        mounts.push(
            json!({"destination": "/proc/sys/net", "type": "bind", "source": "/proc/sys/net",
                           "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]}),
        );
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
        linux["seccomp"] = filter(s.cgroups.holds())
            .map_err(|e| HostError::Other(format!("container {}: {e}", s.id)))?
            .clone();
        // The section stays beside the program: crun still reads its flags from it, and
        // a runtime that does not know the annotation compiles it as before.
        if let Some(bpf) = filter_bpf(s.cgroups.holds()) {
            annotations.insert(seccomp::bpf::ANNOTATION.into(), bpf.into());
        }
    }
    let mut config = json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/.cloonix/init", "-P"],
            "env": env_list(s.env),
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": !s.privileged,
        },
        "root": {"path": p.merged().display().to_string(), "readonly": false},
        "hostname": s.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    if !annotations.is_empty() {
        config["annotations"] = annotations.into();
    }
    Ok(config)
}
