//! crun running a container (configured by `oci.rs`) on its root filesystem, in the
//! endpoint's existing network namespace, with a small init as pid 1; commands run in it
//! through `crun exec`.
//!
//! crun 1.8 refuses this host's v1/v2 hybrid cgroups, so it runs with
//! `--cgroup-manager=disabled` in a private mount namespace where cgroup2 is mounted on
//! /sys/fs/cgroup (made between fork and exec, so that starting a container is one
//! process), and the bundle has no cgroup mount. Where cloonix holds containers in v1
//! cgroups itself (cgroups/v1.rs), `crun run` and every `crun exec` join them between
//! fork and exec.

use super::cgroups::{self, Hold};
use super::oci::{self, INIT, Spec};
use super::process::{self, Identity};
use super::rootfs::Paths;
use super::{HostError, Lab, Result, io};
use crate::model::Command as RunCommand;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the container (detached); its init is pid 1 and keeps it up. Returns the
/// init's identity, by which alone it is ever signalled.
pub fn start(crun_root: &Path, p: &Paths, s: &Spec) -> Result<Identity> {
    if !Path::new(INIT).exists() {
        return Err(HostError::Missing {
            program: "catatonit".into(),
            package: "catatonit",
        });
    }
    std::fs::create_dir_all(crun_root).map_err(io("create the crun root"))?;
    let _ = delete(crun_root, s.id, None);
    let cfg = serde_json::to_vec_pretty(&oci::config(p, s)?).expect("json");
    std::fs::write(p.dir.join("config.json"), cfg).map_err(io("write the OCI bundle"))?;
    // crun's output goes to a file: the detached container would hold a pipe open forever.
    // Its own process group: a Ctrl-C of cloonix must not reach the lab's containers.
    let log = p.dir.join("crun.log");
    let log_file = File::create(&log).map_err(io("create the crun log"))?;
    let mut cmd = Command::new("crun");
    let manager = match s.cgroups {
        Hold::Crun(_) => "--cgroup-manager=cgroupfs",
        Hold::Cloonix { .. } | Hold::Nothing => "--cgroup-manager=disabled",
    };
    cmd.arg("--root")
        .arg(crun_root)
        .args([manager, "run", "-d", "--bundle"])
        .arg(&p.dir)
        .arg(s.id)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().map_err(io("crun log"))?))
        .stderr(Stdio::from(log_file));
    // cloonix's own cgroups are made and limited before crun (and so the init) joins them.
    if let Hold::Cloonix { lab, endpoint } = s.cgroups {
        cgroups::create(
            lab,
            endpoint,
            &cgroups::v1::Limits {
                cpu: s.cpu,
                ram: s.ram,
                all_devices: s.privileged,
            },
        )?;
        cgroups::join(&mut cmd, lab, endpoint)?;
    }
    // Without its own cgroups, crun 1.8 refuses this kind of host's hybrid layout unless it
    // sees a cgroup2 hierarchy: it runs in a private mount namespace where it does.
    // SAFETY: between fork and exec only syscalls run, on constant C strings.
    if !matches!(s.cgroups, Hold::Crun(_)) {
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let none = c"none".as_ptr();
                if libc::mount(
                    none,
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                    || libc::mount(
                        none,
                        c"/sys/fs/cgroup".as_ptr(),
                        c"cgroup2".as_ptr(),
                        0,
                        std::ptr::null(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let status = cmd.status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => HostError::Missing {
            program: "crun".into(),
            package: "crun",
        },
        _ => io("start crun")(e),
    })?;
    if !status.success() {
        return Err(HostError::Command {
            what: format!("start container {}", s.id),
            status: status.to_string(),
            stderr: std::fs::read_to_string(&log)
                .unwrap_or_default()
                .trim()
                .to_string(),
        });
    }
    state_pid(crun_root, s.id)
        .and_then(Identity::of)
        .ok_or_else(|| HostError::Other(format!("container {} exited as it started", s.id)))
}

/// The container's state as crun recorded it.
#[derive(Debug, Deserialize)]
struct Status {
    pid: i32,
}

/// The pid crun recorded for the container's init: trusted only right after crun started
/// it (the init may end and its pid be reused later).
fn state_pid(crun_root: &Path, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(crun_root.join(id).join("status")).ok()?;
    let status: Status = serde_json::from_str(&text).ok()?;
    Some(status.pid)
}

/// Whether crun knows the container (its state is there).
pub fn exists(crun_root: &Path, id: &str) -> bool {
    crun_root.join(id).join("status").exists()
}

/// Containers whose state crun keeps under `crun_root`, in one directory scan.
pub fn list(crun_root: &Path) -> Vec<String> {
    std::fs::read_dir(crun_root)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills the container's init (when cloonix knows its identity) and deletes crun's state
/// of it; one that is gone is fine.
pub fn delete(crun_root: &Path, id: &str, init: Option<Identity>) -> Result<()> {
    if let Some(init) = init {
        init.stop(Duration::ZERO)?;
    }
    // With its init dead and no cgroups to release, crun's state is all that is left of
    // the container; removing it is what `crun delete` would do, without a process each.
    match std::fs::remove_dir_all(crun_root.join(id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("delete container {id}"))(e))
        }
        _ => Ok(()),
    }
}

/// The result of one `run` command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub command: String,
    pub exit_code: Option<i32>,
    pub output: String,
    pub timed_out: bool,
}

impl RunResult {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// A command that could not be started at all, and why.
    pub fn not_run(command: String, why: impl std::fmt::Display) -> RunResult {
        RunResult {
            command,
            exit_code: None,
            output: why.to_string(),
            timed_out: false,
        }
    }
}

/// `run` on each command in order, stopping after the first that fails: how an
/// endpoint's `run` list goes, in a container or a VM.
pub fn in_order<T>(commands: &[T], mut run: impl FnMut(&T) -> RunResult) -> Vec<RunResult> {
    let mut results = Vec::new();
    for c in commands {
        let r = run(c);
        let ok = r.ok();
        results.push(r);
        if !ok {
            break;
        }
    }
    results
}

/// A crun container that commands run in.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub lab: &'a Lab,
    pub endpoint: &'a str,
    /// Whether cloonix holds it in cgroups of its own (as recorded when it started): then
    /// every process started in it must join them, or not start. It has MKNOD because a
    /// device allow-list holds it; a process outside could open any node it makes.
    pub own_cgroups: bool,
}

/// The command line of `crun exec` for `argv` in the container, in its cgroups where
/// cloonix holds it; an error where it cannot join them.
pub fn exec_command(
    t: &Target,
    env: &BTreeMap<String, String>,
    tty: bool,
    argv: &[String],
) -> Result<Command> {
    let mut cmd = Command::new("crun");
    cmd.arg("--root").arg(t.lab.crun_root()).arg("exec");
    if tty {
        cmd.arg("-t");
    }
    for e in oci::env_list(env) {
        cmd.args(["--env", &e]);
    }
    cmd.arg(t.lab.container_id(t.endpoint)).args(argv);
    if t.own_cgroups {
        cgroups::join(&mut cmd, &t.lab.name, t.endpoint)?;
    }
    Ok(cmd)
}

/// Runs the commands in order in the container, each with `timeout`, stopping at the
/// first that fails.
pub fn run_commands(
    t: &Target,
    env: &BTreeMap<String, String>,
    commands: &[RunCommand],
    timeout: Duration,
) -> Vec<RunResult> {
    run_each(commands, timeout, |argv| exec_command(t, env, false, argv))
}

/// Runs the commands in order, each through the command line `exec` makes of its argv and
/// with `timeout`, stopping at the first that fails.
pub fn run_each(
    commands: &[RunCommand],
    timeout: Duration,
    exec: impl Fn(&[String]) -> Result<Command>,
) -> Vec<RunResult> {
    in_order(commands, |c| {
        let (argv, shown) = match c {
            RunCommand::Shell(s) => (
                vec!["/bin/sh".to_string(), "-c".into(), s.clone()],
                s.clone(),
            ),
            RunCommand::Argv(a) => (a.clone(), a.join(" ")),
        };
        match exec(&argv) {
            Ok(cmd) => run_with_timeout(cmd, timeout, shown),
            Err(e) => RunResult::not_run(shown, e),
        }
    })
}

/// Runs `argv` in the container with its output collected, stopped after `timeout`: what
/// a check does in an endpoint.
pub fn exec_captured(
    t: &Target,
    env: &BTreeMap<String, String>,
    argv: &[String],
    timeout: Duration,
) -> RunResult {
    match exec_command(t, env, false, argv) {
        Ok(cmd) => run_with_timeout(cmd, timeout, argv.join(" ")),
        Err(e) => RunResult::not_run(argv.join(" "), e),
    }
}

/// The most of a command's output that is kept.
const OUTPUT_LIMIT: u64 = 1 << 20;

/// How long a command that ran out of time has between TERM and KILL.
const GRACE: Duration = Duration::from_secs(2);

fn run_with_timeout(mut cmd: Command, timeout: Duration, shown: String) -> RunResult {
    let out_file = tempfile_for_output();
    // Out of descriptors, the output is lost, not cloonix.
    let sink = || {
        out_file
            .as_ref()
            .and_then(|f| f.try_clone().ok())
            .map_or(Stdio::null(), Stdio::from)
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(sink())
        .stderr(sink())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return RunResult::not_run(shown, e),
    };
    let start = Instant::now();
    let (code, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status.code(), false),
            Ok(None) if start.elapsed() > timeout => {
                let root = child.id() as i32;
                // The command's processes, known while they still descend from crun: one
                // whose parent dies is adopted by the container's init, out of the tree.
                let started = process::descendants(&[root]);
                // TERM first: `crun exec` passes it on to the command in the container.
                // SAFETY: the child is not reaped yet, so its pid is still its own.
                unsafe { libc::kill(root, libc::SIGTERM) };
                let term = Instant::now();
                let mut reaped = false;
                while term.elapsed() < GRACE && !reaped {
                    reaped = !matches!(child.try_wait(), Ok(None));
                    std::thread::sleep(Duration::from_millis(10));
                }
                // What ignored TERM or was started meanwhile: a KILL of crun alone would
                // leave it running in the container. Once reaped, crun's pid is no longer
                // ours to look under.
                process::kill_tree((!reaped).then_some(root), started);
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break (None, false),
        }
    };
    let mut output = String::new();
    if let Some(mut f) = out_file {
        use std::io::Seek;
        let _ = f.rewind();
        // What a report shows, not what a command may pour out.
        let mut bytes = Vec::new();
        let _ = f.take(OUTPUT_LIMIT).read_to_end(&mut bytes);
        output = String::from_utf8_lossy(&bytes).into_owned();
    }
    RunResult {
        command: shown,
        exit_code: code,
        output,
        timed_out,
    }
}

/// An anonymous file for a command's output (a pipe could fill up while we wait).
fn tempfile_for_output() -> Option<File> {
    let name = CString::new("cloonix-run").ok()?;
    // SAFETY: memfd_create with a valid name; the fd is owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}
