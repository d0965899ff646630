//! The containers an engine runs for a lab: made with everything from the file as single
//! arguments after `--`, their image's command held back until cloonix opens their gate,
//! found, entered and removed.

use super::super::process::Identity;
use super::super::{HostError, Result};
use super::{Engine, LAB_LABEL, cli, no_such, run};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Inside an engine's container: Debian's static busybox, bound read-only, which runs the
/// small script that holds the image's command back and keeps the container up.
const BUSYBOX: &str = "/bin/busybox";
const INNER_BUSYBOX: &str = "/.cloonix/busybox";
/// Inside an engine's container: a directory of cloonix's, bound read-only, holding the
/// script below; the image's command starts once a file named `go` is in it.
const INNER_GATE: &str = "/.cloonix/run";
const INNER_KEEP: &str = "/.cloonix/run/keep";

/// Runs as pid 1's child (the engine's `--init` is pid 1 and reaps zombies): waits for the
/// gate, runs the image's command (a bare name found on the container's PATH, so that the
/// image's program runs, never the busybox applet of that name), and keeps the container
/// up after it ends, as cloonix's crun containers stay up.
/// The wait polls, briefly at first, then once a second (a gate left closed by a failed
/// apply costs next to nothing).
const KEEP: &str = r#"set -f
n=0
until [ -e /.cloonix/run/go ]; do
  if [ $n -lt 100 ]; then n=$((n + 1)); /.cloonix/busybox sleep 0.05; else /.cloonix/busybox sleep 1; fi
done
if [ $# -gt 0 ]; then
  case $1 in
  */*) ;;
  *) p=
     IFS=:
     for d in ${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}; do
       if [ -f "$d/$1" ] && [ -x "$d/$1" ]; then p=$d/$1; break; fi
     done
     unset IFS
     if [ -n "$p" ]; then shift; set -- "$p" "$@"; fi ;;
  esac
  "$@"
  echo "cloonix: the image's command ended with $?; the container stays up" >&2
fi
exec /.cloonix/busybox sleep infinity
"#;
/// What holds an engine's container's command back and keeps it up is there.
pub fn keeper() -> Result<()> {
    match Path::new(BUSYBOX).is_file() {
        true => Ok(()),
        false => Err(HostError::Missing {
            program: "busybox".into(),
            package: "busybox-static",
        }),
    }
}

/// A container of an engine, as it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: String,
    /// Its init's pid on the host; 0 when it does not run.
    pub pid: i32,
    pub labels: BTreeMap<String, String>,
}

impl Found {
    /// Whether it is lab `lab`'s.
    pub fn of_lab(&self, lab: &str) -> bool {
        self.labels.get(LAB_LABEL).map(String::as_str) == Some(lab)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerJson {
    id: String,
    state: StateJson,
    #[serde(default)]
    config: Option<LabelsJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StateJson {
    #[serde(default)]
    pid: i32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LabelsJson {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The container named `name`, if the engine has one.
pub fn inspect(engine: Engine, name: &str) -> Result<Option<Found>> {
    let out = cli(engine)?
        .args(["container", "inspect", "--", name])
        .output()
        .map_err(super::super::io(format!("run {engine}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if no_such(&stderr) {
            return Ok(None);
        }
        return Err(HostError::Command {
            what: format!("{engine} container inspect {name}"),
            status: out.status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    let parsed: Vec<ContainerJson> = serde_json::from_slice(&out.stdout)
        .map_err(|e| HostError::Other(format!("{engine} container inspect {name}: {e}")))?;
    Ok(parsed.into_iter().next().map(|c| Found {
        id: c.id,
        pid: c.state.pid,
        labels: c.config.unwrap_or_default().labels.unwrap_or_default(),
    }))
}

/// The init of the running container `name`, by its identity on the host.
pub fn init(engine: Engine, name: &str) -> Result<Identity> {
    let found = inspect(engine, name)?
        .ok_or_else(|| HostError::Other(format!("{engine} has no container {name}")))?;
    (found.pid > 0)
        .then(|| Identity::of(found.pid))
        .flatten()
        .ok_or_else(|| HostError::Other(format!("{engine} container {name} is not running")))
}

/// What a lab asks of a container it has an engine make.
pub struct Create<'a> {
    pub lab: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub image: &'a str,
    /// What the image runs (its entrypoint and command), started once the gate opens.
    pub command: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub sysctl: &'a BTreeMap<String, String>,
    pub privileged: bool,
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
    /// A directory of cloonix's: the image's command starts once `go` is in it.
    pub gate: &'a Path,
}

/// The engine's arguments that make the container; the image comes after every option.
pub fn create_args(c: &Create) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "create".into(),
        format!("--name={}", c.name),
        format!("--label={LAB_LABEL}={}", c.lab),
        format!("--hostname={}", c.hostname),
        "--network=none".into(),
        "--pull=never".into(),
        "--init".into(),
    ];
    if c.privileged {
        a.push("--privileged".into());
    } else {
        // What the cnt contract promises every container: enough to configure its own
        // interfaces and run routing daemons, in its own network namespace.
        a.push("--cap-add=NET_ADMIN".into());
        a.push("--cap-add=NET_RAW".into());
    }
    a.extend(c.env.iter().map(|(k, v)| format!("--env={k}={v}")));
    a.extend(c.sysctl.iter().map(|(k, v)| format!("--sysctl={k}={v}")));
    // As for crun's containers (cgroups/v1.rs): a fork loop stops in the container.
    a.push(format!(
        "--pids-limit={}",
        crate::host::cgroups::v1::PIDS_PER_CONTAINER
    ));
    if let Some(cpu) = c.cpu {
        a.push(format!("--cpus={cpu}"));
    }
    if let Some(ram) = c.ram {
        a.push(format!("--memory={ram}m"));
    }
    a.push(format!("--volume={BUSYBOX}:{INNER_BUSYBOX}:ro"));
    a.push(format!("--volume={}:{INNER_GATE}:ro", c.gate.display()));
    a.push(format!("--entrypoint={INNER_BUSYBOX}"));
    a.push("--".into());
    a.push(c.image.into());
    a.extend(["sh".into(), INNER_KEEP.into()]);
    a.extend(c.command.iter().cloned());
    a
}

/// Makes the container (not started), its gate closed; its id.
pub fn create(engine: Engine, c: &Create) -> Result<String> {
    keeper()?;
    if !super::super::rootfs::safe_in_mount_options(c.gate) {
        return Err(HostError::Other(format!(
            "{}: not a path an engine's --volume can take",
            c.gate.display()
        )));
    }
    let _ = std::fs::remove_dir_all(c.gate);
    std::fs::create_dir_all(c.gate).map_err(super::super::io("create the container's gate"))?;
    std::fs::write(c.gate.join("keep"), KEEP)
        .map_err(super::super::io("write the container's gate"))?;
    let args = create_args(c);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(engine, &args, &format!("{engine} create {}", c.name))?;
    out.lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| HostError::Other(format!("{engine} create {} gave no id", c.name)))
}

pub fn start(engine: Engine, id: &str) -> Result<()> {
    run(
        engine,
        &["start", "--", id],
        &format!("{engine} start {id}"),
    )
    .map(|_| ())
}

/// Removes the container at once (no grace: cloonix's containers hold nothing to save);
/// one that is gone is fine.
pub fn remove(engine: Engine, id: &str) -> Result<()> {
    let args: &[&str] = match engine {
        Engine::Docker => &["rm", "--force", "--", id],
        Engine::Podman => &["rm", "--force", "--time=0", "--", id],
    };
    match run(engine, args, &format!("{engine} rm {id}")) {
        Err(HostError::Command { stderr, .. }) if no_such(&stderr) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The ids of every container labelled with lab `lab`, running or not.
pub fn list(engine: Engine, lab: &str) -> Result<Vec<String>> {
    let filter = format!("--filter=label={LAB_LABEL}={lab}");
    let out = run(
        engine,
        &["ps", "--all", "--quiet", "--no-trunc", &filter],
        &format!("{engine} ps"),
    )?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The command line that runs `argv` in container `name`, standard input passed on.
pub fn exec_command(engine: Engine, name: &str, tty: bool, argv: &[String]) -> Result<Command> {
    let mut cmd = cli(engine)?;
    cmd.stdin(Stdio::inherit()).args(["exec", "--interactive"]);
    if tty {
        cmd.arg("--tty");
    }
    cmd.args(["--", name]).args(argv);
    Ok(cmd)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_strings_stay_single_arguments_after_every_option() {
        let env = BTreeMap::from([("A".to_string(), "x --privileged".to_string())]);
        let sysctl = BTreeMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())]);
        let command = vec!["-v".to_string(), "/:/host".to_string()];
        let args = create_args(&Create {
            lab: "l",
            name: "l.r1",
            hostname: "r1",
            image: "localhost/frr:1",
            command: &command,
            env: &env,
            sysctl: &sysctl,
            privileged: false,
            cpu: Some(0.5),
            ram: Some(64),
            gate: Path::new("/var/lib/cloonix/labs/l/ep/r1/gate"),
        });
        let dashdash = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(args[dashdash + 1], "localhost/frr:1");
        assert!(
            args[..dashdash]
                .iter()
                .skip(1)
                .all(|a| a.starts_with("--") && a.contains('=') || a == "--init"),
            "{args:?}"
        );
        assert!(args.contains(&"--env=A=x --privileged".to_string()));
        assert!(!args.contains(&"--privileged".to_string()));
        assert_eq!(&args[args.len() - 2..], &command[..]);
    }
}
