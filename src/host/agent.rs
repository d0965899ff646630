//! The host side of the built-in guest's exec agent (`guest/cloonix-agent`), over the VM's
//! virtio-serial socket: a line protocol of tagged, base64-encoded output and an exit code.
//!
//! The guest cannot tell a host that left from one that has not come yet, and drops what
//! it had not read when it reopens its port, so a session starts with a `PING` and waits
//! for its `PONG` (or the `HELLO` of a fresh open) before it asks anything; lines of other
//! ids are output of a session someone left, and are skipped. qemu serves one client at a
//! time and the agent one command at a time, so sessions are also serialised on the host
//! by a lock file beside the socket, which a waiting `exec` then waits on.

use super::{HostError, Result, io};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a command gave back.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub struct Agent {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    _lock: std::fs::File,
    next: u64,
    tag: String,
}

/// Quotes one argument for `sh`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// The script that runs `argv` as the command itself (so its exit code, and sh's 126 and
/// 127, come back unchanged).
pub fn exec_script(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    format!("exec {}\n", words.join(" "))
}

impl Agent {
    /// Connects and waits (up to `within`) until the guest's agent answers; `alive` says
    /// whether the VM still runs (no use waiting for a qemu that exited).
    pub fn connect(
        socket: &Path,
        lock: &Path,
        within: Duration,
        alive: &dyn Fn() -> bool,
    ) -> Result<Agent> {
        let deadline = Instant::now() + within;
        let lock = lock_file(lock)?;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(_) if !alive() => {
                    return Err(HostError::Other("the VM's qemu has exited".into()));
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(io(format!("connect to {}", socket.display()))(e)),
            }
        };
        let reader = BufReader::new(stream.try_clone().map_err(io("agent socket"))?);
        let tag = format!("{:x}", std::process::id());
        let mut a = Agent {
            stream,
            reader,
            _lock: lock,
            next: 0,
            tag,
        };
        let id = a.id();
        a.send(&format!("PING {id}"))?;
        loop {
            let line = a.line(deadline).map_err(|e| match e {
                HostError::Io { source, .. }
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    HostError::Other(format!(
                        "no cloonix agent answered in the guest within {}s",
                        within.as_secs()
                    ))
                }
                other => other,
            })?;
            if line == format!("PONG {id}") || line.starts_with("HELLO ") {
                return Ok(a);
            }
        }
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.tag, self.next)
    }

    fn send(&mut self, line: &str) -> Result<()> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io("write to the agent"))
    }

    fn line(&mut self, deadline: Instant) -> Result<String> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(io("agent socket"))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(HostError::Other("the guest's agent went away".into())),
            Ok(_) => Ok(line.trim_end_matches('\n').to_string()),
            Err(e) => Err(io("read from the agent")(e)),
        }
    }

    /// Runs a shell script in the guest: its exit code and output. `timeout` (whole
    /// seconds, 0: none) is enforced in the guest with SIGKILL (exit code 137); `wait` is
    /// how long the host waits for the end.
    pub fn run(&mut self, script: &str, timeout: u64, wait: Duration) -> Result<Output> {
        let id = self.id();
        let b64 = STANDARD.encode(script);
        self.send(&format!("EXEC {id} {timeout} {b64}"))?;
        let deadline = Instant::now() + wait;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            let line = self.line(deadline)?;
            let mut parts = line.splitn(3, ' ');
            let (tag, lid, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
            if lid != Some(id.as_str()) {
                continue;
            }
            let decode = |s: &str| STANDARD.decode(s.trim()).unwrap_or_default();
            match tag {
                Some("O") => stdout.extend(decode(rest)),
                Some("E") => stderr.extend(decode(rest)),
                Some("X") => {
                    return Ok(Output {
                        code: rest.trim().parse().unwrap_or(125),
                        stdout,
                        stderr,
                    });
                }
                _ => {}
            }
        }
    }
}

/// Takes the lock of a VM's agent, waiting for whoever holds it.
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io("lock the VM's agent")(std::io::Error::last_os_error()));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_reach_the_command_as_they_were() {
        assert_eq!(quote("ls"), "ls");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(
            exec_script(&["echo".into(), "x y".into()]),
            "exec echo 'x y'\n"
        );
    }
}
