//! One step on the real host: which driver makes, changes or removes each kind of resource.
//! "Already there" and "already gone" are success, so a step can always be run again.

use crate::graph::names::{endpoint_ns, switch_ns};
use crate::graph::{ImageRef, Netns, Resource, Spec};
use crate::host::{HostError, LabDirs, Result, crun, image, link, netns, ovs};
use crate::plan::{Op, Step};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Context {
    pub lab: String,
    pub dirs: LabDirs,
    /// The whole lab is going: its OVS database goes with its daemons, so ports and
    /// bridges need not be taken out of it one by one.
    pub tearing_down: bool,
}

impl Context {
    pub fn new(lab: &str) -> Self {
        Context {
            lab: lab.to_string(),
            dirs: LabDirs::new(lab),
            tearing_down: false,
        }
    }

    pub fn container_id(&self, endpoint: &str) -> String {
        format!("{}.{endpoint}", self.lab)
    }

    pub fn paths(&self, endpoint: &str) -> crun::Paths {
        crun::Paths {
            dir: self.dirs.endpoint(endpoint),
        }
    }

    fn db(&self) -> Result<ovs::Ovsdb> {
        ovs::Ovsdb::connect(&self.dirs)
    }

    fn ends(&self, v: &crate::graph::Veth) -> (link::End, link::End) {
        let inner = link::End {
            ns: match &v.ns {
                Netns::Host => None,
                Netns::Endpoint(e) => Some(endpoint_ns(&self.lab, e)),
            },
            name: v.ifname.clone(),
        };
        let outer = link::End {
            ns: Some(switch_ns(&self.lab)),
            name: v.peer.clone(),
        };
        (inner, outer)
    }
}

fn unsupported(r: &Resource) -> HostError {
    HostError::Other(format!(
        "{} endpoints are not supported on this host yet ({})",
        r.spec_kind(),
        r.id
    ))
}

/// Carries out one step.
pub fn perform(step: &Step, cx: &Context) -> Result<()> {
    let before = step.before.as_ref();
    let r = &step.resource;
    let owner = r.id.to_string();
    match (&r.spec, step.op) {
        (Spec::SwitchNs, Op::Create) => netns::add(&switch_ns(&cx.lab)),
        (Spec::SwitchNs, Op::Destroy) => netns::del(&switch_ns(&cx.lab)),
        (Spec::SwitchNs, Op::Update) => Ok(()),
        (Spec::Ovs, Op::Create | Op::Update) => ovs::start(&cx.dirs, &switch_ns(&cx.lab)),
        (Spec::Ovs, Op::Destroy) => ovs::stop(&cx.dirs),
        // The executor does a wave's of these at once; one alone is a batch of one.
        (Spec::Bridge { .. } | Spec::Port(_), Op::Create) => create_in_switch(&[step], cx),
        (Spec::Bridge { mtu, .. }, Op::Update) => {
            ovs::set_bridge_mtu(&mut cx.db()?, &r.id.name, *mtu)
        }
        // Going with the namespaces and the OVS daemons anyway.
        (Spec::Bridge { .. } | Spec::Port(_) | Spec::Veth(_) | Spec::File(_), Op::Destroy)
            if cx.tearing_down =>
        {
            Ok(())
        }
        (Spec::Bridge { .. }, Op::Destroy) => ovs::del_bridge(&mut cx.db()?, &r.id.name),
        (Spec::EndpointNs { .. }, Op::Create | Op::Update) => {
            netns::add(&endpoint_ns(&cx.lab, &r.id.name))
        }
        (Spec::EndpointNs { .. }, Op::Destroy) => netns::del(&endpoint_ns(&cx.lab, &r.id.name)),
        (Spec::Veth(v), Op::Create) => {
            let (inner, outer) = cx.ends(v);
            link::create_veth(&inner, &outer, v.mac, &v.ips, v.mtu)
        }
        (Spec::Veth(v), Op::Update) => {
            let (inner, outer) = cx.ends(v);
            let (old_name, old_ips) = match before.map(|b| &b.spec) {
                Some(Spec::Veth(old)) => (old.ifname.clone(), old.ips.clone()),
                _ => (v.ifname.clone(), Vec::new()),
            };
            link::update(&inner, &old_name, &outer, v.mac, v.mtu, &old_ips, &v.ips)
        }
        (Spec::Veth(v), Op::Destroy) => {
            let (inner, outer) = cx.ends(v);
            link::delete(&outer)?;
            link::delete(&inner)
        }
        (Spec::Port(p), Op::Update) => ovs::move_port(&mut cx.db()?, &p.lan, &p.ifname, &owner),
        (Spec::Port(p), Op::Destroy) => match cx.db() {
            Ok(mut db) => ovs::del_port(&mut db, &p.ifname),
            // No database, no port.
            Err(_) if !ovs::running(&cx.dirs) => Ok(()),
            Err(e) => Err(e),
        },
        (Spec::Rootfs(root), Op::Create | Op::Update) => {
            let image = image_dir(&root.image)?;
            crun::mount_root(&cx.paths(&r.id.name), &image)
        }
        (Spec::Rootfs(_), Op::Destroy) => crun::remove_root(&cx.paths(&r.id.name)),
        (Spec::File(f), Op::Create | Op::Update) => {
            let mode = f
                .mode
                .as_deref()
                .and_then(|m| u32::from_str_radix(m, 8).ok())
                .unwrap_or(0o644);
            crun::write_file(
                &cx.paths(&f.endpoint).merged(),
                &f.path,
                f.content.as_bytes(),
                mode,
            )
        }
        (Spec::File(f), Op::Destroy) => {
            let root = cx.paths(&f.endpoint).merged();
            // The file goes with its root when the root goes; alone, it is emptied away.
            if root.exists() {
                crun::remove_file(&root, &f.path)?;
            }
            Ok(())
        }
        (Spec::Container(c), Op::Create) => {
            let name = &r.id.name;
            let id = cx.container_id(name);
            let paths = cx.paths(name);
            let ns = netns::path(&endpoint_ns(&cx.lab, name));
            let spec = crun::Spec {
                id: &id,
                hostname: name,
                netns: &ns,
                env: &c.env,
                sysctl: &c.sysctl,
                privileged: c.privileged,
            };
            crun::start(&cx.dirs.crun_root(), &paths, &spec)?;
            let results = crun::run_commands(
                &cx.dirs.crun_root(),
                &id,
                &c.env,
                &c.run,
                Duration::from_millis(c.run_timeout.0),
            );
            let text = serde_json::to_vec_pretty(&results).expect("json");
            std::fs::write(paths.runs(), text).map_err(crate::host::io("record run results"))?;
            match results.iter().find(|r| !r.ok()) {
                None => Ok(()),
                Some(failed) => Err(HostError::RunFailed(describe_failure(failed))),
            }
        }
        // run_timeout only matters to the next start.
        (Spec::Container(_), Op::Update) => Ok(()),
        (Spec::Container(_), Op::Destroy) => {
            crun::delete(&cx.dirs.crun_root(), &cx.container_id(&r.id.name))
        }
        _ => Err(unsupported(r)),
    }
}

/// Whether a step is one that [`create_in_switch`] does for a whole wave at once.
pub fn is_switch_create(step: &Step) -> bool {
    step.op == Op::Create && matches!(step.resource.spec, Spec::Port(_) | Spec::Bridge { .. })
}

/// Creates the bridges and ports of several steps, one OVSDB transaction for each kind.
pub fn create_in_switch(steps: &[&Step], cx: &Context) -> Result<()> {
    let owners: Vec<String> = steps.iter().map(|s| s.id.to_string()).collect();
    let mut bridges = Vec::new();
    let mut ports = Vec::new();
    for (s, owner) in steps.iter().zip(&owners) {
        match &s.resource.spec {
            Spec::Bridge { mtu, .. } => bridges.push((s.id.name.as_str(), *mtu, owner.as_str())),
            Spec::Port(p) => ports.push((p.lan.as_str(), p.ifname.as_str(), owner.as_str())),
            _ => {}
        }
    }
    let mut db = cx.db()?;
    if !bridges.is_empty() {
        ovs::add_new_bridges(&mut db, &bridges)?;
    }
    if !ports.is_empty() {
        ovs::add_new_ports(&mut db, &ports)?;
    }
    Ok(())
}

pub fn describe_failure(r: &crun::RunResult) -> String {
    let how = match (r.timed_out, r.exit_code) {
        (true, _) => "timed out".to_string(),
        (false, Some(code)) => format!("exited with {code}"),
        (false, None) => "was killed".to_string(),
    };
    let output = r.output.trim();
    if output.is_empty() {
        format!("run `{}` {how}", r.command)
    } else {
        format!("run `{}` {how}:\n{output}", r.command)
    }
}

fn image_dir(image: &ImageRef) -> Result<PathBuf> {
    match image {
        ImageRef::Builtin => image::busybox(),
        ImageRef::Dir { path } => Ok(Path::new(path).to_path_buf()),
        ImageRef::Recipe { name, .. } => Err(HostError::Other(format!(
            "image `{name}`: building images from Debian packages is not supported yet"
        ))),
    }
}
