//! An endpoint's network namespace (containers, and the helpers' routers): made by cloonix,
//! or, for a container that podman or docker runs, that container's own, bound under the
//! endpoint's name once the engine started it. Either way it is `cloonix_<lab>_<endpoint>`,
//! so interfaces are made, changed and observed in it the same way, and an engine's
//! container keeps its pid 1 through every live change of its interfaces.

use super::{Facts, Seen, StepCx};
use crate::graph::{EndpointNs, Resource, ResourceId};
use crate::host::process::Identity;
use crate::host::{HostError, Lab, Result, engine, netns};
use crate::status::{Health, LabStatus};
use serde::{Deserialize, Serialize};

pub struct Driver;

/// For a bound namespace: the process it was taken from (the engine's container's init).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub init: Option<Identity>,
}

fn make(cx: &StepCx, s: &EndpointNs) -> Result<Receipt> {
    let ns = cx.lab.endpoint_ns(cx.name());
    match s.engine {
        None => netns::add(&ns).map(|()| Receipt::default()),
        Some(e) => {
            let init = engine::init(e, &cx.lab.container_id(cx.name()))?;
            netns::attach(&ns, &init)?;
            Ok(Receipt { init: Some(init) })
        }
    }
}

impl super::Driver for Driver {
    type Spec = EndpointNs;
    type Receipt = Receipt;

    fn create(cx: &StepCx, s: &EndpointNs) -> Result<Receipt> {
        make(cx, s)
    }

    fn update(cx: &StepCx, _before: &EndpointNs, s: &EndpointNs, _r: Receipt) -> Result<Receipt> {
        make(cx, s)
    }

    /// When the whole lab goes, namespaces go last, in the sweep: until then the sweeps
    /// of the other kinds recognise what runs in them by them.
    fn destroy(cx: &StepCx, _s: &EndpointNs, _r: Receipt) -> Result<()> {
        if cx.lab.tearing_down {
            return Ok(());
        }
        netns::del(&cx.lab.endpoint_ns(cx.name()))
    }

    /// A bound namespace holds on to the container's network after the container is gone
    /// (and its interfaces with it): it is then the namespace of no container, which apply
    /// replaces, interfaces and all.
    fn observe(lab: &Lab, facts: &Facts, id: &ResourceId, s: &mut EndpointNs, r: &Receipt) -> Seen {
        let ns = lab.endpoint_ns(&id.name);
        if !facts.namespaces.contains(&ns) {
            return Seen::Gone;
        }
        match (s.engine, r.init) {
            (None, _) => Seen::Present,
            (Some(_), Some(init))
                if init.netns_inode().is_some() && init.netns_inode() == netns::inode(&ns) =>
            {
                Seen::Present
            }
            (Some(e), _) => Seen::Tainted(format!("its {e} container is gone")),
        }
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        s: &EndpointNs,
        _rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = s.kind.clone();
        match seen {
            Seen::Present => {}
            Seen::Tainted(why) => ep
                .problems
                .push(format!("its network namespace is stale ({why})")),
            Seen::Gone => {
                ep.problems.push("its network namespace is gone".into());
                ep.state = ep.state.max(Health::Down);
            }
        }
    }

    /// Every `cloonix_<lab>_*` namespace: lab names hold no `_`, so these are this lab's
    /// and no other's. Removed by several threads at once: hundreds of them go when a
    /// large lab goes.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let all = netns::list(&lab.endpoint_ns(""));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failures = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8.min(all.len()) {
                s.spawn(|| {
                    while let Some(ns) =
                        all.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        if let Err(e) = netns::del(ns) {
                            let mut f = failures.lock().unwrap_or_else(|e| e.into_inner());
                            f.push((format!("namespace {ns}"), e));
                        }
                    }
                });
            }
        });
        failures.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
