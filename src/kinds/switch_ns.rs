//! The lab's switch namespace, where its OVS daemons and bridges live.

use super::{Facts, Seen, StepCx};
use crate::graph::{ResourceId, SwitchNs};
use crate::host::{HostError, Lab, Result, netns};

pub struct Driver;

impl super::Driver for Driver {
    type Spec = SwitchNs;
    type Receipt = ();

    fn create(cx: &StepCx, _s: &SwitchNs) -> Result<()> {
        netns::add(&cx.lab.switch_ns())
    }

    fn update(_cx: &StepCx, _before: &SwitchNs, _s: &SwitchNs, _r: ()) -> Result<()> {
        Ok(())
    }

    /// When the whole lab goes, namespaces go last, in the sweep: until then the sweeps
    /// of the other kinds recognise what runs in them by them.
    fn destroy(cx: &StepCx, _s: &SwitchNs, _r: ()) -> Result<()> {
        if cx.lab.tearing_down {
            return Ok(());
        }
        netns::del(&cx.lab.switch_ns())
    }

    fn observe(lab: &Lab, facts: &Facts, _id: &ResourceId, _s: &mut SwitchNs, _r: &()) -> Seen {
        match facts.namespaces.contains(&lab.switch_ns()) {
            true => Seen::Present,
            false => Seen::Gone,
        }
    }

    /// The namespace, made by name: nobody else names one `cloonix_<lab>`.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let ns = lab.switch_ns();
        match netns::del(&ns) {
            Ok(()) => Vec::new(),
            Err(e) => vec![(format!("namespace {ns}"), e)],
        }
    }
}
