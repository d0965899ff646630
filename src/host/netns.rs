//! Named network namespaces (`/run/netns/NAME`, as `ip netns` makes them), and running code
//! inside one on a thread of its own: `setns` changes only the calling thread, and that
//! thread is never one of an async runtime's workers.

use super::{HostError, Result, io, run};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// The host's network namespace (cloonix's own: its main thread never enters another),
/// for moving an interface back into it.
pub fn host() -> Result<File> {
    File::open("/proc/self/ns/net").map_err(io("open the host's namespace"))
}

/// Whether the namespace exists: its file is a namespace bound there (an nsfs mount). The
/// bare file that an add killed before its bind mount leaves behind is no namespace.
pub fn exists(name: &str) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let Ok(c) = CString::new(path(name).as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs into a zeroed struct we own, on a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == NSFS_MAGIC }
}

/// Creates the namespace (with `lo` up); one that exists already is fine.
///
/// Done in process as `ip netns add` does it: a thread unshares its network namespace and
/// bind-mounts it onto `/run/netns/NAME`. The first namespace on a host, before that
/// directory is a shared mount point, is left to `ip netns add`, which sets it up.
pub fn add(name: &str) -> Result<()> {
    if exists(name) {
        return Ok(());
    }
    if !netns_dir_ready() {
        run(
            Command::new("ip").args(["netns", "add", name]),
            &format!("create namespace {name}"),
        )?;
        return within(name, || set_up("lo"));
    }
    let target = path(name);
    // A bare file left by an add that was killed before its bind mount.
    let _ = std::fs::remove_file(&target);
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(io(format!("create {}", target.display())))?;
    let owned = target.clone();
    let made = std::thread::spawn(move || -> Result<()> {
        // SAFETY: unshare affects only this thread's network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io("unshare the network namespace")(
                std::io::Error::last_os_error(),
            ));
        }
        bind(Path::new("/proc/thread-self/ns/net"), &owned)
            .map_err(io("bind the network namespace"))?;
        set_up("lo")
    })
    .join()
    .map_err(|_| HostError::Other("a namespace thread panicked".into()))?;
    if made.is_err() {
        let _ = del(name);
    }
    made
}

/// Whether `/run/netns` is the shared mount point that namespace files are bound under.
/// Once it is, it stays so: remembered, so that an apply of hundreds of namespaces does
/// not read the (growing) mount table once each.
fn netns_dir_ready() -> bool {
    static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if READY.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    let ready = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(NETNS_DIR) && l.contains(" shared:"));
    READY.store(ready, std::sync::atomic::Ordering::Relaxed);
    ready
}

/// Binds the network namespace of a running process under `name`, as `ip netns attach`
/// does: how the namespace of a container that podman or docker made becomes an endpoint's
/// (`/run/netns/NAME`), so that everything that works in a namespace by its name works in
/// it. The namespace is opened before the process is checked against its identity, so it
/// is that process's or nothing. A binding of that very namespace already there is fine;
/// one of another is replaced.
pub fn attach(name: &str, process: &super::process::Identity) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ns = File::open(format!("/proc/{}/ns/net", process.pid))
        .map_err(io(format!("open the namespace of process {}", process.pid)))?;
    if !process.alive() {
        return Err(HostError::Other(format!(
            "process {} ended before its namespace was bound",
            process.pid
        )));
    }
    let inode = ns.metadata().map_err(io("stat a namespace"))?.ino();
    let target = path(name);
    if exists(name) {
        if std::fs::metadata(&target).is_ok_and(|m| m.ino() == inode) {
            return Ok(());
        }
        del(name)?;
    }
    if !netns_dir_ready() {
        // The first namespace on this host: `ip` makes /run/netns the shared mount point
        // that bindings go under. Checked after, since `ip` takes a bare pid.
        run(
            Command::new("ip").args(["netns", "attach", name, &process.pid.to_string()]),
            &format!("bind namespace {name}"),
        )?;
        if std::fs::metadata(&target).is_ok_and(|m| m.ino() == inode) && process.alive() {
            return Ok(());
        }
        let _ = del(name);
        return Err(HostError::Other(format!(
            "process {} changed while its namespace was bound",
            process.pid
        )));
    }
    let _ = std::fs::remove_file(&target);
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(io(format!("create {}", target.display())))?;
    // `ns` stays open across the bind.
    let src = PathBuf::from(format!("/proc/self/fd/{}", ns.as_raw_fd()));
    if let Err(e) = bind(&src, &target) {
        let _ = del(name);
        return Err(io(format!("bind namespace {name}"))(e));
    }
    Ok(())
}

/// Bind-mounts the namespace file `src` (a /proc path) onto the file `dst`.
fn bind(src: &Path, dst: &Path) -> std::io::Result<()> {
    let src = CString::new(src.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let dst = CString::new(dst.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The inode of the namespace bound under `name`, if one is.
pub fn inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    exists(name)
        .then(|| std::fs::metadata(path(name)).ok().map(|m| m.ino()))
        .flatten()
}

/// Deletes the namespace; one that is gone already is fine.
pub fn del(name: &str) -> Result<()> {
    let target = path(name);
    super::unmount(&target);
    match std::fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("remove {}", target.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Brings interface `dev` up, in the calling thread's namespace.
pub fn set_up(dev: &str) -> Result<()> {
    let mut ifr = ifreq(dev);
    // SAFETY: a datagram socket for two ioctls on a zeroed ifreq, closed below.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io("socket")(std::io::Error::last_os_error()));
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut ifr);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(io(format!("bring {dev} up"))(err));
        }
    }
    Ok(())
}

pub(super) fn ifreq(dev: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(dev.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    ifr
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

/// Turns TX checksum offload off on `dev` (in the calling thread's namespace).
pub fn tx_checksum_off(dev: &str) -> Result<()> {
    set_tx_checksum(dev, false)
}

/// Turns TX checksum offload (and with it TSO, which needs it) on or off on `dev`, in the
/// calling thread's namespace. Off, the kernel segments and checksums in software every
/// packet sent through `dev`: what reaches its peer is whole wire frames.
pub fn set_tx_checksum(dev: &str, on: bool) -> Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    ethtool_set(dev, ETHTOOL_STXCSUM, on, "tx checksum offload")
}

/// Turns generic receive offload on or off on `dev`, in the calling thread's namespace:
/// on a veth, wire frames sent into its peer arrive merged into TCP segments of up to
/// 64 KiB, which a switch then moves as one.
pub fn set_gro(dev: &str, on: bool) -> Result<()> {
    const ETHTOOL_SGRO: u32 = 0x2c;
    ethtool_set(dev, ETHTOOL_SGRO, on, "generic receive offload")
}

fn ethtool_set(dev: &str, cmd: u32, on: bool, what: &str) -> Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue {
        cmd,
        data: u32::from(on),
    };
    let mut ifr = ifreq(dev);
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
            let state = if on { "on" } else { "off" };
            return Err(io(format!("turn {what} {state} on {dev}"))(err));
        }
    }
    Ok(())
}
