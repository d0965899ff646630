//! Inside a running guest, through its agent: the `run` commands and `files`.

use super::{agent_lock, sockets};
use crate::host::agent::{self, Agent};
use crate::host::crun::RunResult;
use crate::host::process::Identity;
use crate::host::{HostError, Lab, Result};
use crate::model::Command;
use std::time::Duration;

/// A `run` command's limit (a VM has no `run_timeout` field).
const RUN_TIMEOUT: u64 = 60;

/// The script of a `run` entry and how it is shown.
fn script_of(c: &Command) -> (String, String) {
    match c {
        Command::Shell(s) => (s.clone(), s.clone()),
        Command::Argv(a) => (agent::exec_script(a), a.join(" ")),
    }
}

/// Runs the commands in order through the agent, stopping at the first failure.
pub fn run_commands(a: &mut Agent, commands: &[Command]) -> Vec<RunResult> {
    crate::host::crun::in_order(commands, |c| {
        let (script, shown) = script_of(c);
        match a.run(&script, RUN_TIMEOUT, Duration::from_secs(RUN_TIMEOUT + 30)) {
            Ok(o) => RunResult {
                command: shown,
                exit_code: (o.code != 137).then_some(o.code),
                output: String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned(),
                timed_out: o.code == 137,
            },
            Err(e) => RunResult::not_run(shown, e),
        }
    })
}

/// Connects to a running VM's agent; `qemu`, when known, is what must still run.
pub fn agent_of(lab: &Lab, vm: &str, within: Duration, qemu: Option<Identity>) -> Result<Agent> {
    let alive = move || qemu.as_ref().is_none_or(Identity::alive);
    Agent::connect(
        &sockets(lab, vm).agent,
        &agent_lock(lab, vm),
        within,
        &alive,
    )
}

/// Writes a file into the running guest (its root: the initramfs's or the disk's).
pub fn write_file(a: &mut Agent, path: &str, content: &[u8], mode: u32) -> Result<()> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let p = agent::quote(path);
    let script = format!(
        "mkdir -p \"$(dirname {p})\" && echo {b64} | base64 -d > {p} && chmod {mode:o} {p}\n"
    );
    let o = a.run(&script, 30, Duration::from_secs(60))?;
    match o.code {
        0 => Ok(()),
        c => Err(HostError::Other(format!(
            "write {path} in the guest: exit {c}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
    }
}
