//! Containers held in cgroup v1 hierarchies that cloonix manages itself, on hosts whose
//! cgroups crun 1.8 refuses (a v1/v2 hybrid, as on this project's development and CI
//! machines): crun runs there with `--cgroup-manager=disabled`, so without this a
//! container could fork until the host has no pid left, allocate until the host's OOM
//! killer acts, and open any device node it could make.
//!
//! Each container gets a directory `cloonix/LAB/ENDPOINT` in the `pids`, `memory`, `cpu`
//! and `devices` hierarchies, made and limited before anything runs in it:
//! * `pids.max` [`PIDS_PER_CONTAINER`], and [`PIDS_PER_LAB`] on `cloonix/LAB`;
//! * `memory.limit_in_bytes` from `ram`, `cpu.cfs_quota_us` from `cpu`;
//! * Docker's device allow-list (any node may be made, only harmless ones opened).
//!
//! Every process cloonix starts in the container (crun's `run` and each `crun exec`)
//! joins them between fork and exec, through `cgroup.procs` files opened before the fork,
//! so no process of the container ever runs outside them.

use super::DeviceRule;
use crate::host::process::Identity;
use crate::host::{Result, io};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Processes a container may have at once: far above what a lab's daemons need, far below
/// what would starve the host (Debian's default `pid_max` is 32,768 on small machines).
pub const PIDS_PER_CONTAINER: u32 = 1024;
/// Processes a whole lab may have at once.
pub const PIDS_PER_LAB: u32 = 8192;

/// The controllers cloonix uses, each a hierarchy of its own or shared (`cpu,cpuacct`).
const CONTROLLERS: [&str; 4] = ["pids", "memory", "cpu", "devices"];

/// Where each controller's hierarchy is mounted, in [`CONTROLLERS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchies([PathBuf; 4]);

/// The mount points of the four controllers, from `/proc/self/mounts`; None unless all
/// four are mounted as cgroup v1, writable (inside a container they are often read-only:
/// containers then run without cgroups, and say so, rather than fail to start).
pub fn detect() -> Option<Hierarchies> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let found = |controller: &str| {
        mounts.lines().find_map(|line| {
            let mut f = line.split(' ');
            let (_, at, kind, opts) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let mut opts = opts.split(',');
            (kind == "cgroup" && opts.clone().any(|o| o == "rw") && opts.any(|o| o == controller))
                .then(|| PathBuf::from(at))
        })
    };
    let [a, b, c, d] = CONTROLLERS.map(found);
    Some(Hierarchies([a?, b?, c?, d?]))
}

/// What a container's cgroups hold it to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
    /// Every device may be opened (a `privileged` container).
    pub all_devices: bool,
}

impl Hierarchies {
    fn lab(&self, i: usize, lab: &str) -> PathBuf {
        self.0[i].join("cloonix").join(lab)
    }

    fn dir(&self, i: usize, lab: &str, endpoint: &str) -> PathBuf {
        self.lab(i, lab).join(endpoint)
    }

    /// Makes the container's cgroups with their limits; one left by an interrupted apply
    /// is limited again.
    pub fn create(&self, lab: &str, endpoint: &str, l: &Limits) -> Result<()> {
        for i in 0..CONTROLLERS.len() {
            make_dir(&self.dir(i, lab, endpoint))?;
        }
        let [pids, memory, cpu, devices] = [0, 1, 2, 3].map(|i| self.dir(i, lab, endpoint));
        // All labs together keep half the host's pids.
        write(
            &self.0[0].join("cloonix").join("pids.max"),
            &all_labs_pids().to_string(),
        )?;
        write(
            &self.lab(0, lab).join("pids.max"),
            &PIDS_PER_LAB.to_string(),
        )?;
        write(&pids.join("pids.max"), &PIDS_PER_CONTAINER.to_string())?;
        // -1 lifts a limit an earlier spec of the same endpoint set. With swap, memsw
        // holds memory and swap together (it can never be below the memory limit: it is
        // written after the memory limit when that is set, before when it is lifted).
        let ram = l
            .ram
            .map_or("-1".into(), |mib| (u64::from(mib) << 20).to_string());
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        let swap = memsw.exists();
        if swap && l.ram.is_none() {
            write(&memsw, &ram)?;
        }
        write(&memory.join("memory.limit_in_bytes"), &ram)?;
        if swap && l.ram.is_some() {
            write(&memsw, &ram)?;
        }
        write(&cpu.join("cpu.cfs_period_us"), "100000")?;
        let quota = l.cpu.map_or("-1".into(), |c| {
            ((c * 100_000.0).round() as i64).to_string()
        });
        write(&cpu.join("cpu.cfs_quota_us"), &quota)?;
        // `a` in devices.deny empties the list (allowed only in a cgroup without
        // children, which these are); then the allow-list, one rule per write.
        if l.all_devices {
            write(&devices.join("devices.allow"), "a")?;
        } else {
            write(&devices.join("devices.deny"), "a")?;
            for rule in &super::DEVICES {
                write(&devices.join("devices.allow"), &rule_text(rule))?;
            }
        }
        Ok(())
    }

    /// The container's `cgroup.procs` files, opened now for a process to join between
    /// fork and exec; all of them or an error (half-joined, a process would escape some
    /// of its limits).
    pub fn procs(&self, lab: &str, endpoint: &str) -> Result<Vec<OwnedFd>> {
        (0..CONTROLLERS.len())
            .map(|i| {
                let path = self.dir(i, lab, endpoint).join("cgroup.procs");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(io(format!("open {}", path.display())))
            })
            .collect()
    }

    /// Removes the container's cgroups, and the lab's and cloonix's directories when they
    /// are empty. What is still in them (a `crun exec` left running) is killed first: only
    /// cloonix puts processes there.
    pub fn remove(&self, lab: &str, endpoint: &str) -> Result<()> {
        let dirs: Vec<(&Path, PathBuf)> = (0..CONTROLLERS.len())
            .map(|i| (self.0[i].as_path(), self.dir(i, lab, endpoint)))
            .collect();
        let left = remove_cgroups(&dirs);
        self.remove_parents(lab);
        left
    }

    /// Removes every cgroup of the lab (after its processes are gone, but for strays).
    pub fn sweep(&self, lab: &str) -> Result<()> {
        let dirs: Vec<(&Path, PathBuf)> = (0..CONTROLLERS.len())
            .flat_map(|i| {
                std::fs::read_dir(self.lab(i, lab))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .map(move |p| (self.0[i].as_path(), p))
            })
            .collect();
        let left = remove_cgroups(&dirs);
        self.remove_parents(lab);
        left
    }

    /// Whether any cgroup of the lab is left.
    pub fn any(&self, lab: &str) -> bool {
        (0..CONTROLLERS.len()).any(|i| self.lab(i, lab).exists())
    }

    fn remove_parents(&self, lab: &str) {
        for i in 0..CONTROLLERS.len() {
            let _ = std::fs::remove_dir(self.lab(i, lab));
            let _ = std::fs::remove_dir(self.0[i].join("cloonix"));
        }
    }
}

/// Half of the host's `pid_max`: what all labs together may have.
fn all_labs_pids() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(16_384, |max| max / 2)
}

/// Kills what is left in the cgroups (each with its hierarchy's mount point), then
/// removes them; an error names those that stay.
fn remove_cgroups(dirs: &[(&Path, PathBuf)]) -> Result<()> {
    for (mount, dir) in dirs {
        kill_members(mount, dir);
    }
    let left: Vec<String> = dirs
        .iter()
        .filter(|(_, d)| !remove_dir(d))
        .map(|(_, d)| d.display().to_string())
        .collect();
    match left.is_empty() {
        true => Ok(()),
        false => Err(crate::host::HostError::Other(format!(
            "cgroups still busy: {}",
            left.join(", ")
        ))),
    }
}

/// SIGKILL to each process in the cgroup: known by pid and start time, and still a member
/// when read again after (a pid reused meanwhile is another process, not a member).
fn kill_members(mount: &Path, dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    // As /proc/PID/cgroup names it: `N:pids:/cloonix/LAB/ENDPOINT`.
    let Some(rel) = dir
        .strip_prefix(mount)
        .ok()
        .and_then(Path::to_str)
        .map(|r| format!(":/{r}\n"))
    else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let Some(id) = Identity::of(pid) else {
            continue;
        };
        let member =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&rel));
        if member {
            id.kill_now();
        }
    }
}

/// Has the process started by `cmd` join the cgroups whose `cgroup.procs` are `fds`
/// before it runs anything (writing 0 moves the writer).
pub fn join_in_child(cmd: &mut Command, fds: Vec<OwnedFd>) {
    // SAFETY: between fork and exec only write(2) runs, on descriptors this closure owns.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                if libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A v1 `devices.allow` line: `c 1:3 rwm`, `c *:* m`.
fn rule_text(r: &DeviceRule) -> String {
    let n = |x: Option<i64>| x.map_or("*".to_string(), |v| v.to_string());
    format!("{} {}:{} {}", r.kind, n(r.major), n(r.minor), r.access)
}

/// Makes a cgroup and its parents. Another lab's destroy may remove an empty parent
/// between the two, so a vanished parent is made again.
fn make_dir(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => last = Some(e),
            Err(e) => return Err(io(format!("create cgroup {}", dir.display()))(e)),
        }
    }
    Err(io(format!("create cgroup {}", dir.display()))(
        last.expect("tried"),
    ))
}

fn write(file: &Path, value: &str) -> Result<()> {
    std::fs::write(file, value).map_err(io(format!("write {value:?} to {}", file.display())))
}

/// Removes a cgroup (true when it is gone), waiting a little for processes that are
/// exiting to leave it.
fn remove_dir(dir: &Path) -> bool {
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            r => return r.is_ok(),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_read_as_v1_writes_them() {
        let texts: Vec<String> = super::super::DEVICES.iter().map(rule_text).collect();
        assert_eq!(texts[0], "c *:* m");
        assert!(texts.contains(&"c 1:3 rwm".to_string()));
        assert!(texts.contains(&"c 136:* rwm".to_string()));
        assert!(
            texts
                .iter()
                .all(|t| !t.starts_with("b ") || t.ends_with(" m"))
        );
    }
}
