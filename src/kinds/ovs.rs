//! The lab's own ovsdb-server and ovs-vswitchd, in its switch namespace, with their files
//! under the lab's runtime directory: never the host's default database or daemons.
//! Known by the identities recorded when they were started, never by their pid files.

use super::{Facts, Seen, StepCx};
use crate::graph::{Ovs, Resource, ResourceId};
use crate::host::process::{self, Identity};
use crate::host::{HostError, Lab, Result, netns, ovs};
use crate::status::{Health, LabStatus, ProcessStatus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The daemons' identities, recorded as each starts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Daemons {
    pub db: Option<Identity>,
    pub switch: Option<Identity>,
    /// `system` or `netdev`, as chosen when they started.
    #[serde(default)]
    pub datapath: Option<String>,
}

pub struct Driver;

impl super::Driver for Driver {
    type Spec = Ovs;
    type Receipt = Daemons;

    fn create(cx: &StepCx, _s: &Ovs) -> Result<Daemons> {
        let ns = netns::path(&cx.lab.switch_ns());
        // Daemons an interrupted start left without a record: one without the other is
        // of no use, and a new pair needs the socket and the database to itself.
        process::kill_all(&ovs::unrecorded(&ns))?;
        let dir = cx.lab.ovs_dir();
        let db = ovs::start_db(&dir, &ns)?;
        let dp = ovs::choose_datapath();
        ovs::set_datapath(&dir, dp)?;
        let mut daemons = Daemons {
            db: Some(db),
            switch: None,
            datapath: Some(dp.as_str().into()),
        };
        cx.checkpoint(&daemons)?;
        daemons.switch = Some(ovs::start_switch(&dir, &ns)?);
        cx.checkpoint(&daemons)?;
        // A restarted switch reads bridges and ports back from the database: wait until it
        // has set them up, so that traffic flows when the step is done.
        ovs::transact_applied(&mut cx.lab.db()?, Vec::new())?;
        Ok(daemons)
    }

    fn update(_cx: &StepCx, _before: &Ovs, _s: &Ovs, r: Daemons) -> Result<Daemons> {
        Ok(r)
    }

    /// ovs-vswitchd gets SIGKILL: its orderly exit takes seconds with hundreds of ports.
    /// Nothing of its state outlives it but a kernel datapath, which goes with the
    /// switch namespace.
    fn destroy(cx: &StepCx, _s: &Ovs, r: Daemons) -> Result<()> {
        if let Some(switch) = r.switch {
            switch.stop(Duration::ZERO)?;
        }
        if let Some(db) = r.db {
            db.stop(Duration::from_secs(5))?;
        }
        process::kill_all(&ovs::unrecorded(&netns::path(&cx.lab.switch_ns())))
    }

    /// ovs-vswitchd takes the kernel a second or more to tear down (a socket per port):
    /// it gets SIGKILL first thing, and is waited for by `destroy`.
    fn hasten(_lab: &Lab, _s: &Ovs, r: &Daemons) {
        if let Some(switch) = &r.switch {
            switch.kill_now();
        }
    }

    fn observe(_lab: &Lab, _facts: &Facts, _id: &ResourceId, _s: &mut Ovs, r: &Daemons) -> Seen {
        let alive = |d: &Option<Identity>| d.as_ref().is_some_and(Identity::alive);
        match alive(&r.db) && alive(&r.switch) {
            true => Seen::Present,
            false => Seen::Gone,
        }
    }

    fn report(_lab: &Lab, _r: &Resource, _s: &Ovs, rc: &Daemons, seen: &Seen, out: &mut LabStatus) {
        for (name, d) in [("ovsdb-server", &rc.db), ("ovs-vswitchd", &rc.switch)] {
            if let Some(d) = d {
                let status = ProcessStatus {
                    pid: d.pid,
                    running: d.alive(),
                };
                out.switch.daemons.insert(name.into(), status);
            }
        }
        out.switch.datapath = rc.datapath.clone();
        out.switch.state = match seen {
            Seen::Present | Seen::Tainted(_) => Health::Up,
            Seen::Gone => Health::Down,
        };
    }

    /// The OVS programs running in the lab's switch namespace: nothing else runs there.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let ns = netns::path(&lab.switch_ns());
        match process::kill_all(&ovs::unrecorded(&ns)) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("ovs daemons".into(), e)],
        }
    }
}
