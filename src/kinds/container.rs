//! A container run by crun in its endpoint's namespaces, on its root filesystem, with a
//! small init as pid 1; its `run` commands run once, in order, when it starts.
//!
//! For a container that podman or docker runs (`engine.rs` makes it), this resource is
//! its start: once its files and interfaces are in place it lets the image's command go,
//! then runs `run` through the engine's exec; it records the engine container's init.
//!
//! Its receipt holds its init's identity (the only way it is ever signalled) and where its
//! `run` commands are: a container whose commands were interrupted is tainted, so the
//! next apply replaces it rather than run them twice or trust a half-configured endpoint.

use super::{ExecRequest, Facts, Seen, StepCx};
use crate::graph::{ContainerSpec, Resource, ResourceId};
use crate::host::crun::{self, RunResult};
use crate::host::process::{self, Identity};
use crate::host::rootfs::{self, Lookup};
use crate::host::{HostError, Lab, Result, cgroups, engine, netns};
use crate::status::LabStatus;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why `cpu` and `ram` limits are not enforced where cgroups cannot be used (see
/// host/cgroups.rs): said by `apply` and `status` for every container that sets one.
pub const LIMITS_NOT_ENFORCED: &str = "not enforced: crun runs without cgroups on this host";

/// Where a container's `run` commands are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "results")]
pub enum RunState {
    /// Not started (or recorded by a version that did not say).
    #[default]
    Unknown,
    /// Started and not finished: if cloonix was killed meanwhile, nobody knows how far
    /// they got.
    Running,
    /// All ran, or the first failure stopped them.
    Done(Vec<RunResult>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub init: Option<Identity>,
    pub runs: RunState,
    /// Whether cloonix holds it in cgroups of its own, which every process it starts
    /// there joins (absent in records of a cloonix that never did).
    #[serde(default)]
    pub own_cgroups: bool,
}

pub struct Driver;

/// Describes a failed `run` command for apply's and status's reports.
pub fn describe_failure(r: &RunResult) -> String {
    let how = match (r.timed_out, r.exit_code) {
        (true, _) => "timed out".to_string(),
        (false, Some(code)) => format!("exited with {code}"),
        (false, None) => "was killed".to_string(),
    };
    let output = r.output.trim();
    if output.is_empty() {
        format!("run `{}` {how}", r.command)
    } else {
        format!("run `{}` {how}:\n{output}", r.command)
    }
}

impl super::Driver for Driver {
    type Spec = ContainerSpec;
    type Receipt = Receipt;

    fn create(cx: &StepCx, c: &ContainerSpec) -> Result<Receipt> {
        if let Some(e) = c.runtime.engine() {
            return start_engine(cx, c, e);
        }
        let (lab, name) = (cx.lab, cx.name());
        let paths = super::rootfs::paths(lab, name);
        let id = lab.container_id(name);
        // Processes of an earlier container on this root that an interrupted apply left
        // without a record, known by their root directory. Only crun makes them, and it
        // records its state before it starts any: without that state there are none.
        if crun::exists(&lab.crun_root(), &id) {
            process::kill_all(&process::find_rooted_in(&[paths.merged()]))?;
        }
        let ns = netns::path(&lab.endpoint_ns(name));
        let hold = cgroups::hold(&lab.name, name);
        let spec = crate::host::oci::Spec {
            id: &id,
            hostname: name,
            netns: &ns,
            env: &c.env,
            sysctl: &c.sysctl,
            privileged: c.privileged,
            cgroups: hold,
            cpu: c.cpu,
            ram: c.ram,
        };
        let init = crun::start(&lab.crun_root(), &paths, &spec)?;
        let own_cgroups = matches!(spec.cgroups, cgroups::Hold::Cloonix { .. });
        let receipt = Receipt {
            init: Some(init),
            runs: RunState::Running,
            own_cgroups,
        };
        cx.checkpoint(&receipt)?;
        let target = crun::Target {
            lab,
            endpoint: name,
            own_cgroups,
        };
        let results = crun::run_commands(
            &target,
            &c.env,
            &c.run,
            Duration::from_millis(c.run_timeout.0),
        );
        finish(cx, receipt, results)
    }

    /// Only `run_timeout` changes in place, and it only matters to the next start.
    fn update(
        _cx: &StepCx,
        _before: &ContainerSpec,
        _c: &ContainerSpec,
        r: Receipt,
    ) -> Result<Receipt> {
        Ok(r)
    }

    /// An engine's container goes with its engine resource.
    fn destroy(cx: &StepCx, c: &ContainerSpec, r: Receipt) -> Result<()> {
        if c.runtime.engine().is_some() {
            return Ok(());
        }
        crun::delete(&cx.lab.crun_root(), &cx.lab.container_id(cx.name()), r.init)?;
        cgroups::remove(&cx.lab.name, cx.name())
    }

    /// Every container's init gets SIGKILL at once; each is waited for by `destroy`.
    fn hasten(_lab: &Lab, _c: &ContainerSpec, r: &Receipt) {
        if let Some(init) = &r.init {
            init.kill_now();
        }
    }

    fn observe(
        _lab: &Lab,
        _facts: &Facts,
        _id: &ResourceId,
        _c: &mut ContainerSpec,
        r: &Receipt,
    ) -> Seen {
        super::seen_process(
            r.init.as_ref(),
            &r.runs,
            "its run commands were interrupted",
        )
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        c: &ContainerSpec,
        rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = "cnt".into();
        super::report_process(
            ep,
            seen,
            rc.init.map(|i| i.pid),
            "its container is not running",
        );
        if let RunState::Done(results) = &rc.runs {
            ep.run = results.clone();
        }
        // podman and docker hold their containers in cgroups of their own.
        if let (None, Some(note)) = (c.runtime.engine(), cgroups::unusable_note()) {
            if c.cpu.is_some() || c.ram.is_some() {
                ep.notes
                    .push(format!("cpu/ram limits {LIMITS_NOT_ENFORCED}"));
            }
            out.note(&note);
        }
    }

    /// Every process whose root is in the lab's state directory: its containers'.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let roots: Vec<std::path::PathBuf> = std::fs::read_dir(lab.state.join("ep"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("merged"))
            .collect();
        let killed = process::kill_all(&process::find_rooted_in(&roots));
        let swept = cgroups::sweep(&lab.name);
        match killed.and(swept) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("containers".into(), e)],
        }
    }

    fn exec(
        lab: &Lab,
        id: &ResourceId,
        c: &ContainerSpec,
        r: &Receipt,
        req: &ExecRequest,
    ) -> Option<Result<i32>> {
        // An engine's container is reached through its engine resource.
        c.runtime.engine().is_none().then_some(())?;
        let target = crun::Target {
            lab,
            endpoint: &id.name,
            own_cgroups: r.own_cgroups,
        };
        let run = || -> Result<i32> {
            if !r.init.as_ref().is_some_and(Identity::alive) {
                return Err(HostError::Other(format!(
                    "container {} is not running",
                    id.name
                )));
            }
            let code = match req.capture {
                Some(capture) => {
                    let r = crun::exec_captured(&target, &c.env, req.argv, capture.timeout);
                    if let Ok(mut out) = capture.output.lock() {
                        *out = r.output;
                    }
                    if r.timed_out {
                        return Err(HostError::Other(format!(
                            "timed out after {:.1}s",
                            capture.timeout.as_secs_f64()
                        )));
                    }
                    r.exit_code
                }
                None => crun::exec_command(&target, &c.env, req.tty, req.argv)?
                    .status()
                    .map_err(crate::host::io("run crun exec"))?
                    .code(),
            };
            // crun says 255 when it could not start the command: tell why, as shells do.
            Ok(match code {
                Some(255) => {
                    let root = super::rootfs::paths(lab, &id.name).merged();
                    match rootfs::lookup(&root, &req.argv[0]) {
                        Lookup::Missing => 127,
                        Lookup::NotExecutable => 126,
                        Lookup::Found => 255,
                    }
                }
                Some(code) => code,
                None => 128 + 9,
            })
        };
        Some(run())
    }
}

/// Records the `run` results; a failure is reported once the container is recorded as
/// running, so that no later apply runs its commands again.
fn finish(cx: &StepCx, mut receipt: Receipt, results: Vec<RunResult>) -> Result<Receipt> {
    let failed = results.iter().find(|r| !r.ok()).map(describe_failure);
    receipt.runs = RunState::Done(results);
    match failed {
        None => Ok(receipt),
        Some(msg) => {
            cx.checkpoint(&receipt)?;
            Err(HostError::RunFailed(msg))
        }
    }
}

/// Lets the engine's container's image command go, then runs `run` through its exec.
fn start_engine(cx: &StepCx, c: &ContainerSpec, e: crate::model::Engine) -> Result<Receipt> {
    let name = cx.lab.container_id(cx.name());
    let init = engine::init(e, &name)?;
    let receipt = Receipt {
        init: Some(init),
        runs: RunState::Running,
        own_cgroups: false,
    };
    cx.checkpoint(&receipt)?;
    super::engine::open_gate(cx.lab, cx.name())?;
    let results = crun::run_each(&c.run, Duration::from_millis(c.run_timeout.0), |argv| {
        engine::exec_command(e, &name, false, argv)
    });
    finish(cx, receipt, results)
}
