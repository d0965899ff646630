//! Named network namespaces (`/run/netns/NAME`, as `ip netns` makes them), and running code
//! inside one on a thread of its own: `setns` changes only the calling thread, and that
//! thread is never one of an async runtime's workers.

use super::{HostError, Result, io, run};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Creates the namespace; one that exists already is fine.
pub fn add(name: &str) -> Result<()> {
    if exists(name) {
        return Ok(());
    }
    run(
        Command::new("ip").args(["netns", "add", name]),
        &format!("create namespace {name}"),
    )?;
    // Loopback up: daemons and checks inside expect it.
    run(
        Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]),
        &format!("bring lo up in {name}"),
    )?;
    Ok(())
}

/// Deletes the namespace; one that is gone already is fine.
pub fn del(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    run(
        Command::new("ip").args(["netns", "del", name]),
        &format!("delete namespace {name}"),
    )?;
    Ok(())
}

/// The names of every namespace whose name starts with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Runs `f` on a new thread that has entered namespace `name`.
pub fn within<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = File::open(path(name)).map_err(io(format!("open namespace {name}")))?;
    std::thread::spawn(move || {
        // SAFETY: setns on a valid namespace fd affects only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(HostError::Io {
                what: "setns".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        f()
    })
    .join()
    .map_err(|_| HostError::Other("a namespace thread panicked".into()))?
}

/// Turns TX checksum offload off on `dev` (in the calling thread's namespace): through the
/// userspace datapath, TCP fails without it.
pub fn tx_checksum_off(dev: &str) -> Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    const ETHTOOL_STXCSUM: u32 = 0x17;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(dev.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: a datagram socket for an ioctl, closed below; ifr points at live memory.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(io("socket")(std::io::Error::last_os_error()));
        }
        let rc = libc::ioctl(fd, libc::SIOCETHTOOL, &mut ifr);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(io(format!("turn tx checksum offload off on {dev}"))(err));
        }
    }
    Ok(())
}
