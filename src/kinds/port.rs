//! An OVS port: an interface of the switch namespace attached to a lan's bridge.

use super::{Facts, Lane, Needs, Seen, StepCx};
use crate::graph::{Kind, Port, Resource, ResourceId};
use crate::host::{Lab, Result, ovs};
use crate::status::{Health, LabStatus};

pub struct Driver;

impl super::Driver for Driver {
    type Spec = Port;
    type Receipt = ();

    fn lane(_id: &ResourceId, _s: &Port) -> Lane {
        Lane::Batch(Kind::Port)
    }

    fn create(cx: &StepCx, s: &Port) -> Result<()> {
        Self::create_batch(cx.lab, &[(cx.id, s)])
    }

    /// One transaction for all, applied by ovs-vswitchd once.
    fn create_batch(lab: &Lab, items: &[(&ResourceId, &Port)]) -> Result<()> {
        let owners: Vec<String> = items.iter().map(|(id, _)| id.to_string()).collect();
        let ports: Vec<(&str, &str, &str)> = items
            .iter()
            .zip(&owners)
            .map(|((_, p), owner)| (p.lan.as_str(), p.ifname.as_str(), owner.as_str()))
            .collect();
        ovs::add_new_ports(&mut lab.db()?, &ports)
    }

    fn update(cx: &StepCx, _before: &Port, s: &Port, _r: ()) -> Result<()> {
        ovs::move_port(&mut cx.lab.db()?, &s.lan, &s.ifname, &cx.owner())
    }

    fn destroy(cx: &StepCx, s: &Port, _r: ()) -> Result<()> {
        if cx.lab.tearing_down {
            return Ok(());
        }
        match cx.lab.db() {
            Ok(mut db) => ovs::del_port(&mut db, &s.ifname),
            // No database, no port.
            Err(_) => Ok(()),
        }
    }

    fn needs(lab: &Lab, _s: &Port, n: &mut Needs) {
        n.ovsdb = true;
        n.links.insert(Some(lab.switch_ns()));
    }

    fn observe(lab: &Lab, facts: &Facts, _id: &ResourceId, s: &mut Port, _r: &()) -> Seen {
        let Some(bridges) = &facts.bridges else {
            return Seen::Gone;
        };
        let on = bridges
            .iter()
            .find(|(_, b)| b.ports.contains_key(&s.ifname));
        // A port whose device vanished is no port: the datapath does not take a new device
        // of the same name back by itself.
        let device = facts.link(Some(&lab.switch_ns()), &s.ifname).is_some();
        match on {
            Some((bridge, _)) if device => {
                s.lan = bridge.clone();
                Seen::Present
            }
            _ => Seen::Gone,
        }
    }

    fn report(_lab: &Lab, _r: &Resource, p: &Port, _rc: &(), seen: &Seen, out: &mut LabStatus) {
        let ep = out.endpoint(&p.endpoint);
        if *seen == Seen::Gone {
            ep.problems.push(format!(
                "interface {}: its port on lan {} is gone",
                p.iface, p.lan
            ));
        }
        let iface = ep.interface(&p.iface);
        iface.lan = Some(p.lan.clone());
        if *seen == Seen::Gone {
            iface.state = Health::Missing;
        }
    }
}
