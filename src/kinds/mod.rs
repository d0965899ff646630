//! One home per resource kind. Each kind is a module with a [`Driver`]: how its resources
//! are made, changed in place, removed, observed from the batched [`Facts`], swept after
//! an interrupted apply, reported in `status`, and reached by `exec`. The executor, the
//! observer, `destroy` and `status` reach a kind only through [`dispatch!`], one `match`
//! over [`Spec`] with no catch-all arm: a new kind does not compile until its driver
//! exists, and no kind is ever treated as "present" or "done" by default.

mod a2b;
mod bridge;
mod c2c;
mod container;
mod endpoint_ns;
mod engine;
mod facts;
mod file;
mod nat;
mod nic;
mod ovs;
mod phy;
mod port;
mod rootfs;
mod switch_ns;
mod veth;
mod vm;

pub use container::{LIMITS_NOT_ENFORCED, RunState, describe_failure};
pub use facts::{Facts, Needs};

use crate::graph::{Kind, Resource, ResourceId, Spec};
use crate::host::process::Identity;
use crate::host::{HostError, Lab, Result};
use crate::status::LabStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a step's work goes. Most steps run freely in parallel; some kinds batch theirs
/// or must not run two at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Any worker, in parallel with anything.
    Free,
    /// Creates of this kind in one wave are made by one call (one OVS transaction).
    Batch(Kind),
    /// Steps with the same key run one after another (one QMP session per VM).
    Serial(String),
}

/// What observe found of a recorded resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// It is there; the spec now says what the host says of it.
    Present,
    /// It is gone (drift: apply makes it again).
    Gone,
    /// It is there but cloonix cannot vouch for it: apply replaces it, saying why.
    Tainted(String),
}

/// What is seen of an endpoint that is one process with `run` steps after its start
/// (a container, a VM): gone if the process is not the one recorded, tainted if cloonix
/// was stopped while the steps ran (nobody knows how far they got).
pub(crate) fn seen_process(process: Option<&Identity>, runs: &RunState, interrupted: &str) -> Seen {
    if !process.is_some_and(Identity::alive) {
        return Seen::Gone;
    }
    match runs {
        RunState::Running => Seen::Tainted(interrupted.into()),
        RunState::Unknown | RunState::Done(_) => Seen::Present,
    }
}

/// The lines every endpoint that is one process has in `status`: its pid, and what is
/// wrong with it (`gone` says which process is missing).
pub(crate) fn report_process(
    ep: &mut crate::status::EndpointStatus,
    seen: &Seen,
    pid: Option<i32>,
    gone: &str,
) {
    match seen {
        Seen::Present => ep.pid = pid,
        Seen::Tainted(why) => {
            ep.pid = pid;
            ep.problems
                .push(format!("{why}: the next apply replaces it"));
        }
        Seen::Gone => {
            ep.state = ep.state.max(crate::status::Health::Down);
            ep.problems.push(gone.into());
        }
    }
}

/// What a driver gets for one step.
pub struct StepCx<'a> {
    pub lab: &'a Lab,
    pub id: &'a ResourceId,
    /// Records the resource with this receipt now, before the step is over: for what must
    /// be known even if cloonix is killed before the step ends.
    pub checkpoint: &'a (dyn Fn(serde_json::Value) -> Result<()> + Sync),
    /// Tells the user of something long under way (an image build).
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl StepCx<'_> {
    pub fn name(&self) -> &str {
        &self.id.name
    }

    /// The owner label of rows and objects this step makes: the resource's id.
    pub fn owner(&self) -> String {
        self.id.to_string()
    }

    pub fn checkpoint<R: Serialize>(&self, receipt: &R) -> Result<()> {
        (self.checkpoint)(serde_json::to_value(receipt).expect("receipts serialize"))
    }
}

/// Why a resource cannot be applied, found before anything is touched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// The endpoint field the reason is about (to point at it in the file).
    pub field: Option<&'static str>,
    pub message: String,
    /// Lifted by `--allow-host`: it reaches into the host, which the user may allow.
    pub host_item: bool,
}

impl Refusal {
    pub fn new(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            field: Some(field),
            message: message.into(),
            host_item: false,
        }
    }
}

/// A command to run in an endpoint.
pub struct ExecRequest<'a> {
    pub argv: &'a [String],
    /// Attach a terminal (an interactive shell).
    pub tty: bool,
    /// Collect the output and bound the time (a check) instead of handing the command
    /// cloonix's own standard output and error.
    pub capture: Option<&'a Capture>,
}

/// Where a captured command's output goes, and how long it may run; a command that runs
/// out of time is stopped and its exec is an error saying so.
#[derive(Debug)]
pub struct Capture {
    pub timeout: std::time::Duration,
    pub output: std::sync::Mutex<String>,
}

impl Capture {
    pub fn new(timeout: std::time::Duration) -> Capture {
        Capture {
            timeout,
            output: Default::default(),
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// How a kind lives on the host. See the module's documentation.
pub trait Driver {
    /// The graph's description of one resource of this kind.
    type Spec;
    /// What cloonix records when it makes one, that the host cannot tell it later.
    type Receipt: Serialize + DeserializeOwned + Default;

    /// Reasons to refuse the resource before anything is touched: a kind with no
    /// driver, a host name taken by someone else.
    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, _s: &Self::Spec) -> Vec<Refusal> {
        Vec::new()
    }

    fn lane(_id: &ResourceId, _s: &Self::Spec) -> Lane {
        Lane::Free
    }

    /// Makes the resource. "It is there already" (a leftover of an interrupted apply)
    /// ends the same as "it was made".
    fn create(cx: &StepCx, s: &Self::Spec) -> Result<Self::Receipt>;

    /// Makes many resources of a [`Lane::Batch`] kind at once.
    fn create_batch(lab: &Lab, items: &[(&ResourceId, &Self::Spec)]) -> Result<()> {
        let _ = (lab, items);
        Err(HostError::Other(
            "this kind makes its resources one by one".into(),
        ))
    }

    /// Changes the running resource from `before` to `s`.
    fn update(
        cx: &StepCx,
        before: &Self::Spec,
        s: &Self::Spec,
        receipt: Self::Receipt,
    ) -> Result<Self::Receipt>;

    /// Removes the resource; one that is gone already is fine.
    fn destroy(cx: &StepCx, s: &Self::Spec, receipt: Self::Receipt) -> Result<()>;

    /// When the whole lab goes: starts, without waiting, whatever of this resource takes
    /// long to end (a process the kernel tears down slowly), so that it ends while the rest
    /// of the lab goes; `destroy` then waits for it.
    fn hasten(_lab: &Lab, _s: &Self::Spec, _receipt: &Self::Receipt) {}

    /// Asks for the facts that [`Driver::observe`] will read.
    fn needs(_lab: &Lab, _s: &Self::Spec, _n: &mut Needs) {}

    /// Checks the recorded resource against the host; attributes the host can tell are
    /// written into `s`.
    fn observe(
        lab: &Lab,
        facts: &Facts,
        id: &ResourceId,
        s: &mut Self::Spec,
        receipt: &Self::Receipt,
    ) -> Seen;

    /// Adds this resource's lines to the lab's status.
    fn report(
        _lab: &Lab,
        _r: &Resource,
        _s: &Self::Spec,
        _receipt: &Self::Receipt,
        _seen: &Seen,
        _out: &mut LabStatus,
    ) {
    }

    /// Removes what an interrupted apply made of this kind without recording it,
    /// recognising it by name and identity; every failure is returned, named.
    fn sweep(_lab: &Lab) -> Vec<(String, HostError)> {
        Vec::new()
    }

    /// Runs a command in the endpoint, for kinds that can: its exit code.
    fn exec(
        _lab: &Lab,
        _id: &ResourceId,
        _s: &Self::Spec,
        _receipt: &Self::Receipt,
        _req: &ExecRequest,
    ) -> Option<Result<i32>> {
        None
    }

    /// The socket of the endpoint's serial console, for kinds that have one.
    fn console(
        _lab: &Lab,
        _id: &ResourceId,
        _s: &Self::Spec,
        _receipt: &Self::Receipt,
    ) -> Option<Result<std::path::PathBuf>> {
        None
    }
}

/// What preflight may know of the host: its interfaces and networks, read once.
#[derive(Debug, Default)]
pub struct HostView {
    pub links: std::collections::BTreeMap<String, crate::host::netlink::Link>,
    /// Route destinations and their outgoing interfaces.
    pub routes: Vec<(ipnet::IpNet, Option<u32>)>,
    /// The interfaces of the lab's switch namespace, if it has one yet.
    pub switch_links: std::collections::BTreeMap<String, crate::host::netlink::Link>,
}

impl HostView {
    pub fn read(lab: &Lab) -> Result<HostView> {
        let switch = lab.switch_ns();
        Ok(HostView {
            links: crate::host::link::dump(None)?,
            routes: crate::host::link::host_routes()?,
            switch_links: match crate::host::netns::exists(&switch) {
                true => crate::host::link::dump(Some(&switch))?,
                false => Default::default(),
            },
        })
    }
}

/// Every refusal of a desired lab, with the resource it concerns, in the graph's order.
pub fn preflight_all<'g>(
    lab: &Lab,
    desired: &'g crate::graph::Graph,
) -> Result<Vec<(&'g Resource, Refusal)>> {
    let host = HostView::read(lab)?;
    Ok(desired
        .resources()
        .flat_map(|r| preflight(lab, &host, r).into_iter().map(move |f| (r, f)))
        .collect())
}

/// Runs `$body` with the type `$d` bound to the driver of `$spec`'s kind and `$s` to its
/// payload. The one dispatch over kinds: one line per kind, and no `_` arm.
macro_rules! dispatch {
    ($spec:expr, $d:ident, $s:ident => $body:expr) => {
        match $spec {
            Spec::SwitchNs($s) => {
                #[allow(dead_code)]
                type $d = switch_ns::Driver;
                $body
            }
            Spec::Ovs($s) => {
                #[allow(dead_code)]
                type $d = ovs::Driver;
                $body
            }
            Spec::Bridge($s) => {
                #[allow(dead_code)]
                type $d = bridge::Driver;
                $body
            }
            Spec::EndpointNs($s) => {
                #[allow(dead_code)]
                type $d = endpoint_ns::Driver;
                $body
            }
            Spec::Veth($s) => {
                #[allow(dead_code)]
                type $d = veth::Driver;
                $body
            }
            Spec::Port($s) => {
                #[allow(dead_code)]
                type $d = port::Driver;
                $body
            }
            Spec::Rootfs($s) => {
                #[allow(dead_code)]
                type $d = rootfs::Driver;
                $body
            }
            Spec::File($s) => {
                #[allow(dead_code)]
                type $d = file::Driver;
                $body
            }
            Spec::Container($s) => {
                #[allow(dead_code)]
                type $d = container::Driver;
                $body
            }
            Spec::Engine($s) => {
                #[allow(dead_code)]
                type $d = engine::Driver;
                $body
            }
            Spec::Vm($s) => {
                #[allow(dead_code)]
                type $d = vm::Driver;
                $body
            }
            Spec::Nic($s) => {
                #[allow(dead_code)]
                type $d = nic::Driver;
                $body
            }
            Spec::Nat($s) => {
                #[allow(dead_code)]
                type $d = nat::Driver;
                $body
            }
            Spec::A2b($s) => {
                #[allow(dead_code)]
                type $d = a2b::Driver;
                $body
            }
            Spec::C2c($s) => {
                #[allow(dead_code)]
                type $d = c2c::Driver;
                $body
            }
            Spec::Phy($s) => {
                #[allow(dead_code)]
                type $d = phy::Driver;
                $body
            }
        }
    };
}

/// Sweeps one kind: [`Kind::ALL`] gives the order.
pub fn sweep(kind: Kind, lab: &Lab) -> Vec<(String, HostError)> {
    match kind {
        Kind::SwitchNs => switch_ns::Driver::sweep(lab),
        Kind::Ovs => ovs::Driver::sweep(lab),
        Kind::Bridge => bridge::Driver::sweep(lab),
        Kind::EndpointNs => endpoint_ns::Driver::sweep(lab),
        Kind::Veth => veth::Driver::sweep(lab),
        Kind::Port => port::Driver::sweep(lab),
        Kind::Rootfs => rootfs::Driver::sweep(lab),
        Kind::File => file::Driver::sweep(lab),
        Kind::Container => container::Driver::sweep(lab),
        Kind::Engine => engine::Driver::sweep(lab),
        Kind::Vm => vm::Driver::sweep(lab),
        Kind::Nic => nic::Driver::sweep(lab),
        Kind::Nat => nat::Driver::sweep(lab),
        Kind::A2b => a2b::Driver::sweep(lab),
        Kind::C2c => c2c::Driver::sweep(lab),
        Kind::Phy => phy::Driver::sweep(lab),
    }
}

/// A receipt as its kind's type; an unreadable one (from another version) is the
/// default, which every kind treats as "nothing known".
fn receipt_of<R: DeserializeOwned + Default>(v: &serde_json::Value) -> R {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn to_value<R: Serialize>(r: &R) -> serde_json::Value {
    serde_json::to_value(r).expect("receipts serialize")
}

/// `spec`'s payload as driver `D`'s spec, when it is of `D`'s kind.
fn payload<D: Driver>(spec: &Spec) -> Option<&D::Spec>
where
    D::Spec: 'static,
{
    dispatch!(spec, _E, t => (t as &dyn std::any::Any).downcast_ref::<D::Spec>())
}

/// Reasons to refuse a resource before anything is touched.
pub fn preflight(lab: &Lab, host: &HostView, r: &Resource) -> Vec<Refusal> {
    dispatch!(&r.spec, D, s => D::preflight(lab, host, r, s))
}

pub fn lane(r: &Resource) -> Lane {
    dispatch!(&r.spec, D, s => D::lane(&r.id, s))
}

/// Makes a resource; its receipt.
pub fn create(cx: &StepCx, r: &Resource) -> Result<serde_json::Value> {
    dispatch!(&r.spec, D, s => D::create(cx, s).map(|rc| to_value(&rc)))
}

/// Makes several resources of one batched kind (that of the first) at once.
pub fn create_batch(lab: &Lab, rs: &[&Resource]) -> Result<()> {
    fn batch<D: Driver>(lab: &Lab, rs: &[&Resource]) -> Result<()>
    where
        D::Spec: 'static,
    {
        let typed = rs
            .iter()
            .map(|r| {
                payload::<D>(&r.spec)
                    .map(|s| (&r.id, s))
                    .ok_or_else(|| HostError::Other(format!("{}: not of the batch's kind", r.id)))
            })
            .collect::<Result<Vec<_>>>()?;
        D::create_batch(lab, &typed)
    }
    let Some(first) = rs.first() else {
        return Ok(());
    };
    dispatch!(&first.spec, D, _s => batch::<D>(lab, rs))
}

/// Changes a resource from `before`; its new receipt.
// The dispatch instantiates this for kinds whose receipt is `()` too.
#[allow(clippy::unit_arg)]
pub fn update(
    cx: &StepCx,
    before: &Resource,
    r: &Resource,
    receipt: &serde_json::Value,
) -> Result<serde_json::Value> {
    dispatch!(&r.spec, D, s => {
        let old = payload::<D>(&before.spec)
            .ok_or_else(|| HostError::Other(format!("{}: its kind changed", r.id)))?;
        D::update(cx, old, s, receipt_of(receipt)).map(|rc| to_value(&rc))
    })
}

#[allow(clippy::unit_arg)]
pub fn destroy(cx: &StepCx, r: &Resource, receipt: &serde_json::Value) -> Result<()> {
    dispatch!(&r.spec, D, s => D::destroy(cx, s, receipt_of(receipt)))
}

pub fn hasten(lab: &Lab, r: &Resource, receipt: &serde_json::Value) {
    dispatch!(&r.spec, D, s => D::hasten(lab, s, &receipt_of(receipt)))
}

pub fn needs(lab: &Lab, r: &Resource, n: &mut Needs) {
    dispatch!(&r.spec, D, s => D::needs(lab, s, n))
}

/// Checks a recorded resource against the host: `r` then says what the host has.
pub fn observe(lab: &Lab, facts: &Facts, r: &mut Resource, receipt: &serde_json::Value) -> Seen {
    let id = r.id.clone();
    dispatch!(&mut r.spec, D, s => D::observe(lab, facts, &id, s, &receipt_of(receipt)))
}

pub fn report(
    lab: &Lab,
    r: &Resource,
    receipt: &serde_json::Value,
    seen: &Seen,
    out: &mut LabStatus,
) {
    dispatch!(&r.spec, D, s => D::report(lab, r, s, &receipt_of(receipt), seen, out))
}

pub fn exec(
    lab: &Lab,
    r: &Resource,
    receipt: &serde_json::Value,
    req: &ExecRequest,
) -> Option<Result<i32>> {
    dispatch!(&r.spec, D, s => D::exec(lab, &r.id, s, &receipt_of(receipt), req))
}

pub fn console(
    lab: &Lab,
    r: &Resource,
    receipt: &serde_json::Value,
) -> Option<Result<std::path::PathBuf>> {
    dispatch!(&r.spec, D, s => D::console(lab, &r.id, s, &receipt_of(receipt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_swept() {
        let mut all = Kind::ALL.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), Kind::ALL.len());
        // A kind missing from ALL would never be swept; the match in `sweep` is exhaustive,
        // so counting the variants through it is enough.
        let count = |k: Kind| match k {
            Kind::SwitchNs
            | Kind::Ovs
            | Kind::Bridge
            | Kind::EndpointNs
            | Kind::Veth
            | Kind::Port
            | Kind::Rootfs
            | Kind::File
            | Kind::Container
            | Kind::Engine
            | Kind::Vm
            | Kind::Nic
            | Kind::Nat
            | Kind::A2b
            | Kind::C2c
            | Kind::Phy => 1,
        };
        assert_eq!(Kind::ALL.iter().map(|k| count(*k)).sum::<usize>(), 16);
    }
}
