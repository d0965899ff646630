//! An endpoint's network namespace (containers, and the helpers' routers).

use super::{Facts, Seen, StepCx};
use crate::graph::{EndpointNs, Resource, ResourceId};
use crate::host::{HostError, Lab, Result, netns};
use crate::status::{Health, LabStatus};

pub struct Driver;

impl super::Driver for Driver {
    type Spec = EndpointNs;
    type Receipt = ();

    fn create(cx: &StepCx, _s: &EndpointNs) -> Result<()> {
        netns::add(&cx.lab.endpoint_ns(cx.name()))
    }

    fn update(cx: &StepCx, _before: &EndpointNs, _s: &EndpointNs, _r: ()) -> Result<()> {
        netns::add(&cx.lab.endpoint_ns(cx.name()))
    }

    /// When the whole lab goes, namespaces go last, in the sweep: until then the sweeps
    /// of the other kinds recognise what runs in them by them.
    fn destroy(cx: &StepCx, _s: &EndpointNs, _r: ()) -> Result<()> {
        if cx.lab.tearing_down {
            return Ok(());
        }
        netns::del(&cx.lab.endpoint_ns(cx.name()))
    }

    fn observe(lab: &Lab, facts: &Facts, id: &ResourceId, _s: &mut EndpointNs, _r: &()) -> Seen {
        match facts.namespaces.contains(&lab.endpoint_ns(&id.name)) {
            true => Seen::Present,
            false => Seen::Gone,
        }
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        s: &EndpointNs,
        _rc: &(),
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = s.kind.clone();
        if *seen == Seen::Gone {
            ep.problems.push("its network namespace is gone".into());
            ep.state = ep.state.max(Health::Down);
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
