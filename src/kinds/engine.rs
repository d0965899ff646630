//! A container that podman or docker makes and runs from an image of its own store
//! (`runtime: podman|docker`), named `<lab>.<endpoint>`, labelled with the lab, with no
//! network of its own and the engine's default confinement (plus NET_ADMIN and NET_RAW, as
//! every cnt has; everything only with `privileged`, which needs `--allow-host`).
//!
//! It starts with its image's command held back: its files are written into it first,
//! through its init's root and resolved inside it as for crun (a symlink in the image never
//! sends a write to the host); then its namespace is bound as the endpoint's
//! (`endpoint_ns`) and its interfaces made there; then its container resource lets the
//! image's command go and runs `run` through the engine's exec (`container`).
//!
//! Its receipt is the engine's id of it and its init's identity: a container the engine
//! restarted or that was removed behind cloonix's back (`podman rm -f`) has another init or
//! none, and is drift, which apply makes anew.

use super::{ExecRequest, Facts, HostView, Refusal, Seen, StepCx};
use crate::graph::{EngineSpec, Resource, ResourceId};
use crate::host::engine::{self, Create, Engine};
use crate::host::process::Identity;
use crate::host::rootfs::{self, Lookup};
use crate::host::{HostError, Lab, Result, io};
use crate::status::{Health, LabStatus};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::PathBuf;

pub struct Driver;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// The engine's id of the container.
    pub id: Option<String>,
    /// Its init, pid 1: while it runs, so does this very container.
    pub init: Option<Identity>,
}

/// The directory bound into the container, where `go` lets its image's command start.
/// Apart from a crun endpoint's directory: a runtime change may make one while the other
/// goes.
fn gate(lab: &Lab, endpoint: &str) -> PathBuf {
    lab.state.join("gate").join(endpoint)
}

/// Says that the lab has had `engine` make containers: its sweep asks that engine only.
fn marker(lab: &Lab, engine: Engine) -> PathBuf {
    lab.run.join(format!("uses-{engine}"))
}

/// Lets the image's command of the endpoint's container start; once is enough.
pub fn open_gate(lab: &Lab, endpoint: &str) -> Result<()> {
    let go = gate(lab, endpoint).join("go");
    std::fs::write(&go, b"").map_err(io(format!("write {}", go.display())))
}

/// The root directory of a running container, opened through its init and checked to be
/// that init's (a pid may be reused once its process is gone).
fn root_of(init: &Identity) -> Result<File> {
    let root = File::open(format!("/proc/{}/root", init.pid))
        .map_err(io(format!("open the root of process {}", init.pid)))?;
    if !init.alive() {
        return Err(HostError::Other(format!(
            "the container's init ({}) is gone",
            init.pid
        )));
    }
    Ok(root)
}

fn mode(f: &crate::model::File) -> u32 {
    f.mode
        .as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o644)
}

/// Writes the files whose content or mode differ from `before`'s, and removes those it no
/// longer has.
fn write_files(init: &Identity, before: Option<&EngineSpec>, s: &EngineSpec) -> Result<()> {
    let root = root_of(init)?;
    for (path, f) in &s.files {
        if before.and_then(|b| b.files.get(path)) == Some(f) {
            continue;
        }
        let content = f.content.as_deref().unwrap_or_default();
        rootfs::write_file_at(&root, path, content.as_bytes(), mode(f))?;
    }
    for path in before.into_iter().flat_map(|b| b.files.keys()) {
        if !s.files.contains_key(path) {
            rootfs::remove_file_at(&root, path)?;
        }
    }
    Ok(())
}

fn running(r: &Receipt) -> Option<Identity> {
    r.init.filter(Identity::alive)
}

impl super::Driver for Driver {
    type Spec = EngineSpec;
    type Receipt = Receipt;

    /// The engine is installed and answers, the image is in its store, and no container
    /// of someone else's has the name.
    fn preflight(lab: &Lab, _host: &HostView, r: &Resource, s: &EngineSpec) -> Vec<Refusal> {
        if let Err(e) = engine::ready(s.engine).and_then(|()| engine::keeper()) {
            return vec![Refusal::new("runtime", e.to_string())];
        }
        let mut out = Vec::new();
        if let Err(e) = engine::image(s.engine, &s.image) {
            out.push(Refusal::new("image", e.to_string()));
        }
        let name = lab.container_id(&r.id.name);
        match engine::inspect(s.engine, &name) {
            Ok(Some(found)) if !found.of_lab(&lab.name) => out.push(Refusal::new(
                "runtime",
                format!(
                    "{} has a container named {name} that is not this lab's; remove or rename it",
                    s.engine
                ),
            )),
            Ok(_) => {}
            Err(e) => out.push(Refusal::new("runtime", e.to_string())),
        }
        out
    }

    fn create(cx: &StepCx, s: &EngineSpec) -> Result<Receipt> {
        let (lab, ep, e) = (cx.lab, cx.name(), s.engine);
        engine::ready(e)?;
        std::fs::create_dir_all(&lab.run).map_err(io("create the lab's directory"))?;
        std::fs::write(marker(lab, e), b"").map_err(io("mark the lab's engine"))?;
        let name = lab.container_id(ep);
        // A container of an interrupted apply, or of this endpoint before it was drift.
        if let Some(found) = engine::inspect(e, &name)? {
            if !found.of_lab(&lab.name) {
                return Err(HostError::Other(format!(
                    "{e} has a container named {name} that is not this lab's"
                )));
            }
            engine::remove(e, &found.id)?;
        }
        let gate = gate(lab, ep);
        let image = engine::image(e, &s.image)?;
        let id = engine::create(
            e,
            &Create {
                lab: &lab.name,
                name: &name,
                hostname: ep,
                image: &s.image,
                command: &image.command,
                env: &s.env,
                sysctl: &s.sysctl,
                privileged: s.privileged,
                cpu: s.cpu,
                ram: s.ram,
                gate: &gate,
            },
        )?;
        let mut receipt = Receipt {
            id: Some(id.clone()),
            init: None,
        };
        cx.checkpoint(&receipt)?;
        engine::start(e, &id)?;
        let init = engine::init(e, &name)?;
        receipt.init = Some(init);
        cx.checkpoint(&receipt)?;
        write_files(&init, None, s)?;
        Ok(receipt)
    }

    /// Only `files` change in place: written into the running container.
    fn update(_cx: &StepCx, before: &EngineSpec, s: &EngineSpec, r: Receipt) -> Result<Receipt> {
        let init = running(&r)
            .ok_or_else(|| HostError::Other(format!("its {} container does not run", s.engine)))?;
        write_files(&init, Some(before), s)?;
        Ok(r)
    }

    fn destroy(cx: &StepCx, s: &EngineSpec, r: Receipt) -> Result<()> {
        let (lab, ep) = (cx.lab, cx.name());
        let id = match r.id {
            Some(id) => Some(id),
            // Made but not recorded: this lab's container of that name, if any.
            None => engine::inspect(s.engine, &lab.container_id(ep))?
                .filter(|f| f.of_lab(&lab.name))
                .map(|f| f.id),
        };
        if let Some(id) = id {
            engine::remove(s.engine, &id)?;
        }
        match std::fs::remove_dir_all(gate(lab, ep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("remove the container's gate")(e))
            }
            _ => Ok(()),
        }
    }

    /// Its init runs: it is there, and its files are read back from it.
    fn observe(
        _lab: &Lab,
        _facts: &Facts,
        _id: &ResourceId,
        s: &mut EngineSpec,
        r: &Receipt,
    ) -> Seen {
        let Some(root) = running(r).and_then(|i| root_of(&i).ok()) else {
            return Seen::Gone;
        };
        s.files
            .retain(|path, f| match rootfs::read_file_at(&root, path) {
                Some(content) => {
                    f.content = Some(content);
                    true
                }
                None => false,
            });
        Seen::Present
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        s: &EngineSpec,
        rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = "cnt".into();
        ep.notes
            .push(format!("run by {} from image {}", s.engine, s.image));
        match seen {
            Seen::Present | Seen::Tainted(_) => ep.pid = rc.init.map(|i| i.pid),
            Seen::Gone => {
                ep.state = ep.state.max(Health::Down);
                ep.problems
                    .push(format!("its {} container is gone", s.engine));
            }
        }
    }

    /// Every container of the engines the lab used that carries the lab's label.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let mut failures = Vec::new();
        for e in Engine::ALL.into_iter().filter(|e| marker(lab, *e).exists()) {
            match engine::list(e, &lab.name) {
                Ok(ids) => failures.extend(ids.into_iter().filter_map(|id| {
                    engine::remove(e, &id)
                        .err()
                        .map(|err| (format!("{e} container {id}"), err))
                })),
                Err(err) => failures.push((format!("{e} containers"), err)),
            }
        }
        failures
    }

    /// Through the engine's exec. Its own failures and those of the command are told apart
    /// as for crun: 127 when the command is not in the container, 126 when it is not
    /// executable.
    fn exec(
        lab: &Lab,
        id: &ResourceId,
        s: &EngineSpec,
        r: &Receipt,
        req: &ExecRequest,
    ) -> Option<Result<i32>> {
        let run = || -> Result<i32> {
            let init = running(r).ok_or_else(|| {
                HostError::Other(format!("{} container {} is not running", s.engine, id.name))
            })?;
            let status =
                engine::exec_command(s.engine, &lab.container_id(&id.name), req.tty, req.argv)?
                    .status()
                    .map_err(io(format!("run {} exec", s.engine)))?;
            Ok(match status.code() {
                Some(code @ (126 | 127)) => {
                    let root = PathBuf::from(format!("/proc/{}/root", init.pid));
                    match rootfs::lookup(&root, &req.argv[0]) {
                        Lookup::Missing => 127,
                        Lookup::NotExecutable => 126,
                        Lookup::Found => code,
                    }
                }
                Some(code) => code,
                None => 128 + 9,
            })
        };
        Some(run())
    }
}
