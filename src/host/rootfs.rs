//! An endpoint's copy-on-write root filesystem: an overlay over a shared image, and files
//! read and written inside it, every path resolved inside the root (a symlink in the
//! image can never send a write to the host).

use super::{HostError, Result, io};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where a container's files are.
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn runs(&self) -> PathBuf {
        self.dir.join("run.json")
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("paths have no NUL")
}

/// Mounts the copy-on-write root over `image`; a root that is mounted already is kept.
pub fn mount_root(p: &Paths, image: &Path) -> Result<()> {
    if is_mounted(&p.merged()) {
        return Ok(());
    }
    for d in [p.merged(), p.upper(), p.work()] {
        std::fs::create_dir_all(&d).map_err(io("create the container's directories"))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        image.display(),
        p.upper().display(),
        p.work().display()
    );
    let (src, target, fs, data) = (
        cstr(Path::new("overlay")),
        cstr(&p.merged()),
        cstr(Path::new("overlay")),
        cstr(Path::new(&opts)),
    );
    // SAFETY: plain C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fs.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io(format!(
            "mount the overlay root at {}",
            p.merged().display()
        ))(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Unmounts the root and removes every file of the container.
pub fn remove_root(p: &Paths) -> Result<()> {
    if is_mounted(&p.merged()) {
        super::unmount(&p.merged());
    }
    match std::fs::remove_dir_all(&p.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io("remove the container's files")(e))
        }
        _ => Ok(()),
    }
}

/// The mount points of this mount namespace.
pub fn mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .collect()
}

fn is_mounted(path: &Path) -> bool {
    mounts().iter().any(|m| m == path)
}

fn open_in_root(root: &File, path: &str, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    // The kernel's `struct open_how` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            mode as u64
        } else {
            0
        },
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    let c =
        CString::new(path.trim_start_matches('/')).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: openat2 with a valid dirfd, C string and open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Writes `content` at `path` inside `root`, making missing directories, every step
/// resolved inside the root.
pub fn write_file(root: &Path, path: &str, content: &[u8], mode: u32) -> Result<()> {
    let what = format!("write {path}");
    let root_dir = File::open(root).map_err(io(&what))?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut prefix = String::new();
    for dir in &parts[..parts.len().saturating_sub(1)] {
        let parent = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.clone()
        };
        prefix = format!("{prefix}/{dir}");
        if open_in_root(&root_dir, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0).is_ok() {
            continue;
        }
        let pfd = open_in_root(&root_dir, &parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io(&what))?;
        let name = CString::new(*dir).map_err(|_| HostError::Other(format!("{what}: bad name")))?;
        // SAFETY: mkdirat relative to a directory fd we hold.
        if unsafe { libc::mkdirat(pfd.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(io(&what)(e));
            }
        }
    }
    let fd = open_in_root(
        &root_dir,
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        mode,
    )
    .map_err(io(&what))?;
    let mut f = File::from(fd);
    f.write_all(content).map_err(io(&what))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(&what))
}

/// Removes `path` inside `root`, resolved inside it; one that is gone is fine.
pub fn remove_file(root: &Path, path: &str) -> Result<()> {
    let what = format!("remove {path}");
    let root_dir = File::open(root).map_err(io(&what))?;
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = if parent.is_empty() { "." } else { parent };
    let Ok(pfd) = open_in_root(&root_dir, parent, libc::O_PATH | libc::O_DIRECTORY, 0) else {
        return Ok(());
    };
    let name = CString::new(name).map_err(|_| HostError::Other(format!("{what}: bad name")))?;
    // SAFETY: unlinkat relative to a directory fd we hold.
    if unsafe { libc::unlinkat(pfd.as_raw_fd(), name.as_ptr(), 0) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(io(&what)(e));
        }
    }
    Ok(())
}

pub enum Lookup {
    Found,
    NotExecutable,
    Missing,
}

/// Finds a command in the container's root as its shell would (a path, or a name on the
/// default PATH), resolved inside the root.
pub fn lookup(root: &Path, command: &str) -> Lookup {
    let Ok(root_dir) = File::open(root) else {
        return Lookup::Missing;
    };
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.to_string()]
    } else {
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| format!("{d}/{command}"))
        .collect()
    };
    let mut found = false;
    for c in candidates {
        if let Ok(fd) = open_in_root(&root_dir, &c, libc::O_PATH, 0) {
            found = true;
            let meta = File::from(fd).metadata();
            if meta.is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
                return Lookup::Found;
            }
        }
    }
    if found {
        Lookup::NotExecutable
    } else {
        Lookup::Missing
    }
}

/// Reads `path` inside `root`, resolved inside it; None when it cannot be read.
pub fn read_file(root: &Path, path: &str) -> Option<String> {
    let root_dir = File::open(root).ok()?;
    let fd = open_in_root(&root_dir, path, libc::O_RDONLY, 0).ok()?;
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text).ok()?;
    Some(text)
}
