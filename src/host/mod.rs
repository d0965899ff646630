//! The real systems a lab is made of, one module each: network namespaces and links,
//! Open vSwitch, crun containers, root filesystems, processes, images, and the intent
//! cloonix records. Nothing here knows of YAML or plans; the resource kinds
//! (`crate::kinds`) call in with what they need.

pub mod agent;
pub mod cache;
pub mod cgroups;
pub mod crun;
pub mod debian;
pub mod engine;
pub mod guest;
pub mod helper;
pub mod image;
pub mod intent;
mod lab;
pub mod link;
pub mod mirror;
pub mod nat;
pub mod netlink;
pub mod netns;
pub mod oci;
pub mod ovs;
pub mod packet;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod rootfs;
pub mod seccomp;
pub mod sources;
pub mod tap;

pub use lab::Lab;

use std::process::{Command, Stdio};

/// Runtime files of all labs; `destroy` removes a lab's directory here.
pub const RUN_ROOT: &str = "/run/cloonix";
/// What cloonix keeps on disk: labs' writable layers and the image cache.
pub const DATA_ROOT: &str = "/var/lib/cloonix";
/// What labs keep on disk (containers' writable layers); `destroy` removes a lab's
/// directory here. Under `labs/`, so that a lab named `images` meets no cached image.
pub const STATE_ROOT: &str = "/var/lib/cloonix/labs";
/// Per-lab apply locks: outside the directory that `destroy` removes, so a waiting apply
/// never holds a lock on a file that is gone; in cloonix's own private directory, not in
/// world-writable /run/lock, where anyone could take the name first.
pub const LOCK_ROOT: &str = "/run/cloonix/.locks";
/// Images built once and shared read-only between containers.
pub const IMAGE_ROOT: &str = "/var/lib/cloonix/images";

/// Makes cloonix's two roots private to root (0700), as they are made or as they are found:
/// a container runs as root and writes setuid programs or device nodes into its writable
/// layer on the host's disk, and only root may ever reach them. Each must be a directory of
/// this user's, not a link.
pub fn private_roots() -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    for root in [RUN_ROOT, DATA_ROOT] {
        let what = format!("make {root} private");
        match std::fs::DirBuilder::new().mode(0o700).create(root) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(what)(e)),
            _ => {}
        }
        let meta = std::fs::symlink_metadata(root).map_err(io(&what))?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_dir() || meta.uid() != unsafe { libc::geteuid() } {
            return Err(HostError::Other(format!(
                "{root} must be a directory of this user's; something else is there"
            )));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&what))?;
        }
    }
    Ok(())
}

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
        "dot" => "graphviz",
        "catatonit" => "catatonit",
        "unshare" | "mount" | "umount" | "nsenter" => "util-linux",
        "rm" => "coreutils",
        "slirp4netns" => "slirp4netns",
        "dnsmasq" => "dnsmasq-base",
        "nft" => "nftables",
        "docker" => "docker.io",
        "podman" => "podman",
        "runc" => "runc",
        "mmdebstrap" => "mmdebstrap",
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

/// Removes a tree that a lab's endpoint may have filled (a container's layer, an image a
/// recipe built, an export): of any depth, never leaving its own filesystem, never following
/// a link. Not there is fine.
///
/// Not `std::fs::remove_dir_all`: it holds one descriptor per level and recurses, so 1100
/// nested directories made by a demo's `run` ran it out of descriptors (and 19000 out of
/// stack) and left a lab no `destroy` could remove. coreutils' `rm` walks with fts.
pub fn remove_tree(path: &std::path::Path) -> Result<()> {
    assert!(path.is_absolute(), "{} is not absolute", path.display());
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    run(
        Command::new("rm")
            .args(["-rf", "--one-file-system", "--"])
            .arg(path),
        &format!("remove {}", path.display()),
    )
    .map(drop)
}

/// Detaches whatever is mounted on `path`; nothing mounted there is fine.
pub fn unmount(path: &std::path::Path) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a C string that outlives the call; failing (not mounted) is fine.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}
