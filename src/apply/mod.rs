//! The executor: runs a plan's waves on the host, the steps of a wave in parallel, records
//! intent after each step, and reports every failure with the resource it concerns.
//! One apply per lab at a time: a second one waits on the lab's lock.

pub mod actions;
mod lock;

pub use actions::Context;
pub use lock::LabLock;

use crate::graph::Graph;
use crate::host::{HostError, intent};
use crate::plan::{Op, Plan};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many steps of one wave run at once: most wait on a process or the kernel.
const PARALLEL: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// What failed: a resource id, or what the sweep after a destroy was removing.
    pub resource: String,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub done: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `plan`, wave by wave; stops after the first wave that has a failure. `desired`
/// gives what each made resource depends on, for the intent record. `progress` is told of
/// each step as it ends.
pub fn execute(
    plan: &Plan,
    desired: &Graph,
    cx: &Context,
    progress: &(dyn Fn(&str) + Sync),
) -> Report {
    let failures = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    let finish = |step: &crate::plan::Step, result: Result<(), HostError>| {
        let result = match result.and_then(|()| record(step.op, step, desired, cx)) {
            // The container exists: record it, so that a later apply does not start it
            // again, and report the failed command.
            Err(HostError::RunFailed(msg)) => {
                record(step.op, step, desired, cx).and(Err(HostError::RunFailed(msg)))
            }
            other => other,
        };
        let verb = match step.op {
            Op::Create => "created",
            Op::Update => "updated",
            Op::Destroy => "destroyed",
        };
        match result {
            Ok(()) => {
                done.fetch_add(1, Ordering::Relaxed);
                progress(&format!("{verb} {}", step.id));
            }
            Err(e) => {
                progress(&format!("FAILED {} {}: {e}", step.op_name(), step.id));
                failures
                    .lock()
                    .expect("no panics while held")
                    .push(Failure {
                        resource: step.id.to_string(),
                        error: e.to_string(),
                    });
            }
        }
    };
    for wave in &plan.waves {
        // A wave's new bridges and ports go to OVS in one transaction; the rest run in parallel.
        let (ports, rest): (Vec<usize>, Vec<usize>) = wave
            .iter()
            .partition(|&&s| actions::is_switch_create(&plan.steps[s]));
        if !ports.is_empty() {
            let steps: Vec<&crate::plan::Step> = ports.iter().map(|&s| &plan.steps[s]).collect();
            match actions::create_in_switch(&steps, cx) {
                Ok(()) => steps.iter().for_each(|s| finish(s, Ok(()))),
                Err(e) => {
                    let msg = e.to_string();
                    steps
                        .iter()
                        .for_each(|s| finish(s, Err(HostError::Other(msg.clone()))));
                }
            }
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL.min(rest.len()) {
                scope.spawn(|| {
                    while let Some(&s) = rest.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let step = &plan.steps[s];
                        finish(step, actions::perform(step, cx));
                    }
                });
            }
        });
        if !failures.lock().expect("no panics while held").is_empty() {
            break;
        }
    }
    Report {
        done: done.into_inner(),
        failures: failures.into_inner().expect("no panics while held"),
    }
}

fn record(
    op: Op,
    step: &crate::plan::Step,
    desired: &Graph,
    cx: &Context,
) -> Result<(), HostError> {
    match op {
        Op::Destroy => intent::remove(&cx.dirs, &step.id),
        Op::Create | Op::Update => {
            let deps = desired
                .deps(&step.id)
                .into_iter()
                .map(|(id, d)| (id.clone(), d))
                .collect();
            intent::write(
                &cx.dirs,
                &intent::Record {
                    resource: step.resource.clone(),
                    deps,
                },
            )
        }
    }
}

/// Removes a lab and everything it made: the plan to nothing, then a sweep for what an
/// interrupted apply made without recording it (containers, mounts, namespaces, daemons
/// and files of this lab only, matched by exact name).
pub fn destroy(lab: &str, progress: &(dyn Fn(&str) + Sync)) -> Report {
    let mut cx = Context::new(lab);
    cx.tearing_down = true;
    let observed = crate::observe::observe(lab);
    let empty = Graph::new(lab);
    let plan = crate::plan::plan(&empty, &observed);
    let mut report = execute(&plan, &empty, &cx, progress);
    let mut sweep = |what: String, r: Result<(), HostError>| {
        if let Err(e) = r {
            report.failures.push(Failure {
                resource: what,
                error: e.to_string(),
            });
        }
    };
    let crun_root = cx.dirs.crun_root();
    for id in crate::host::crun::list(&crun_root) {
        sweep(
            format!("container {id}"),
            crate::host::crun::delete(&crun_root, &id),
        );
    }
    for m in crate::host::crun::mounts() {
        if m.starts_with(&cx.dirs.root) {
            crate::host::unmount(&m);
        }
    }
    sweep("ovs".into(), crate::host::ovs::stop(&cx.dirs));
    let switch = crate::graph::names::switch_ns(lab);
    let endpoints = crate::graph::names::endpoint_ns(lab, "");
    for ns in crate::host::netns::list(&switch) {
        if ns == switch || ns.starts_with(&endpoints) {
            sweep(format!("namespace {ns}"), crate::host::netns::del(&ns));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&cx.dirs.root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        sweep(
            "files".into(),
            Err(crate::host::io("remove the lab's files")(e)),
        );
    }
    report
}

/// The names of the labs that exist on this host.
pub fn labs() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(crate::host::RUN_ROOT)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|l| crate::model::is_name(l));
    out.sort();
    out
}
