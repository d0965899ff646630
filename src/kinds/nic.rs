//! A VM's NIC: its tap in the lab's switch namespace (the port of its lan hangs on it),
//! and, while the VM runs, its device in qemu and its name and addresses in the guest.
//!
//! A VM starts with the NICs that exist when it starts (`kinds::vm`); a NIC made or
//! removed while it runs is hot-plugged over QMP (`netdev_add` + `device_add`;
//! `device_del`, the guest's `DEVICE_DELETED`, then `netdev_del`), and the guest's agent
//! names and addresses it. A NIC's steps share its VM's lane: one QMP session per VM.

use super::{Facts, HostView, Lane, Needs, Refusal, Seen, StepCx};
use crate::graph::{Nic, Resource, ResourceId};
use crate::host::link::{self, End};
use crate::host::qemu;
use crate::host::qmp::{Qmp, QmpError};
use crate::host::{HostError, Lab, Result, guest, tap};
use crate::model::NicModel;
use crate::status::{Health, LabStatus};
use serde_json::json;
use std::os::fd::AsFd;
use std::time::Duration;

pub struct Driver;

/// How long a guest may take to let go of an unplugged device.
const UNPLUG_WAIT: Duration = Duration::from_secs(15);
const QMP_WAIT: Duration = Duration::from_secs(10);
/// `cx-netcfg` itself, sent with its arguments (a disk's root has no copy of it).
const NETCFG: &str = include_str!("../host/guest/cx-netcfg");

fn tap_end(lab: &Lab, n: &Nic) -> End {
    End {
        ns: Some(lab.switch_ns()),
        name: n.tap.clone(),
    }
}

/// A QMP session with the NIC's VM, if its qemu runs.
fn session(lab: &Lab, n: &Nic) -> Result<Option<Qmp>> {
    Qmp::connect(&super::vm::sockets(lab, &n.endpoint).qmp, QMP_WAIT)
}

/// Runs a script in the NIC's guest, failing on a non-zero exit.
fn in_guest(lab: &Lab, n: &Nic, what: &str, script: &str) -> Result<()> {
    let mut a = super::vm::agent_of(lab, &n.endpoint, Duration::from_secs(60), None)?;
    let o = a.run(script, 30, Duration::from_secs(60))?;
    match o.code {
        0 => Ok(()),
        c => Err(HostError::Other(format!(
            "{what} in VM {}: exit {c}: {}",
            n.endpoint,
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
    }
}

/// Names, sizes and addresses the NIC in the guest, waiting for it to appear.
fn configure(lab: &Lab, n: &Nic) -> Result<()> {
    if !n.agent {
        return Ok(());
    }
    let args = guest::netcfg_args(&guest::BootNic {
        mac: n.mac.to_string(),
        name: n.iface.clone(),
        mtu: n.mtu,
        ips: n.ips.iter().map(|c| c.to_string()).collect(),
    });
    let script = format!("set -- {}\n{NETCFG}", args.join(" "));
    in_guest(lab, n, &format!("configure {}", n.iface), &script)
}

fn ignore_missing(r: std::result::Result<serde_json::Value, QmpError>) -> Result<()> {
    match r {
        Ok(_) | Err(QmpError::Refused(..)) => Ok(()),
        Err(QmpError::Host(e)) => Err(e),
    }
}

/// Unplugs the NIC's device (if there) and its backend.
fn unplug(q: &mut Qmp, n: &Nic) -> Result<()> {
    let dev = qemu::device_id(&n.iface);
    if q.devices()?.contains(&dev) {
        q.device_del(&dev, UNPLUG_WAIT)?;
    }
    ignore_missing(q.cmd("netdev_del", json!({"id": qemu::netdev_id(&n.iface)})))
}

/// Plugs the NIC into its running VM; `again` first unplugs a device of the same id (its
/// tap was made anew, or its MAC changed). Nothing when the VM does not run: a new qemu
/// starts with every NIC whose tap exists.
fn plug(lab: &Lab, n: &Nic, again: bool) -> Result<()> {
    let Some(mut q) = session(lab, n)? else {
        return Ok(());
    };
    let present = q.devices()?.contains(&qemu::device_id(&n.iface));
    if present && again {
        unplug(&mut q, n)?;
    }
    if !present || again {
        // A backend left without its device by an interrupted plug.
        ignore_missing(q.cmd("netdev_del", json!({"id": qemu::netdev_id(&n.iface)})))?;
        // qemu runs as a user of its own: it gets the tap open, not its name.
        let fd = tap::open(&lab.switch_ns(), &n.tap)?;
        let fdname = format!("tap-{}", n.iface);
        q.give_fd(&fdname, fd.as_fd())?;
        drop(fd);
        q.cmd(
            "netdev_add",
            json!({"type": "tap", "id": qemu::netdev_id(&n.iface), "fd": fdname}),
        )?;
        q.cmd(
            "device_add",
            json!({"driver": qemu::driver(n.model), "netdev": qemu::netdev_id(&n.iface),
                   "mac": n.mac.to_string(), "id": qemu::device_id(&n.iface)}),
        )?;
    }
    drop(q);
    configure(lab, n)
}

impl super::Driver for Driver {
    type Spec = Nic;
    type Receipt = ();

    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, n: &Nic) -> Vec<Refusal> {
        match (n.agent, n.model) {
            (true, NicModel::E1000) => vec![Refusal::new(
                "eth",
                format!(
                    "{}: the built-in guest's kernel (Debian's cloud kernel) drives virtio NICs only; use `model: virtio`",
                    n.iface
                ),
            )],
            _ => Vec::new(),
        }
    }

    fn lane(_id: &ResourceId, n: &Nic) -> Lane {
        Lane::Serial(format!("vm {}", n.endpoint))
    }

    fn create(cx: &StepCx, n: &Nic) -> Result<()> {
        let existed = tap::create(&cx.lab.switch_ns(), &n.tap, n.mtu)?;
        plug(cx.lab, n, !existed)
    }

    fn update(cx: &StepCx, before: &Nic, n: &Nic, _r: ()) -> Result<()> {
        if before.mtu != n.mtu {
            tap::set_mtu(&cx.lab.switch_ns(), &n.tap, n.mtu)?;
        }
        if session(cx.lab, n)?.is_none() {
            return Ok(());
        }
        if before.mac != n.mac {
            // A new MAC is a new device on the same tap; the guest names and addresses it.
            return plug(cx.lab, n, true);
        }
        if !n.agent {
            return Ok(());
        }
        let name = crate::host::agent::quote(&n.iface);
        let mut script = format!("ip link set dev {name} mtu {}\n", n.mtu);
        for ip in before.ips.iter().filter(|ip| !n.ips.contains(ip)) {
            script.push_str(&format!("ip addr del {ip} dev {name}\n"));
        }
        for ip in n.ips.iter().filter(|ip| !before.ips.contains(ip)) {
            script.push_str(&format!("ip addr add {ip} dev {name}\n"));
        }
        in_guest(cx.lab, n, &format!("change {}", n.iface), &script)
    }

    fn destroy(cx: &StepCx, n: &Nic, _r: ()) -> Result<()> {
        // The VM was stopped first; the tap goes with the switch namespace.
        if cx.lab.tearing_down {
            return Ok(());
        }
        if let Some(mut q) = session(cx.lab, n)? {
            unplug(&mut q, n)?;
        }
        link::delete_owned(&tap_end(cx.lab, n))
    }

    fn needs(lab: &Lab, _n: &Nic, needs: &mut Needs) {
        needs.links.insert(Some(lab.switch_ns()));
    }

    fn observe(lab: &Lab, facts: &Facts, _id: &ResourceId, n: &mut Nic, _r: &()) -> Seen {
        match facts.link(Some(&lab.switch_ns()), &n.tap) {
            Some(l) => {
                n.mtu = l.mtu;
                Seen::Present
            }
            None => Seen::Gone,
        }
    }

    fn report(_lab: &Lab, _r: &Resource, n: &Nic, _rc: &(), seen: &Seen, out: &mut LabStatus) {
        let ep = out.endpoint(&n.endpoint);
        let iface = ep.interface(&n.iface);
        iface.state = match seen {
            Seen::Gone => Health::Missing,
            Seen::Present | Seen::Tainted(_) => Health::Up,
        };
        iface.mac = Some(n.mac.to_string());
        iface.ips = n.ips.iter().map(|c| c.to_string()).collect();
        if *seen == Seen::Gone {
            ep.problems
                .push(format!("interface {}: its tap is gone", n.iface));
        }
    }
}
