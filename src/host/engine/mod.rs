//! podman and docker, driven through their own command lines: the containers they run for
//! a lab, and the images of their stores.
//!
//! Why the CLIs and not docker's Engine API: the `docker` CLI is what users point at their
//! daemon (`DOCKER_HOST`, contexts, TLS), so cloonix reaches the daemon they use with no
//! configuration of its own; podman has no daemon to talk to; and one shape serves both.
//! What the API would save is a few tens of milliseconds per call, against lifecycle calls
//! that cost the daemon hundreds.
//!
//! Everything from the topology file reaches an engine as one argv element, never through
//! a shell: options are given as `--flag=value`, and the image reference (checked against
//! the reference grammar when the file is loaded) comes after every option and after `--`.
//! cloonix never pulls (`--pull=never`).

mod container;
pub mod export;
mod podman;

pub use crate::model::Engine;
pub use container::{
    Create, Found, create, create_args, exec_command, init, inspect, keeper, list, remove, start,
};

use super::{HostError, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;
/// The label that says which lab a container belongs to.
pub const LAB_LABEL: &str = "cloonix-lab";

/// The Debian package of an engine's command line.
pub fn package(engine: Engine) -> &'static str {
    match engine {
        Engine::Podman => "podman",
        Engine::Docker => "docker.io",
    }
}

/// The engine's command line, ready for arguments.
fn cli(engine: Engine) -> Result<Command> {
    let mut cmd = Command::new(engine.as_str());
    cmd.stdin(Stdio::null());
    if engine == Engine::Podman {
        let conf = podman::conf()?;
        if let Some(path) = &conf.file {
            cmd.env("CONTAINERS_CONF", path);
        }
        // conmon leaves a file named `oom` in its caller's directory when an exec'd
        // process is OOM-killed: not in the user's.
        cmd.current_dir(&conf.dir);
    }
    Ok(cmd)
}

/// Runs the engine with `args`; its standard output.
fn run(engine: Engine, args: &[&str], what: &str) -> Result<String> {
    super::run(cli(engine)?.args(args), what)
}

/// Whether the engine can run containers here: its command line is installed, and
/// docker's daemon answers. Asked once per process; the answer says what to install or
/// start.
pub fn ready(engine: Engine) -> Result<()> {
    static READY: Mutex<Option<HashMap<Engine, std::result::Result<(), String>>>> =
        Mutex::new(None);
    let mut known = READY.lock().expect("no panics while held");
    let answer = known
        .get_or_insert_with(HashMap::new)
        .entry(engine)
        .or_insert_with(|| check(engine).map_err(|e| e.to_string()));
    answer.clone().map_err(HostError::Other)
}

fn check(engine: Engine) -> Result<()> {
    if super::process::which(engine.as_str()).is_none() {
        return Err(HostError::Missing {
            program: engine.as_str().into(),
            package: package(engine),
        });
    }
    match engine {
        Engine::Docker => {
            let out = cli(engine)?
                .args(["version", "--format={{.Server.Version}}"])
                .output()
                .map_err(super::io("run docker"))?;
            if !out.status.success() {
                let host = std::env::var("DOCKER_HOST")
                    .unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
                return Err(HostError::Other(format!(
                    "cannot reach a docker daemon at {host} ({}): start dockerd, or point \
                     DOCKER_HOST at one",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(())
        }
        Engine::Podman => podman::check(),
    }
}

/// An image of an engine's store, as it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    /// Its entrypoint then its command: what a container of it runs.
    pub command: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImageJson {
    id: String,
    #[serde(default)]
    config: Option<ImageConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ImageConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
}

/// Whether an engine's error says that what was asked for does not exist.
fn no_such(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    e.contains("no such") || e.contains("not known") || e.contains("not found")
}

/// The image `reference` of the engine's local store; an error naming it when the store
/// has no such image (cloonix never pulls one).
pub fn image(engine: Engine, reference: &str) -> Result<Image> {
    let out = cli(engine)?
        .args(["image", "inspect", "--", reference])
        .output()
        .map_err(super::io(format!("run {engine}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if no_such(&stderr) {
            return Err(HostError::Other(format!(
                "image `{reference}` is not in {engine}'s local store (cloonix never pulls): \
                 build, load or pull it with {engine} first"
            )));
        }
        return Err(HostError::Command {
            what: format!("{engine} image inspect {reference}"),
            status: out.status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    let parsed: Vec<ImageJson> = serde_json::from_slice(&out.stdout)
        .map_err(|e| HostError::Other(format!("{engine} image inspect {reference}: {e}")))?;
    let img = parsed
        .into_iter()
        .next()
        .ok_or_else(|| HostError::Other(format!("{engine} image inspect {reference}: no image")))?;
    let config = img.config.unwrap_or_default();
    let mut command = config.entrypoint.unwrap_or_default();
    command.extend(config.cmd.unwrap_or_default());
    Ok(Image {
        id: img.id,
        command,
    })
}
