//! The executor: runs a plan's waves on the host, the steps of a wave in parallel (in the
//! lanes their kinds ask for), records intent and receipts as steps end, and reports every
//! failure with the resource it concerns. One apply per lab at a time: a second one waits
//! on the lab's lock. It reaches the host only through the resource kinds.

mod destroy;
mod labs;
mod lock;

pub use destroy::destroy;
pub use labs::{image_users, labs};
pub use lock::{ImagesLock, LabLock};

use crate::graph::{Graph, ResourceId};
use crate::host::{HostError, Lab, intent};
use crate::kinds::{self, Lane, StepCx};
use crate::plan::{Op, Plan, Step};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many units of one wave run at once: most wait on a process or the kernel.
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

/// Work that one worker does: a batch of creates made by one call, steps that must run
/// one after another, or one step.
enum Unit {
    Batch(Vec<usize>),
    Serial(Vec<usize>),
    One(usize),
}

fn units(plan: &Plan, wave: &[usize]) -> Vec<Unit> {
    let mut batches: BTreeMap<Lane, Vec<usize>> = BTreeMap::new();
    let mut serial: BTreeMap<Lane, Vec<usize>> = BTreeMap::new();
    let mut out = Vec::new();
    for &i in wave {
        let step = &plan.steps[i];
        match kinds::lane(&step.resource) {
            lane @ Lane::Batch(_) if step.op == Op::Create => {
                batches.entry(lane).or_default().push(i)
            }
            lane @ Lane::Serial(_) => serial.entry(lane).or_default().push(i),
            Lane::Batch(_) | Lane::Free => out.push(Unit::One(i)),
        }
    }
    // Batches first in the list: they are few and each does the work of many.
    let mut all: Vec<Unit> = batches.into_values().map(Unit::Batch).collect();
    all.extend(serial.into_values().map(Unit::Serial));
    all.extend(out);
    all
}

/// Runs `plan`, wave by wave; stops after the first wave that has a failure. `desired`
/// gives what each made resource depends on, for its record; `receipts` are those of the
/// observed resources. `progress` is told of each step as it ends, `note` of what a long
/// step is doing meanwhile (an image build's stages).
pub fn execute(
    plan: &Plan,
    desired: &Graph,
    lab: &Lab,
    receipts: &BTreeMap<ResourceId, serde_json::Value>,
    progress: &(dyn Fn(&str) + Sync),
    note: &(dyn Fn(&str) + Sync),
) -> Report {
    let ex = Executor {
        plan,
        desired,
        lab,
        receipts,
        progress,
        note,
        failures: Mutex::new(Vec::new()),
        done: AtomicUsize::new(0),
    };
    for wave in &plan.waves {
        let units = units(plan, wave);
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL.min(units.len()) {
                scope.spawn(|| {
                    while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                        ex.run(unit);
                    }
                });
            }
        });
        if !ex.failures.lock().expect("no panics while held").is_empty() {
            break;
        }
    }
    Report {
        done: ex.done.into_inner(),
        failures: ex.failures.into_inner().expect("no panics while held"),
    }
}

struct Executor<'a> {
    plan: &'a Plan,
    desired: &'a Graph,
    lab: &'a Lab,
    receipts: &'a BTreeMap<ResourceId, serde_json::Value>,
    progress: &'a (dyn Fn(&str) + Sync),
    note: &'a (dyn Fn(&str) + Sync),
    failures: Mutex<Vec<Failure>>,
    done: AtomicUsize,
}

impl Executor<'_> {
    fn run(&self, unit: &Unit) {
        match unit {
            Unit::One(i) => self.step(&self.plan.steps[*i]),
            Unit::Serial(steps) => steps.iter().for_each(|&i| self.step(&self.plan.steps[i])),
            Unit::Batch(steps) => {
                let rs: Vec<_> = steps
                    .iter()
                    .map(|&i| &self.plan.steps[i].resource)
                    .collect();
                let made = kinds::create_batch(self.lab, &rs);
                for &i in steps {
                    let step = &self.plan.steps[i];
                    let result = match &made {
                        Ok(()) => self.record(step, serde_json::Value::Null),
                        Err(e) => Err(HostError::Other(e.to_string())),
                    };
                    self.finish(step, result);
                }
            }
        }
    }

    /// Carries out one step and records what it left.
    fn step(&self, step: &Step) {
        let checkpoint = |receipt| self.record(step, receipt);
        let cx = StepCx {
            lab: self.lab,
            id: &step.id,
            checkpoint: &checkpoint,
            progress: self.note,
        };
        let receipt = || self.receipts.get(&step.id).cloned().unwrap_or_default();
        let result = match (step.op, &step.before) {
            (Op::Create, _) => {
                kinds::create(&cx, &step.resource).and_then(|r| self.record(step, r))
            }
            (Op::Update, Some(before)) => kinds::update(&cx, before, &step.resource, &receipt())
                .and_then(|r| self.record(step, r)),
            (Op::Update, None) => Err(HostError::Other(format!(
                "{}: an update without the resource as it was",
                step.id
            ))),
            (Op::Destroy, _) => kinds::destroy(&cx, &step.resource, &receipt())
                .and_then(|()| intent::remove(self.lab, &step.id)),
        };
        self.finish(step, result);
    }

    /// Records a made or changed resource with its receipt.
    fn record(&self, step: &Step, receipt: serde_json::Value) -> Result<(), HostError> {
        let deps = self
            .desired
            .deps(&step.id)
            .into_iter()
            .map(|(id, d)| (id.clone(), d))
            .collect();
        intent::write(
            self.lab,
            &intent::Record {
                resource: step.resource.clone(),
                deps,
                receipt,
            },
        )
    }

    fn finish(&self, step: &Step, result: Result<(), HostError>) {
        let verb = match step.op {
            Op::Create => "created",
            Op::Update => "updated",
            Op::Destroy => "destroyed",
        };
        match result {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                (self.progress)(&format!("{verb} {}", step.id));
            }
            Err(e) => {
                (self.progress)(&format!("FAILED {} {}: {e}", step.op_name(), step.id));
                self.failures
                    .lock()
                    .expect("no panics while held")
                    .push(Failure {
                        resource: step.id.to_string(),
                        error: e.to_string(),
                    });
            }
        }
    }
}
