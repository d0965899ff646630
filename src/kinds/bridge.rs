//! A lan's bridge in the lab's OVS, with its own internal port; made a wave at a time.

use super::{Facts, Lane, Needs, Seen, StepCx};
use crate::graph::{Bridge, Kind, Resource, ResourceId};
use crate::host::{Lab, Result, mirror, ovs};
use crate::status::{Health, LabStatus, LanStatus};

pub struct Driver;

impl super::Driver for Driver {
    type Spec = Bridge;
    type Receipt = ();

    fn lane(_id: &ResourceId, _s: &Bridge) -> Lane {
        Lane::Batch(Kind::Bridge)
    }

    fn create(cx: &StepCx, s: &Bridge) -> Result<()> {
        Self::create_batch(cx.lab, &[(cx.id, s)])
    }

    /// One transaction for all, applied by ovs-vswitchd once.
    fn create_batch(lab: &Lab, items: &[(&ResourceId, &Bridge)]) -> Result<()> {
        let owners: Vec<String> = items.iter().map(|(id, _)| id.to_string()).collect();
        let bridges: Vec<(&str, u32, &str)> = items
            .iter()
            .zip(&owners)
            .map(|((id, s), owner)| (id.name.as_str(), s.mtu, owner.as_str()))
            .collect();
        ovs::add_new_bridges(&mut lab.db()?, &bridges)
    }

    /// A lan closed to capture (`spy: false`) loses its running captures at once.
    fn update(cx: &StepCx, _before: &Bridge, s: &Bridge, _r: ()) -> Result<()> {
        let mut db = cx.lab.db()?;
        if !s.spy {
            mirror::remove_on_bridge(&mut db, cx.name())?;
        }
        ovs::set_bridge_mtu(&mut db, cx.name(), s.mtu)
    }

    fn destroy(cx: &StepCx, _s: &Bridge, _r: ()) -> Result<()> {
        // Going with the OVS database anyway.
        if cx.lab.tearing_down {
            return Ok(());
        }
        ovs::del_bridge(&mut cx.lab.db()?, cx.name())
    }

    fn needs(_lab: &Lab, _s: &Bridge, n: &mut Needs) {
        n.ovsdb = true;
    }

    fn observe(_lab: &Lab, facts: &Facts, id: &ResourceId, s: &mut Bridge, _r: &()) -> Seen {
        let row = facts.bridges.as_ref().and_then(|b| b.get(&id.name));
        match row {
            Some(row) if row.owner.as_deref() == Some(&id.to_string()) => {
                if let Some(m) = row.mtu {
                    s.mtu = m;
                }
                Seen::Present
            }
            _ => Seen::Gone,
        }
    }

    fn report(_lab: &Lab, r: &Resource, s: &Bridge, _rc: &(), seen: &Seen, out: &mut LabStatus) {
        let state = match seen {
            Seen::Present | Seen::Tainted(_) => Health::Up,
            Seen::Gone => Health::Missing,
        };
        out.lans
            .insert(r.id.name.clone(), LanStatus { state, mtu: s.mtu });
    }
}
