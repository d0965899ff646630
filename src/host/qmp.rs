//! A QMP client for one VM's qemu.
//!
//! QMP serves one client at a time (a second one is kept waiting without a greeting), so
//! cloonix opens one session per VM at a time (the kinds' `Lane::Serial`), and every read
//! has a timeout.

use super::{HostError, Result, io};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// An error qemu answered with, or a failure to talk to it.
#[derive(Debug)]
pub enum QmpError {
    /// qemu refused the command: its error class and description.
    Refused(String, String),
    Host(HostError),
}

impl std::fmt::Display for QmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            QmpError::Refused(class, desc) => write!(f, "{desc} ({class})"),
            QmpError::Host(e) => write!(f, "{e}"),
        }
    }
}

impl From<QmpError> for HostError {
    fn from(e: QmpError) -> HostError {
        match e {
            QmpError::Refused(..) => HostError::Other(format!("qemu: {e}")),
            QmpError::Host(h) => h,
        }
    }
}

/// A QMP session with one VM's qemu.
pub struct Qmp {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    events: Vec<Value>,
    next: u64,
    timeout: Duration,
}

impl Qmp {
    /// Connects and negotiates; `None` when no qemu listens there (it is not running).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Option<Qmp>> {
        let stream = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io(format!("connect to {}", path.display()))(e)),
        };
        let reader = BufReader::new(stream.try_clone().map_err(io("QMP socket"))?);
        let mut q = Qmp {
            stream,
            reader,
            events: Vec::new(),
            next: 0,
            timeout,
        };
        let greeting = q.read(Instant::now() + timeout).map_err(HostError::from)?;
        if greeting.get("QMP").is_none() {
            return Err(HostError::Other(format!(
                "{} does not speak QMP",
                path.display()
            )));
        }
        q.cmd("qmp_capabilities", json!({}))?;
        Ok(Some(q))
    }

    fn read(&mut self, deadline: Instant) -> std::result::Result<Value, QmpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(QmpError::Host(HostError::Other(
                "qemu did not answer in time".into(),
            )));
        }
        self.stream
            .set_read_timeout(Some(left))
            .and_then(|()| self.reader.get_ref().set_read_timeout(Some(left)))
            .map_err(|e| QmpError::Host(io("QMP socket")(e)))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(QmpError::Host(HostError::Other("qemu closed QMP".into()))),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| QmpError::Host(HostError::Other(format!("QMP: {e}")))),
            Err(e) => Err(QmpError::Host(io("read from QMP")(e))),
        }
    }

    /// Runs a command; its `return`. Events that arrive meanwhile are kept for
    /// [`Qmp::wait_event`].
    pub fn cmd(&mut self, execute: &str, args: Value) -> std::result::Result<Value, QmpError> {
        self.cmd_with(execute, args, None)
    }

    /// Hands qemu a descriptor under `name` (`getfd`), for a later command to use.
    pub fn give_fd(&mut self, name: &str, fd: BorrowedFd) -> std::result::Result<(), QmpError> {
        self.cmd_with("getfd", json!({"fdname": name}), Some(fd))
            .map(|_| ())
    }

    fn cmd_with(
        &mut self,
        execute: &str,
        args: Value,
        fd: Option<BorrowedFd>,
    ) -> std::result::Result<Value, QmpError> {
        self.next += 1;
        let id = format!("cx{}", self.next);
        let mut msg = json!({"execute": execute, "id": id});
        if args.as_object().is_some_and(|o| !o.is_empty()) {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        let sent = match fd {
            None => self.stream.write_all(line.as_bytes()),
            Some(fd) => send_with_fd(&self.stream, line.as_bytes(), fd),
        };
        sent.map_err(|e| QmpError::Host(io("write to QMP")(e)))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.read(deadline)?;
            if m.get("event").is_some() {
                self.events.push(m);
            } else if m.get("id").and_then(Value::as_str) == Some(&id) {
                if let Some(e) = m.get("error") {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    return Err(QmpError::Refused(s("class"), s("desc")));
                }
                return Ok(m.get("return").cloned().unwrap_or(Value::Null));
            }
        }
    }

    /// Waits for an event that `pred` accepts.
    pub fn wait_event(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> std::result::Result<Value, QmpError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.events.iter().position(&pred) {
                return Ok(self.events.remove(i));
            }
            let m = self.read(deadline)?;
            if m.get("event").is_some() {
                self.events.push(m);
            }
        }
    }

    /// The ids of the devices added by id (`-device ...,id=` or `device_add`).
    pub fn devices(&mut self) -> std::result::Result<Vec<String>, QmpError> {
        let list = self.cmd("qom-list", json!({"path": "/machine/peripheral"}))?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("child<")))
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect())
    }

    /// Removes a device and waits until the guest has let it go (an ACPI eject: a guest
    /// that does not cooperate never lets go).
    pub fn device_del(&mut self, id: &str, within: Duration) -> std::result::Result<(), QmpError> {
        self.cmd("device_del", json!({"id": id}))?;
        self.wait_event(
            |e| e["event"] == "DEVICE_DELETED" && e["data"]["device"] == id,
            within,
        )
        .map(|_| ())
        .map_err(|e| match e {
            QmpError::Host(_) => QmpError::Host(HostError::Other(format!(
                "the guest did not release device {id} within {}s",
                within.as_secs()
            ))),
            other => other,
        })
    }
}

/// Writes `data` with `fd` attached (SCM_RIGHTS), as QMP's `getfd` takes it.
fn send_with_fd(stream: &UnixStream, data: &[u8], fd: BorrowedFd) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = sendmsg(
        stream,
        &[std::io::IoSlice::new(data)],
        &mut control,
        SendFlags::empty(),
    )?;
    // The descriptor went with the first byte; the rest is plain.
    let mut rest = stream;
    rest.write_all(&data[sent..])
}
