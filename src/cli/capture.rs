//! `cloonix capture LAB TARGET [-w FILE] [-c N]`: a lan's or a port's live frames as pcap
//! on stdout (or in FILE), with a packet count on stderr. It stops cleanly — the mirror
//! and its port removed — on Ctrl-C, SIGTERM or SIGHUP, when the reader of stdout goes
//! (`| head -c`, a closed Wireshark), after N frames with `-c N`, and when the lan or
//! the lab goes away. Exit 0 when stopped as asked, 1 when it could not capture.

use super::out::{err, errln};
use cloonix::capture::{CaptureError, Session, Target, pcap};
use cloonix::host::Lab;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::Timespec;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, IsTerminal};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Options<'a> {
    pub write: Option<&'a Path>,
    pub count: Option<u64>,
}

/// How a capture ended.
enum End {
    /// A signal, or `-c N` reached.
    Asked,
    /// Whoever read stdout is gone.
    ReaderGone,
    /// It could not go on, for this reason.
    Failed(String),
}

pub fn run(lab: &str, target: &str, o: &Options) -> i32 {
    if !cloonix::model::is_name(lab) {
        errln!("cloonix: no lab {lab}");
        return 1;
    }
    // The output first: nothing is set up in the lab when it cannot be written.
    let out = match output(o.write) {
        Ok(f) => f,
        Err(why) => {
            errln!("cloonix: {why}");
            return 1;
        }
    };
    // Before any thread starts, so that every thread blocks them and they wait in the
    // signalfd for the capture loop, which then stops as cleanly as it would at `-c N`.
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => {
            errln!("cloonix: cannot handle signals: {e}");
            return 1;
        }
    };
    let mut session = match Session::start(&Lab::new(lab), Target::parse(target)) {
        Ok(s) => s,
        Err(e) => {
            errln!("cloonix: {e}");
            if let CaptureError::Closed { .. } = e {
                errln!("hint: remove `spy: false` from the lan in the file and apply it");
            }
            return 1;
        }
    };
    errln!("capturing {} of lab {lab} (Ctrl-C to stop)", session.target);
    // A count kept up to date on the terminal, only when the frames go to a file: a reader
    // on the other end of stdout (`| tcpdump -r -`) prints on that terminal too.
    let live = std::io::stderr().is_terminal() && o.write.is_some_and(|p| p != Path::new("-"));
    let (end, count) = pump(&mut session, out, &signals, o.count, live);
    let (_, dropped) = session.listener().stats();
    let removed = session.stop();
    if live {
        err!("\r\x1b[K");
    }
    let plural = if count == 1 { "" } else { "s" };
    let dropped = match dropped {
        0 => String::new(),
        d => format!(", {d} dropped by the kernel (the capture did not keep up)"),
    };
    errln!("{count} packet{plural} captured{dropped}");
    let mut code = 0;
    if let End::Failed(why) = end {
        errln!("cloonix: capture stopped: {why}");
        code = 1;
    }
    if let Err(e) = removed {
        errln!(
            "cloonix: the capture's mirror could not be removed ({e}); the next apply removes it"
        );
        code = 1;
    }
    code
}

/// Where the frames go: FILE, or stdout unless it is a terminal (pcap is no text).
fn output(write: Option<&Path>) -> Result<File, String> {
    match write {
        Some(p) if p != Path::new("-") => {
            File::create(p).map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        _ => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(
                    "standard output is a terminal and pcap is not text: write a \
                     file with -w FILE, or pipe it into a reader (| tcpdump -r -)"
                        .into(),
                );
            }
            let fd = stdout
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| format!("standard output: {e}"))?;
            Ok(File::from(fd))
        }
    }
}

/// Frames read per turn of the loop before signals and the lab are looked at again.
const BURST: usize = 4096;

/// Copies frames from the capture to `out` until it ends; how, and how many frames.
fn pump(
    session: &mut Session,
    out: File,
    signals: &Signals,
    limit: Option<u64>,
    live: bool,
) -> (End, u64) {
    let watch = out.try_clone().ok();
    let mut w = match pcap::Writer::new(BufWriter::with_capacity(1 << 20, out)) {
        Ok(w) => w,
        Err(e) => return (written(e), 0),
    };
    // The header at once: a reader like `tcpdump -r -` starts with it.
    if let Err(e) = w.flush() {
        return (written(e), 0);
    }
    let mut buf = vec![0u8; pcap::SNAPLEN as usize + 1];
    let (mut count, mut checked, mut shown) = (0u64, Instant::now(), Instant::now());
    loop {
        let (frames, signalled, reader_gone) = {
            let listener = session.listener();
            let mut fds = vec![
                PollFd::new(&*listener, PollFlags::IN),
                PollFd::new(&signals.fd, PollFlags::IN),
            ];
            // A pipe whose reader left reports an error even when nothing is asked of it.
            if let Some(f) = &watch {
                fds.push(PollFd::new(f, PollFlags::empty()));
            }
            let timeout = Timespec {
                tv_sec: 0,
                tv_nsec: 500_000_000,
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return (End::Failed(format!("poll: {e}")), count),
            }
            let gone = fds
                .get(2)
                .is_some_and(|f| f.revents().intersects(PollFlags::ERR | PollFlags::HUP));
            (
                !fds[0].revents().is_empty(),
                fds[1].revents().contains(PollFlags::IN),
                gone,
            )
        };
        if signalled {
            return (End::Asked, count);
        }
        if reader_gone {
            return (End::ReaderGone, count);
        }
        if frames {
            for _ in 0..BURST {
                let frame = match session.listener().recv(&mut buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        let why = session
                            .check()
                            .unwrap_or_else(|| format!("reading the capture port: {e}"));
                        let _ = w.flush();
                        return (End::Failed(why), count);
                    }
                };
                if let Err(e) = w.frame(frame.sec, frame.nsec, &buf[..frame.caplen], frame.len) {
                    return (written(e), count);
                }
                count += 1;
                if limit.is_some_and(|l| count >= l) {
                    let end = w.flush().map_or_else(written, |()| End::Asked);
                    return (end, count);
                }
            }
            if let Err(e) = w.flush() {
                return (written(e), count);
            }
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = Instant::now();
            if let Some(why) = session.check() {
                return (End::Failed(why), count);
            }
        }
        if live && shown.elapsed() >= Duration::from_millis(500) {
            shown = Instant::now();
            err!("\r{count} packets");
        }
    }
}

/// A write that failed: the reader left, or the output is broken.
fn written(e: std::io::Error) -> End {
    match e.kind() {
        ErrorKind::BrokenPipe => End::ReaderGone,
        _ => End::Failed(format!("writing the capture: {e}")),
    }
}

/// SIGINT, SIGTERM and SIGHUP, blocked and waiting in a signalfd.
struct Signals {
    fd: OwnedFd,
}

impl Signals {
    fn block() -> std::io::Result<Signals> {
        // SAFETY: a sigset we own; the mask is changed for this (so far only) thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }
}
