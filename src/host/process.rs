//! The one way cloonix starts, recognises and stops a long-lived process (ovsdb-server,
//! ovs-vswitchd, a container's init; qemu and the data-plane helpers later).
//!
//! A process is known by its [`Identity`]: pid and start time, recorded when cloonix
//! starts it. A pid alone is never trusted: pid files go stale and a pid is reused once its
//! process is gone, so a signal sent to a bare pid can hit an unrelated process. Every
//! signal goes through a pidfd opened first and checked against the recorded start time,
//! so it reaches the recorded process or nothing.

use super::{HostError, Result, io};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::Timespec;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process as cloonix recorded it: its pid and when it started (clock ticks since
/// boot, field 22 of `/proc/PID/stat`). Two processes never share both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: i32,
    pub start: u64,
}

/// What `/proc/PID/stat` says of a process: its start time and whether it has exited
/// (a zombie waits for whoever adopted it to reap it; it runs no more).
fn stat(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let zombie = fields.next()? == "Z";
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, zombie))
}

impl Identity {
    /// The process that has `pid` now, if one runs.
    pub fn of(pid: i32) -> Option<Identity> {
        match stat(pid)? {
            (start, false) => Some(Identity { pid, start }),
            (_, true) => None,
        }
    }

    /// Whether the recorded process still runs (and is not merely a reused pid).
    pub fn alive(&self) -> bool {
        stat(self.pid) == Some((self.start, false))
    }

    /// A pidfd on the recorded process, or None when it is gone. Opened before the start
    /// time is checked: from then on the pid cannot name another process for us.
    fn pidfd(&self) -> Option<OwnedFd> {
        let fd = pidfd_open(Pid::from_raw(self.pid)?, PidfdFlags::empty()).ok()?;
        self.alive().then_some(fd)
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`, and waits for it to exit.
    /// A process that is gone (or a pid now held by another process) is left alone.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        let Some(fd) = self.pidfd() else {
            return Ok(());
        };
        if !grace.is_zero() {
            let _ = pidfd_send_signal(&fd, Signal::TERM);
            if wait_exit(&fd, grace) {
                return Ok(());
            }
        }
        let _ = pidfd_send_signal(&fd, Signal::KILL);
        if wait_exit(&fd, Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(HostError::Other(format!(
                "process {} did not exit after SIGKILL",
                self.pid
            )))
        }
    }

    /// Sends SIGKILL without waiting; for many processes at once, followed by
    /// [`Identity::stop`] on each to wait.
    pub fn kill_now(&self) {
        if let Some(fd) = self.pidfd() {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
        }
    }

    /// The network namespace the process lives in (the inode of /proc/PID/ns/net).
    pub fn netns_inode(&self) -> Option<u64> {
        netns_inode_of(self.pid).filter(|_| self.alive())
    }
}

/// Waits until the process behind `fd` has exited (a pidfd becomes readable then).
fn wait_exit(fd: &OwnedFd, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

fn netns_inode_of(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// How to start a long-lived process.
pub struct Launch<'a> {
    pub program: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The named network namespace to run it in (None: the host's).
    pub netns: Option<&'a Path>,
    /// Where its standard output and error go (None: nowhere).
    pub log: Option<&'a Path>,
    /// Runs it in a private mount namespace of its own (mounts it makes or undoes never
    /// reach the host's: slirp4netns's sandbox unmounts /run/netns otherwise).
    pub private_mounts: bool,
    /// Hands it the write end of a pipe as this descriptor, and waits until it writes
    /// there (its "ready" signal) before returning.
    pub ready_fd: Option<i32>,
    /// Descriptors it inherits, under the same numbers (every other one of cloonix's is
    /// closed on exec): what it may use without opening anything by name.
    pub pass: &'a [BorrowedFd<'a>],
    /// Runs it as this user and group (the same number), with no supplementary groups and
    /// so no capabilities, once it is in its namespace.
    pub user: Option<u32>,
}

/// Starts the process in its own session (a Ctrl-C of cloonix never reaches it), inside
/// `netns` when given, with a sysfs of that namespace (as `ip netns exec` gives it), and
/// returns its identity. It is not waited for: it outlives cloonix, and whoever adopts it
/// reaps it.
pub fn launch(l: &Launch) -> Result<Identity> {
    let mut cmd = Command::new(l.program);
    cmd.args(&l.args)
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    match l.log {
        Some(log) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(io(format!("open {}", log.display())))?;
            cmd.stdout(f.try_clone().map_err(io("log file"))?).stderr(f);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let ns = l
        .netns
        .map(|p| File::open(p).map_err(io(format!("open namespace {}", p.display()))))
        .transpose()?;
    let ns_fd = ns.as_ref().map(|f| f.as_raw_fd());
    let ready = l
        .ready_fd
        .map(|_| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
        .transpose()
        .map_err(|e| io("make a pipe")(e.into()))?;
    let ready_w = ready.as_ref().map(|(_, w)| w.as_raw_fd());
    let (ready_target, private) = (l.ready_fd, l.private_mounts);
    let pass: Vec<i32> = l.pass.iter().map(|f| f.as_raw_fd()).collect();
    let user = l.user;
    // SAFETY: between fork and exec only syscalls run, on descriptors and constant C
    // strings made before the fork; nothing allocates (`pass` is a Vec made before).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            if let Some(fd) = ns_fd {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::thread::move_into_link_name_space(
                    fd,
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                own_sysfs()?;
            } else if private {
                private_mounts()?;
            }
            if let (Some(w), Some(target)) = (ready_w, ready_target)
                && libc::dup2(w, target) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &pass {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(id) = user
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(id) != 0
                    || libc::setuid(id) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => HostError::Missing {
            program: l.program.to_string(),
            package: super::package_of(l.program),
        },
        _ => io(format!("start {}", l.program))(e),
    })?;
    let pid = child.id() as i32;
    // Our child until cloonix exits: its start time can be read even if it died already.
    let start = stat(pid)
        .map(|(s, _)| s)
        .ok_or_else(|| HostError::Other(format!("{} exited as soon as it started", l.program)))?;
    let id = Identity { pid, start };
    if let Some((r, w)) = ready {
        drop(w);
        if !wait_ready(&r, Duration::from_secs(10)) {
            let _ = id.stop(Duration::ZERO);
            let log = l
                .log
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| format!(": {}", t.trim()))
                .unwrap_or_default();
            return Err(HostError::Other(format!(
                "{} did not say it was ready{log}",
                l.program
            )));
        }
    }
    Ok(id)
}

/// Waits for a byte on a ready pipe: false on EOF (it exited or closed it) or timeout.
fn wait_ready(r: &OwnedFd, within: Duration) -> bool {
    let timeout = Timespec {
        tv_sec: within.as_secs() as i64,
        tv_nsec: 0,
    };
    let mut fds = [PollFd::new(r, PollFlags::IN)];
    if !matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(rustix::io::read(r, &mut byte), Ok(1))
}

/// In a forked child: a private mount namespace in which nothing propagates back.
fn private_mounts() -> std::io::Result<()> {
    use rustix::mount::MountPropagationFlags;
    // SAFETY: unshare of the mount namespace, in a single-threaded forked child.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// In a forked child: a private mount namespace with a sysfs of the child's network
/// namespace on /sys, so that tools reading /sys/class/net see the namespace's devices.
fn own_sysfs() -> std::io::Result<()> {
    use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
    // SAFETY: unshare of the mount namespace, in a single-threaded forked child.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    let _ = rustix::mount::unmount(c"/sys", UnmountFlags::DETACH);
    rustix::mount::mount(c"sysfs", c"/sys", c"sysfs", MountFlags::empty(), c"")?;
    Ok(())
}

/// The pids of running processes whose executable is `exe`, in one pass over /proc.
fn pids_of(exe: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe))
        .collect()
}

/// Every running process whose executable is `exe` and whose network namespace is one of
/// those bound at `namespaces`: how a process that cloonix started but could not record
/// (it was killed right after the start) is recognised. Both must match, so nothing else
/// running on the host can pass for it. One pass over /proc, however many namespaces.
pub fn find(exe: &Path, namespaces: &[PathBuf]) -> Vec<Identity> {
    use std::os::unix::fs::MetadataExt;
    // By device and inode: a namespace's file is on nsfs, so a plain file left under
    // /run/netns, whose tmpfs inode number could be any process's, matches nothing.
    let ids: std::collections::HashSet<(u64, u64)> = namespaces
        .iter()
        .filter_map(|n| std::fs::metadata(n).ok().map(|m| (m.dev(), m.ino())))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    pids_of(exe)
        .into_iter()
        .filter(|&pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .filter_map(Identity::of)
        .collect()
}

/// Every running process whose executable is `exe` and one of whose arguments is one of
/// `args` exactly (a path of cloonix's own, such as the namespace it serves): how a process
/// that runs outside the lab's namespaces is recognised without a record.
pub fn find_with_arg(exe: &Path, args: &[String]) -> Vec<Identity> {
    pids_of(exe)
        .into_iter()
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .any(|a| args.iter().any(|x| x.as_bytes() == a))
            })
        })
        .filter_map(Identity::of)
        .collect()
}

/// Every running process in the network namespace bound at `netns` whose command line
/// `pred` accepts: how a process of cloonix's own binary, which can be rebuilt under it,
/// is recognised (its argv names what it serves).
pub fn find_by_args(netns: &Path, pred: impl Fn(&[String]) -> bool) -> Vec<Identity> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = std::fs::metadata(netns).map(|m| (m.dev(), m.ino())) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| (m.dev(), m.ino()) == ns)
        })
        .filter(|&pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            pred(&args)
        })
        .filter_map(Identity::of)
        .collect()
}

/// Every running process whose root directory is one of `roots`: the processes of the
/// containers on those root filesystems (their inits and whatever runs in them).
pub fn find_rooted_in(roots: &[PathBuf]) -> Vec<Identity> {
    use std::os::unix::fs::MetadataExt;
    // After pivot_root a container's /proc/PID/root reads `/`, but it leads to the very
    // directory of its root filesystem: compared by device and inode, not by name.
    let ids: std::collections::HashSet<(u64, u64)> = roots
        .iter()
        .filter_map(|r| std::fs::metadata(r).ok().map(|m| (m.dev(), m.ino())))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::metadata(format!("/proc/{pid}/root/"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .filter_map(Identity::of)
        .collect()
}

/// The absolute path of a program on PATH, as /proc/PID/exe would show it.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// Every process that descends from one of `roots`, from one look at `/proc`. Each is
/// known by its pid and start time read together with its parent in one read of its
/// stat, so a pid reused since is not taken for a descendant.
pub fn descendants(roots: &[i32]) -> Vec<Identity> {
    let mut all: Vec<(i32, i32, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((parent, start)) = parent_and_start(pid) {
                all.push((pid, parent, start));
            }
        }
    }
    let mut found: Vec<Identity> = Vec::new();
    let mut frontier: Vec<i32> = roots.to_vec();
    while let Some(parent) = frontier.pop() {
        for &(pid, _, start) in all.iter().filter(|(_, pp, _)| *pp == parent) {
            if !found.iter().any(|f| f.pid == pid) {
                found.push(Identity { pid, start });
                frontier.push(pid);
            }
        }
    }
    found
}

/// The parent and start time of a running process, from one read of its stat.
fn parent_and_start(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    let parent = fields.next()?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some((parent, start))
}

/// Kills `known` and every process that descends from `root` or from one of them, for
/// good: all are frozen with SIGSTOP until a look finds none new (a frozen process forks
/// no more), then sent SIGKILL. What a command left behind when its `crun exec` is
/// stopped: processes whose parent died are adopted by the container's init and can be
/// found only through what was known of them before. `root` must be a child of ours not
/// reaped yet (its pid is ours until then), and is its owner's to kill.
pub fn kill_tree(root: Option<i32>, known: Vec<Identity>) {
    // A command's processes live in its container's pid namespace: nothing in cloonix's
    // own is ever stopped, even were a pid reused along a parent link while /proc is read.
    let own = pid_ns_of("self");
    let outside = |id: &Identity| own.is_some() && pid_ns_of(&id.pid.to_string()) != own;
    let mut known: Vec<Identity> = known.into_iter().filter(outside).collect();
    let signal_all = |ids: &[Identity], sig: Signal| {
        for id in ids {
            if let Some(fd) = id.pidfd() {
                let _ = pidfd_send_signal(&fd, sig);
            }
        }
    };
    signal_all(&known, Signal::STOP);
    // Bounded: a tree that outgrows a thousand looks is killed as far as it was found.
    for _ in 0..1000 {
        // Only a known process that is still the one known names its children.
        let roots: Vec<i32> = root
            .into_iter()
            .chain(known.iter().filter(|k| k.alive()).map(|k| k.pid))
            .collect();
        let new: Vec<Identity> = descendants(&roots)
            .into_iter()
            .filter(|d| !known.contains(d) && outside(d))
            .collect();
        if new.is_empty() {
            break;
        }
        signal_all(&new, Signal::STOP);
        known.extend(new);
    }
    signal_all(&known, Signal::KILL);
}

/// The pid namespace of `/proc/WHO` (a pid, or `self`): the inode of its ns/pid.
fn pid_ns_of(who: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{who}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

/// Stops many processes at once: all are sent SIGKILL first, then each is waited for.
pub fn kill_all(ids: &[Identity]) -> Result<()> {
    ids.iter().for_each(Identity::kill_now);
    ids.iter().try_for_each(|id| id.stop(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_outlives_nothing_but_its_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let id = Identity::of(child.id() as i32).unwrap();
        assert!(id.alive());
        let other = Identity {
            pid: id.pid,
            start: id.start + 1,
        };
        assert!(
            !other.alive(),
            "a start time that differs is another process"
        );
        other.stop(Duration::ZERO).unwrap();
        assert!(id.alive(), "stopping another identity touched this process");
        id.stop(Duration::from_secs(1)).unwrap();
        let _ = child.wait();
        assert!(!id.alive());
    }

    /// The first `n` descendants of `root`, waited for.
    fn tree_of(root: i32, n: usize) -> Vec<Identity> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = Vec::new();
        while found.len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = descendants(&[root]);
        }
        assert!(found.len() >= n, "{found:?}");
        found
    }

    #[test]
    fn a_tree_in_a_pid_namespace_of_its_own_is_killed() {
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "sh", "-c"])
            .arg("trap '' TERM; sleep 31 & sleep 32 & wait")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let tree = tree_of(root, 3);
        kill_tree(Some(root), tree.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree.iter().any(Identity::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(tree.iter().all(|id| !id.alive()), "{tree:?}");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn nothing_in_cloonixs_own_pid_namespace_is_stopped() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 33 & sleep 34 & wait"])
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let tree = tree_of(root, 2);
        kill_tree(Some(root), tree.clone());
        std::thread::sleep(Duration::from_millis(50));
        for id in &tree {
            let state = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
            let state = state
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            assert!(
                id.alive() && state != "T",
                "{id:?} was stopped or killed: {state}"
            );
        }
        kill_all(&tree).unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_launched_process_is_its_own_session() {
        let id = launch(&Launch {
            program: "sleep",
            args: vec!["30".into()],
            env: Vec::new(),
            netns: None,
            log: None,
            private_mounts: false,
            ready_fd: None,
            pass: &[],
            user: None,
        })
        .unwrap();
        let sid = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
        let sid: i32 = sid
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sid, id.pid);
        id.stop(Duration::from_secs(1)).unwrap();
        assert!(!id.alive());
    }
}
