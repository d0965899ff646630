//! The real systems a lab is made of, one module each: network namespaces and links,
//! Open vSwitch, crun containers, root filesystems, processes, images, and the intent
//! cloonix records. Nothing here knows of YAML or plans; the resource kinds
//! (`crate::kinds`) call in with what they need.

pub mod cache;
pub mod crun;
pub mod helper;
pub mod image;
pub mod intent;
mod lab;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod oci;
pub mod ovs;
pub mod process;
pub mod rootfs;
pub mod seccomp;

pub use lab::Lab;

use std::process::{Command, Stdio};

/// Runtime files of all labs; `destroy` removes a lab's directory here.
pub const RUN_ROOT: &str = "/run/cloonix";
/// What labs keep on disk (containers' writable layers); `destroy` removes a lab's
/// directory here. Under `labs/`, so that a lab named `images` meets no cached image.
pub const STATE_ROOT: &str = "/var/lib/cloonix/labs";
/// Per-lab apply locks: outside the directory that `destroy` removes, so a waiting apply
/// never holds a lock on a file that is gone.
pub const LOCK_ROOT: &str = "/run/lock/cloonix";
/// Images built once and shared read-only between containers.
pub const IMAGE_ROOT: &str = "/var/lib/cloonix/images";

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("`{program}` is not installed: apt-get install {package}")]
    Missing {
        program: String,
        package: &'static str,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Command {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("OVSDB: {0}")]
    Ovsdb(String),
    /// The container runs, but one of its `run` commands failed.
    #[error("{0}")]
    RunFailed(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, HostError>;

pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HostError {
    let what = what.into();
    move |source| HostError::Io { what, source }
}

/// The Debian package that provides a program cloonix runs.
pub(crate) fn package_of(program: &str) -> &'static str {
    match program {
        "ip" => "iproute2",
        "ovsdb-server" | "ovs-vswitchd" | "ovsdb-tool" => "openvswitch-switch",
        "crun" => "crun",
        "catatonit" => "catatonit",
        "unshare" | "mount" | "umount" => "util-linux",
        _ => "the package that provides it",
    }
}

/// Runs a command to completion; its stdout on success, a typed error naming `what` else.
pub fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::Missing {
                package: package_of(&program),
                program: program.clone(),
            },
            _ => HostError::Io {
                what: what.into(),
                source: e,
            },
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostError::Command {
            what: what.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Detaches whatever is mounted on `path`; nothing mounted there is fine.
pub fn unmount(path: &std::path::Path) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a C string that outlives the call; failing (not mounted) is fine.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}
