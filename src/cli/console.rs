//! `cloonix console LAB VM`: the VM's serial console on this terminal. With a terminal it is
//! put in raw mode (keys reach the guest as typed, Ctrl-C included) and Ctrl-] leaves, as
//! in telnet; the terminal is restored however the session ends. Without a terminal,
//! standard input goes to the console and what the console prints comes back, until input
//! has ended and the console has been quiet for a second.
//!
//! qemu serves one console client at a time: a second one waits until the first leaves.

use super::out::errln;
use cloonix::graph::Item;
use cloonix::host::{Lab, intent};
use rustix::termios::{self, OptionalActions, Termios};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The key that leaves: Ctrl-].
const ESCAPE: u8 = 0x1d;

/// The console socket of endpoint `node`, or why there is none.
pub fn socket(lab: &Lab, node: &str) -> Result<Option<PathBuf>, String> {
    let records = intent::read_all(lab);
    let found = records
        .iter()
        .filter(|r| r.resource.item == Item::Endpoint(node.to_string()))
        .find_map(|r| cloonix::kinds::console(lab, &r.resource, &r.receipt));
    match found {
        Some(Ok(p)) => Ok(Some(p)),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(None),
    }
}

pub fn run(lab: &str, node: &str) -> i32 {
    let lab = Lab::new(lab);
    match socket(&lab, node) {
        Ok(Some(path)) => attach(&path, node),
        Ok(None) => {
            errln!("cloonix: no VM {node} in lab {}", lab.name);
            125
        }
        Err(e) => {
            errln!("cloonix: {e}");
            125
        }
    }
}

/// Attaches this process's standard input and output to the console at `path`.
pub fn attach(path: &Path, node: &str) -> i32 {
    let sock = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            errln!("cloonix: the console of {node}: {e}");
            return 125;
        }
    };
    let result = if std::io::stdin().is_terminal() {
        errln!("cloonix: the serial console of {node}; Ctrl-] leaves");
        interactive(sock)
    } else {
        piped(sock)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            errln!("cloonix: the console of {node}: {e}");
            125
        }
    }
}

/// Puts the terminal back as it was when dropped.
struct Raw(Termios);

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}

fn interactive(sock: UnixStream) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin)?;
    let mut raw = saved.clone();
    raw.make_raw();
    termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
    let _restore = Raw(saved);
    let mut from_vm = sock.try_clone()?;
    // The guest's output, on a thread of its own; it ends with the process.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = from_vm.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut to_vm = sock;
    let mut buf = [0u8; 1024];
    let mut input = stdin.lock();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        match buf[..n].iter().position(|&b| b == ESCAPE) {
            Some(i) => {
                to_vm.write_all(&buf[..i])?;
                return Ok(());
            }
            None => to_vm.write_all(&buf[..n])?,
        }
    }
}

fn piped(sock: UnixStream) -> std::io::Result<()> {
    let mut to_vm = sock.try_clone()?;
    let feeder = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_vm);
    });
    let mut from_vm = sock;
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        // Quiet for a second after the input has ended: done.
        let quiet = if feeder.is_finished() {
            Some(Duration::from_secs(1))
        } else {
            Some(Duration::from_millis(200))
        };
        from_vm.set_read_timeout(quiet)?;
        match from_vm.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if feeder.is_finished() && quiet == Some(Duration::from_secs(1)) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}
