//! cloonix's side of its data-plane helpers (`crate::helper`): started through
//! [`process::launch`] inside the endpoint's namespace, in their own session, known by the
//! identity recorded then; reached through their control socket
//! `/run/cloonix/<lab>/helpers/<endpoint>.sock`.

use super::process::{self, Identity, Launch};
use super::{HostError, Lab, Result, io, netns};
use crate::helper::control::{self, Reply, Request};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a helper may take to open its ports and its control socket.
const READY_WITHIN: Duration = Duration::from_secs(5);

pub fn dir(lab: &Lab) -> PathBuf {
    lab.run.join("helpers")
}

pub fn socket(lab: &Lab, endpoint: &str) -> PathBuf {
    dir(lab).join(format!("{endpoint}.sock"))
}

fn log(lab: &Lab, endpoint: &str) -> PathBuf {
    dir(lab).join(format!("{endpoint}.log"))
}

/// Starts the helper of `endpoint` (`kind` is `a2b` or `c2c`, `args` its own arguments)
/// and waits until its control socket answers.
pub fn start(
    lab: &Lab,
    endpoint: &str,
    kind: &str,
    args: Vec<String>,
    pass_fd: Option<BorrowedFd>,
) -> Result<Identity> {
    std::fs::create_dir_all(dir(lab)).map_err(io("create the helpers' directory"))?;
    let sock = socket(lab, endpoint);
    let _ = std::fs::remove_file(&sock);
    let exe = std::env::current_exe().map_err(io("find cloonix's own program"))?;
    let mut argv = vec![
        "helper".to_string(),
        "--lab".into(),
        lab.name.clone(),
        "--endpoint".into(),
        endpoint.into(),
        "--socket".into(),
        sock.display().to_string(),
        kind.into(),
    ];
    argv.extend(args);
    // Inherited under its own number, which the helper is told: nothing else of
    // cloonix's reaches it.
    if let Some(fd) = pass_fd {
        argv.extend(["--udp-fd".into(), fd.as_raw_fd().to_string()]);
    }
    let pass: Vec<BorrowedFd> = pass_fd.into_iter().collect();
    let ns = netns::path(&lab.endpoint_ns(endpoint));
    let log = log(lab, endpoint);
    let id = process::launch(&Launch {
        program: &exe.display().to_string(),
        args: argv,
        env: Vec::new(),
        netns: Some(&ns),
        log: Some(&log),
        private_mounts: false,
        ready_fd: None,
        pass: &pass,
        user: None,
    })?;
    let start = Instant::now();
    loop {
        if query(lab, endpoint).is_ok() {
            return Ok(id);
        }
        if !id.alive() || start.elapsed() > READY_WITHIN {
            let _ = id.stop(Duration::ZERO);
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text.lines().last().unwrap_or("it said nothing");
            return Err(HostError::Other(format!(
                "the {kind} helper of {endpoint} did not start: {last}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Its settings and counters.
pub fn query(lab: &Lab, endpoint: &str) -> Result<Reply> {
    control::call(
        &socket(lab, endpoint),
        &Request::Get,
        Duration::from_secs(2),
    )
    .map_err(io(format!("ask the helper of {endpoint}")))
}

/// Sends it a request (new settings); its reply.
pub fn call(lab: &Lab, endpoint: &str, req: &Request) -> Result<Reply> {
    control::call(&socket(lab, endpoint), req, Duration::from_secs(2))
        .map_err(io(format!("tell the helper of {endpoint}")))
}

/// Stops the recorded helper and any unrecorded one of the endpoint, and removes its
/// control socket.
pub fn stop(lab: &Lab, endpoint: &str, kind: &str, id: Option<Identity>) -> Result<()> {
    if let Some(id) = id {
        id.stop(Duration::from_secs(1))?;
    }
    process::kill_all(&unrecorded(lab, Some(endpoint), kind))?;
    let _ = std::fs::remove_file(socket(lab, endpoint));
    Ok(())
}

/// Helpers of `kind` running in the lab's endpoint namespaces (of `endpoint` only, when
/// given) that are cloonix's helpers for this very lab and endpoint, by their arguments.
pub fn unrecorded(lab: &Lab, endpoint: Option<&str>, kind: &str) -> Vec<Identity> {
    let prefix = format!("{}_", lab.switch_ns());
    netns::list(&prefix)
        .into_iter()
        .filter_map(|ns| {
            let ep = ns.strip_prefix(&prefix)?.to_string();
            endpoint.is_none_or(|e| e == ep).then_some((ns, ep))
        })
        .flat_map(|(ns, ep)| {
            process::find_by_args(&netns::path(&ns), |a| is_helper(a, &lab.name, &ep, kind))
        })
        .collect()
}

fn is_helper(args: &[String], lab: &str, endpoint: &str, kind: &str) -> bool {
    let has = |flag: &str, value: &str| args.windows(2).any(|w| w[0] == flag && w[1] == value);
    args.get(1).is_some_and(|a| a == "helper")
        && has("--lab", lab)
        && has("--endpoint", endpoint)
        && args.iter().any(|a| a == kind)
}
