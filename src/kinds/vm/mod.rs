//! A VM: one qemu process in the lab's switch namespace, started through `host::process`
//! (recorded identity, own session), sandboxed, with its NICs' taps (see `kinds::nic`),
//! a QMP socket, the exec agent's socket and a serial console socket under
//! `/run/cloonix/<lab>/vm/<name>/` (bound by cloonix and handed to qemu, which runs as a
//! user of its own), and a disk's copy-on-write overlay under
//! `/var/lib/cloonix/labs/<lab>/vm/<name>/`.
//!
//! It boots the built-in guest (Debian's cloud kernel and cloonix's initramfs), a disk's
//! root filesystem with that same kernel and initramfs (which move into the disk's root and
//! leave the agent running there), or a kernel of the user's. With cloonix's initramfs the
//! VM's hostname, NIC names and addresses and `files` are applied at boot, and create waits
//! until the guest's agent answers, then runs the `run` commands through it, recording
//! their results as a container does. A VM whose qemu died is drift: the next apply starts
//! it anew.

mod boot;
mod inside;

pub use inside::agent_of;

use super::{ExecRequest, Facts, HostView, Lane, Refusal, RunState, Seen, StepCx};
use crate::graph::{Resource, ResourceId, VmSpec};
use crate::host::agent;
use crate::host::process::{self, Identity, Launch};
use crate::host::qemu::{self, Engine, Machine, Sockets};
use crate::host::{HostError, Lab, Result, io, netns, tap};
use crate::model::{VmImage, qcow2};
use crate::status::LabStatus;
use boot::{listen, mode, open, prepare};
use inside::{run_commands, write_file};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a booting guest may take to answer: under TCG on a busy host, several VMs
/// booting at once take tens of seconds.
const BOOT_WAIT: Duration = Duration::from_secs(180);

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub qemu: Option<Identity>,
    pub engine: Option<Engine>,
    /// Why that accelerator (for `status`).
    #[serde(default)]
    pub engine_why: String,
    /// The image cache entry it booted (so `cloonix images prune` keeps it).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub runs: RunState,
}

pub struct Driver;

pub fn run_dir(lab: &Lab, vm: &str) -> PathBuf {
    lab.run.join("vm").join(vm)
}

pub(super) fn state_dir(lab: &Lab, vm: &str) -> PathBuf {
    lab.state.join("vm").join(vm)
}

pub fn sockets(lab: &Lab, vm: &str) -> Sockets {
    Sockets::in_dir(&run_dir(lab, vm))
}

/// Where the host side of a VM's agent sessions queue.
pub fn agent_lock(lab: &Lab, vm: &str) -> PathBuf {
    run_dir(lab, vm).join("agent.lock")
}

/// qemu's `-name`: `_` is in no lab or endpoint name, so this is this VM's alone.
fn qemu_name(lab: &Lab, vm: &str) -> String {
    format!("cloonix_{}_{vm}", lab.name)
}

/// Whether the guest runs cloonix's initramfs and agent.
pub fn has_agent(s: &VmSpec) -> bool {
    !matches!(s.image, Some(VmImage::Kernel { .. }))
}

fn qemu_exe() -> Option<PathBuf> {
    process::which(qemu::PROGRAM)
}

/// Every qemu of this VM that runs without a record (an apply killed right after it
/// started one).
fn unrecorded(lab: &Lab, vm: &str) -> Vec<Identity> {
    qemu_exe()
        .map(|exe| process::find_with_arg(&exe, &[qemu_name(lab, vm)]))
        .unwrap_or_default()
}

/// The end of the console log, to say why a guest did not come up.
fn console_tail(lab: &Lab, vm: &str) -> String {
    let text = std::fs::read(sockets(lab, vm).console_log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Waits until qemu greets on its QMP socket: it has parsed its command line and taken
/// everything it was handed (the socket was listening before qemu ran, so a connection
/// alone proves nothing).
fn wait_started(id: &Identity, s: &Sockets, log: &Path) -> Result<()> {
    match crate::host::qmp::Qmp::connect(&s.qmp, Duration::from_secs(30)) {
        Ok(Some(_)) => Ok(()),
        other => {
            let _ = id.stop(Duration::ZERO);
            let why = std::fs::read_to_string(log).unwrap_or_default();
            let why = match (why.trim(), other) {
                ("", Err(e)) => e.to_string(),
                (w, _) => w.to_string(),
            };
            Err(HostError::Other(format!("qemu did not start: {why}")))
        }
    }
}

impl super::Driver for Driver {
    type Spec = VmSpec;
    type Receipt = Receipt;

    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, s: &VmSpec) -> Vec<Refusal> {
        let mut out = Vec::new();
        let mut need = vec![qemu::PROGRAM];
        if matches!(s.image, Some(VmImage::Disk(_))) {
            need.push("qemu-img");
        }
        for p in need {
            if process::which(p).is_none() {
                out.push(Refusal::new(
                    "kind",
                    format!(
                        "a kvm endpoint needs `{p}`: apt-get install {}",
                        crate::host::package_of(p)
                    ),
                ));
            }
        }
        if let Some(host) = qemu::host_ram_mib()
            && u64::from(s.ram) > host
        {
            out.push(Refusal::new(
                "ram",
                format!("ram {} MiB is more than this host has ({host} MiB)", s.ram),
            ));
        }
        if let Err(why) = qemu::engine(s.accel) {
            out.push(Refusal::new(
                "accel",
                format!("{why}: use `accel: auto` or `tcg`"),
            ));
        }
        if !has_agent(s) {
            for (field, used) in [("files", !s.files.is_empty()), ("run", !s.run.is_empty())] {
                if used {
                    out.push(Refusal::new(
                        field,
                        format!("`{field}` needs the built-in guest or a disk it boots; a kernel of your own has no cloonix agent"),
                    ));
                }
            }
        }
        if let Some(VmImage::Disk(path)) = &s.image {
            for p in qcow2::chain(Path::new(path), None).1 {
                if let qcow2::Problem::Refused(why) = p {
                    out.push(Refusal::new("image", format!("disk image {path}: {why}")));
                }
            }
        }
        out
    }

    fn lane(id: &ResourceId, _s: &VmSpec) -> Lane {
        Lane::Serial(format!("vm {}", id.name))
    }

    fn create(cx: &StepCx, s: &VmSpec) -> Result<Receipt> {
        let (lab, name) = (cx.lab, cx.name());
        process::kill_all(&unrecorded(lab, name))?;
        let run = run_dir(lab, name);
        for d in [&run, &state_dir(lab, name)] {
            std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        let socks = sockets(lab, name);
        let (engine, engine_why) = qemu::engine(s.accel).map_err(HostError::Other)?;
        let (boot, image) = prepare(cx, s)?;
        let nics = s
            .nics
            .iter()
            .map(|n| {
                Ok(qemu::Nic {
                    iface: n.iface.clone(),
                    tap: tap::open(&lab.switch_ns(), &n.tap)?,
                    mac: n.mac.to_string(),
                    model: n.model,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let console_log = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::File::options()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&socks.console_log)
                .map_err(io("open the console log"))?
        };
        let kvm = match engine {
            Engine::Kvm => Some(open(Path::new("/dev/kvm"), true)?),
            Engine::Tcg => None,
        };
        let machine = Machine {
            name: qemu_name(lab, name),
            engine,
            kvm,
            cpus: s.cpu,
            ram_mib: s.ram,
            boot,
            nics,
            qmp: listen(&socks.qmp)?,
            agent: listen(&socks.agent)?,
            console: listen(&socks.console)?,
            console_log,
        };
        let log = run.join("qemu.log");
        let ns = netns::path(&lab.switch_ns());
        let id = process::launch(&Launch {
            program: qemu::PROGRAM,
            args: machine.argv(),
            env: Vec::new(),
            netns: Some(&ns),
            log: Some(&log),
            private_mounts: false,
            ready_fd: None,
            pass: &machine.fds(),
            user: Some(qemu::user_of(&lab.name, name)),
        })?;
        // qemu holds its own copies now.
        drop(machine);
        let agent = has_agent(s);
        let mut receipt = Receipt {
            qemu: Some(id),
            engine: Some(engine),
            engine_why,
            image,
            runs: if agent {
                RunState::Running
            } else {
                RunState::Done(Vec::new())
            },
        };
        cx.checkpoint(&receipt)?;
        wait_started(&id, &socks, &log)?;
        if !agent {
            return Ok(receipt);
        }
        let mut a = agent_of(lab, name, BOOT_WAIT, Some(id)).map_err(|e| {
            let why = match id.alive() {
                true => e.to_string(),
                false => "its qemu exited while it booted".into(),
            };
            HostError::Other(format!(
                "{why}; the end of its console:\n{}",
                console_tail(lab, name)
            ))
        })?;
        let results = run_commands(&mut a, &s.run);
        let failed = results
            .iter()
            .find(|r| !r.ok())
            .map(super::describe_failure);
        receipt.runs = RunState::Done(results);
        match failed {
            None => Ok(receipt),
            Some(msg) => {
                cx.checkpoint(&receipt)?;
                Err(HostError::RunFailed(msg))
            }
        }
    }

    /// Only `files` change in place: written (or removed) through the agent.
    fn update(cx: &StepCx, before: &VmSpec, s: &VmSpec, r: Receipt) -> Result<Receipt> {
        if before.files == s.files || !has_agent(s) {
            return Ok(r);
        }
        let mut a = agent_of(cx.lab, cx.name(), Duration::from_secs(60), r.qemu)?;
        for (path, f) in &s.files {
            if before.files.get(path) != Some(f) {
                let content = f.content.clone().unwrap_or_default();
                write_file(&mut a, path, content.as_bytes(), mode(&f.mode))?;
            }
        }
        for path in before.files.keys().filter(|p| !s.files.contains_key(*p)) {
            a.run(
                &format!("rm -f {}\n", agent::quote(path)),
                30,
                Duration::from_secs(60),
            )?;
        }
        Ok(r)
    }

    fn destroy(cx: &StepCx, _s: &VmSpec, r: Receipt) -> Result<()> {
        let (lab, name) = (cx.lab, cx.name());
        if let Some(q) = r.qemu {
            q.stop(Duration::from_secs(3))?;
        }
        process::kill_all(&unrecorded(lab, name))?;
        for d in [run_dir(lab, name), state_dir(lab, name)] {
            match std::fs::remove_dir_all(&d) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("remove {}", d.display()))(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn hasten(_lab: &Lab, _s: &VmSpec, r: &Receipt) {
        if let Some(q) = &r.qemu {
            q.kill_now();
        }
    }

    fn observe(_lab: &Lab, _f: &Facts, _id: &ResourceId, _s: &mut VmSpec, r: &Receipt) -> Seen {
        super::seen_process(
            r.qemu.as_ref(),
            &r.runs,
            "it was interrupted while it booted",
        )
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        _s: &VmSpec,
        rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = "kvm".into();
        crate::kinds::report_process(ep, seen, rc.qemu.map(|i| i.pid), "its qemu is not running");
        if let Some(e) = rc.engine {
            ep.notes
                .push(format!("accel {} ({})", e.as_str(), rc.engine_why));
        }
        if let RunState::Done(results) = &rc.runs {
            ep.run = results.clone();
        }
    }

    /// Every qemu in the lab's switch namespace.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let Some(exe) = qemu_exe() else {
            return Vec::new();
        };
        let ns = netns::path(&lab.switch_ns());
        match process::kill_all(&process::find(&exe, &[ns])) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("qemu processes".into(), e)],
        }
    }

    fn exec(
        lab: &Lab,
        id: &ResourceId,
        s: &VmSpec,
        r: &Receipt,
        req: &ExecRequest,
    ) -> Option<Result<i32>> {
        let run = || -> Result<i32> {
            if !has_agent(s) {
                return Err(HostError::Other(format!(
                    "VM {} boots a kernel of its own: exec needs cloonix's agent (the built-in guest, or a disk it boots); try `cloonix console`",
                    id.name
                )));
            }
            if !r.qemu.as_ref().is_some_and(Identity::alive) {
                return Err(HostError::Other(format!("VM {} is not running", id.name)));
            }
            // A bare shell reads its script from standard input, as `sh` does.
            let script = match req.argv {
                [sh] if sh == "/bin/sh" || sh == "sh" => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .map_err(io("read the script from standard input"))?;
                    text
                }
                argv => agent::exec_script(argv),
            };
            let mut a = agent_of(lab, &id.name, Duration::from_secs(30), r.qemu)?;
            // A check: its output collected, the command killed in the guest when its time
            // is up (busybox's timeout, which exits 137 then).
            if let Some(capture) = req.capture {
                let secs = capture.timeout.as_secs().max(1);
                let o = a.run(&script, secs, Duration::from_secs(secs + 10))?;
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                if let Ok(mut out) = capture.output.lock() {
                    *out = text;
                }
                if o.code == 137 {
                    return Err(HostError::Other(format!("timed out after {secs}s")));
                }
                return Ok(o.code);
            }
            let o = a.run(&script, 0, Duration::from_secs(24 * 3600))?;
            use std::io::Write;
            let _ = std::io::stdout().write_all(&o.stdout);
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(&o.stderr);
            Ok(o.code)
        };
        Some(run())
    }

    fn console(lab: &Lab, id: &ResourceId, _s: &VmSpec, r: &Receipt) -> Option<Result<PathBuf>> {
        Some(match r.qemu.as_ref().is_some_and(Identity::alive) {
            true => Ok(sockets(lab, &id.name).console),
            false => Err(HostError::Other(format!("VM {} is not running", id.name))),
        })
    }
}
