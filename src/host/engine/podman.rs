//! podman's settings for the containers cloonix runs: the host's own containers.conf, with
//! only what this host needs changed, in a file of cloonix's passed through
//! `CONTAINERS_CONF` (podman then reads that file alone). `/etc` is never edited; on a host
//! that needs nothing changed, podman reads its own files as usual.
//!
//! What a host may need:
//! * `default_ulimits = []`: podman asks for 1048576 open files and processes by default;
//!   where the hard limits are lower and cloonix may not raise them (no CAP_SYS_RESOURCE),
//!   every container would fail to start. With none, containers get podman's own limits.
//! * `runtime = "runc"`: crun 1.8 refuses hosts whose cgroups are not all cgroup2 (the v1/v2
//!   hybrid of many CI machines); runc runs there, with cgroup v1 limits enforced.

use super::super::{HostError, Result, io};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where cloonix keeps its podman settings, and where podman runs.
const DIR: &str = "/var/lib/cloonix/podman";

/// What `default_ulimits` of podman's would ask for.
const PODMAN_NOFILE: u64 = 1_048_576;

/// The files podman reads when `CONTAINERS_CONF` is not set, later ones over earlier ones.
const SYSTEM_FILES: [&str; 2] = [
    "/usr/share/containers/containers.conf",
    "/etc/containers/containers.conf",
];
const DROP_IN_DIR: &str = "/etc/containers/containers.conf.d";

pub struct Conf {
    /// cloonix's containers.conf, when the host needs one.
    pub file: Option<PathBuf>,
    /// A directory of cloonix's to run podman in.
    pub dir: PathBuf,
    /// Whether it runs containers with runc (which must then be installed).
    pub runc: bool,
}

/// What this host needs changed, worked out and written once per process.
pub fn conf() -> Result<&'static Conf> {
    static CONF: OnceLock<std::result::Result<Conf, String>> = OnceLock::new();
    CONF.get_or_init(|| make().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| HostError::Other(e.clone()))
}

/// podman is usable here: what it needs to run is installed.
pub fn check() -> Result<()> {
    if conf()?.runc && super::super::process::which("runc").is_none() {
        return Err(HostError::Missing {
            program: "runc".into(),
            package: "runc",
        });
    }
    Ok(())
}

fn make() -> Result<Conf> {
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).map_err(io(format!("create {DIR}")))?;
    let limits = low_limits();
    let runc = !unified_cgroups();
    if !limits && !runc {
        return Ok(Conf {
            file: None,
            dir,
            runc,
        });
    }
    let mut table = system_settings()?;
    let section = |t: &mut toml::Table, name: &str| -> toml::Table {
        match t.remove(name) {
            Some(toml::Value::Table(s)) => s,
            _ => toml::Table::new(),
        }
    };
    if limits {
        let mut containers = section(&mut table, "containers");
        containers.insert("default_ulimits".into(), toml::Value::Array(Vec::new()));
        table.insert("containers".into(), containers.into());
    }
    if runc {
        let mut engine = section(&mut table, "engine");
        engine.insert("runtime".into(), "runc".into());
        table.insert("engine".into(), engine.into());
    }
    let text = format!(
        "# Written by cloonix for the containers it has podman run: the host's settings, with\n\
         # {}.\n{}",
        [
            limits.then_some("no default ulimits (the host's hard limits are lower)"),
            runc.then_some("runc as the runtime (crun refuses this host's cgroups)"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and "),
        toml::to_string(&table).map_err(|e| HostError::Other(format!("containers.conf: {e}")))?
    );
    let file = dir.join("containers.conf");
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        let tmp = dir.join(format!(".containers.conf.{}", std::process::id()));
        std::fs::write(&tmp, &text).map_err(io("write cloonix's containers.conf"))?;
        std::fs::rename(&tmp, &file).map_err(io("write cloonix's containers.conf"))?;
    }
    Ok(Conf {
        file: Some(file),
        dir,
        runc,
    })
}

/// The host's containers.conf files merged as podman merges them: a key of a later file
/// replaces that key of an earlier one, table by table.
fn system_settings() -> Result<toml::Table> {
    let mut files: Vec<PathBuf> = SYSTEM_FILES.iter().map(PathBuf::from).collect();
    if let Ok(dir) = std::fs::read_dir(DROP_IN_DIR) {
        let mut drop_ins: Vec<PathBuf> = dir
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        drop_ins.sort();
        files.extend(drop_ins);
    }
    let mut merged = toml::Table::new();
    for f in files.iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(f).map_err(io(format!("read {}", f.display())))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| HostError::Other(format!("{}: {e}", f.display())))?;
        merge(&mut merged, table);
    }
    Ok(merged)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Whether podman's default ulimits are beyond what cloonix may give a container.
fn low_limits() -> bool {
    let hard = |r| {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a struct we own.
        match unsafe { libc::getrlimit(r, &mut l) } {
            0 => l.rlim_max,
            _ => 0,
        }
    };
    let low = hard(libc::RLIMIT_NOFILE) < PODMAN_NOFILE || hard(libc::RLIMIT_NPROC) < PODMAN_NOFILE;
    low && !has_cap_sys_resource()
}

fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Whether `/sys/fs/cgroup` is one cgroup2 hierarchy.
fn unified_cgroups() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let Ok(c) = std::ffi::CString::new("/sys/fs/cgroup") else {
        return false;
    };
    // SAFETY: statfs into a zeroed struct we own, on a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_replace_keys_table_by_table() {
        let mut a: toml::Table = "[containers]\ndefault_capabilities = [\"CHOWN\"]\nx = 1\n[engine]\nruntime = \"crun\"\n"
            .parse()
            .unwrap();
        let b: toml::Table = "[containers]\nx = 2\n".parse().unwrap();
        merge(&mut a, b);
        assert_eq!(a["containers"]["x"].as_integer(), Some(2));
        assert_eq!(
            a["containers"]["default_capabilities"][0].as_str(),
            Some("CHOWN")
        );
        assert_eq!(a["engine"]["runtime"].as_str(), Some("crun"));
    }
}
