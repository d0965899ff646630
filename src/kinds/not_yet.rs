//! The driver of a kind whose real driver is not written yet: it refuses the kind before
//! anything is touched, and, should a step reach it anyway, fails rather than pretend.
//! Nothing of it can exist on the host, so observe never finds one.

use super::{Facts, HostView, Refusal, Seen, StepCx};
use crate::graph::{Resource, ResourceId};
use crate::host::{HostError, Lab, Result};
use std::marker::PhantomData;

pub struct NotYet<S>(PhantomData<S>);

fn endpoint_kind(r: &ResourceId) -> &'static str {
    match r.kind {
        crate::graph::Kind::Vm | crate::graph::Kind::Nic => "kvm",
        crate::graph::Kind::Nat => "nat",
        crate::graph::Kind::A2b => "a2b",
        crate::graph::Kind::C2c => "c2c",
        crate::graph::Kind::Phy => "phy",
        crate::graph::Kind::SwitchNs
        | crate::graph::Kind::Ovs
        | crate::graph::Kind::Bridge
        | crate::graph::Kind::EndpointNs
        | crate::graph::Kind::Veth
        | crate::graph::Kind::Port
        | crate::graph::Kind::Rootfs
        | crate::graph::Kind::File
        | crate::graph::Kind::Container
        | crate::graph::Kind::Engine => "this",
    }
}

fn refusal(id: &ResourceId) -> String {
    format!(
        "`{}` endpoints are not supported on this host yet",
        endpoint_kind(id)
    )
}

impl<S> super::Driver for NotYet<S> {
    type Spec = S;
    type Receipt = ();

    fn preflight(_lab: &Lab, _host: &HostView, r: &Resource, _s: &S) -> Vec<Refusal> {
        vec![Refusal::new("kind", refusal(&r.id))]
    }

    fn create(cx: &StepCx, _s: &S) -> Result<()> {
        Err(HostError::Other(refusal(cx.id)))
    }

    fn update(cx: &StepCx, _before: &S, _s: &S, _r: ()) -> Result<()> {
        Err(HostError::Other(refusal(cx.id)))
    }

    fn destroy(cx: &StepCx, _s: &S, _r: ()) -> Result<()> {
        Err(HostError::Other(refusal(cx.id)))
    }

    fn observe(_lab: &Lab, _facts: &Facts, _id: &ResourceId, _s: &mut S, _r: &()) -> Seen {
        Seen::Gone
    }
}
