//! An a2b: the helper process that delays, drops and shapes frames between the endpoint's
//! ports `a` and `b` (each a veth to its lan), changed live through its control socket.
//!
//! Frames reach the helper as the switch sends them. A direction with loss, rate or
//! jitter works on wire frames, so the switch side of its entry port gets no TX offloads
//! (the kernel cuts TSO segments into wire frames on the way in); a direction without
//! them lets 64 KiB segments through whole, which is what keeps an unimpaired a2b near the
//! speed of a lan.

use super::{Facts, Seen, StepCx};
use crate::graph::names::port_name;
use crate::graph::{A2bSpec, Resource, ResourceId};
use crate::helper::control::{A2bSettings, Request};
use crate::helper::impair::Direction;
use crate::host::process::Identity;
use crate::host::{HostError, Lab, Result, helper, netns};
use crate::status::LabStatus;
use serde::{Deserialize, Serialize};

const KIND: &str = "a2b";

/// The helper's identity, recorded when it starts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub helper: Option<Identity>,
}

pub struct Driver;

fn settings(s: &A2bSpec) -> A2bSettings {
    A2bSettings {
        a_to_b: s.a_to_b,
        b_to_a: s.b_to_a,
    }
}

/// Gives the switch side of each port the offloads its direction allows (see the
/// module's documentation): frames from lan `a` enter through port `a`.
fn shape_entries(lab: &Lab, endpoint: &str, s: &A2bSpec, only_cut: Option<bool>) -> Result<()> {
    let ports = [
        (
            port_name(endpoint, "a"),
            Direction::needs_wire_frames(&s.a_to_b),
        ),
        (
            port_name(endpoint, "b"),
            Direction::needs_wire_frames(&s.b_to_a),
        ),
    ];
    let ports: Vec<(String, bool)> = ports
        .into_iter()
        .filter(|(_, cut)| only_cut.is_none_or(|c| c == *cut))
        .collect();
    // Frames the helper sends back to the switch are merged into TCP segments (GRO)
    // where it cut them: the switch then moves one segment instead of 45 frames.
    netns::within(&lab.switch_ns(), move || {
        ports.iter().try_for_each(|(dev, cut)| {
            netns::set_tx_checksum(dev, !cut)?;
            netns::set_gro(dev, true)
        })
    })
}

fn start(cx: &StepCx, s: &A2bSpec) -> Result<Receipt> {
    let (lab, name) = (cx.lab, cx.name());
    helper::stop(lab, name, KIND, None)?;
    shape_entries(lab, name, s, None)?;
    let json = serde_json::to_string(&settings(s)).expect("settings serialize");
    let id = helper::start(lab, name, KIND, vec!["--settings".into(), json], None)?;
    Ok(Receipt { helper: Some(id) })
}

impl super::Driver for Driver {
    type Spec = A2bSpec;
    type Receipt = Receipt;

    fn create(cx: &StepCx, s: &A2bSpec) -> Result<Receipt> {
        start(cx, s)
    }

    /// New settings go to the running helper: same process, nothing dropped beyond what
    /// they drop. A direction that starts working per frame is cut into wire frames
    /// before the helper gets its settings; one that stops, after.
    fn update(cx: &StepCx, _before: &A2bSpec, s: &A2bSpec, r: Receipt) -> Result<Receipt> {
        if !r.helper.as_ref().is_some_and(Identity::alive) {
            return start(cx, s);
        }
        shape_entries(cx.lab, cx.name(), s, Some(true))?;
        helper::call(cx.lab, cx.name(), &Request::Set(settings(s)))?;
        shape_entries(cx.lab, cx.name(), s, Some(false))?;
        Ok(r)
    }

    fn destroy(cx: &StepCx, _s: &A2bSpec, r: Receipt) -> Result<()> {
        helper::stop(cx.lab, cx.name(), KIND, r.helper)
    }

    fn observe(lab: &Lab, _f: &Facts, id: &ResourceId, s: &mut A2bSpec, r: &Receipt) -> Seen {
        if !r.helper.as_ref().is_some_and(Identity::alive) {
            return Seen::Gone;
        }
        match helper::query(lab, &id.name).ok().and_then(|r| r.a2b) {
            Some(st) => {
                s.a_to_b = st.a_to_b.settings;
                s.b_to_a = st.b_to_a.settings;
                Seen::Present
            }
            None => Seen::Tainted("its helper does not answer on its control socket".into()),
        }
    }

    fn report(
        lab: &Lab,
        r: &Resource,
        _s: &A2bSpec,
        rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = KIND.into();
        super::report_process(
            ep,
            seen,
            rc.helper.map(|h| h.pid),
            "its helper is not running",
        );
        if *seen == Seen::Present {
            ep.a2b = helper::query(lab, &r.id.name).ok().and_then(|r| r.a2b);
        }
    }

    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let stray = helper::unrecorded(lab, None, KIND);
        match crate::host::process::kill_all(&stray) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("a2b helpers".into(), e)],
        }
    }
}
