//! An endpoint's copy-on-write root filesystem: an overlay over a shared image, and files
//! read and written inside it.
//!
//! A container's root is its own: whatever it planted there is handled as hostile.
//! * Every path is resolved inside the root (`openat2` with `RESOLVE_IN_ROOT`), so a
//!   symlink in the image can never send a read or a write to the host.
//! * The file itself is never a link that is followed, and never anything but a regular
//!   file: it is first opened as a bare handle (`O_PATH | O_NOFOLLOW`), its type checked,
//!   and only then opened for reading or writing through that very handle, without
//!   blocking. A FIFO or a device node planted where a `files` entry goes is refused, not
//!   opened.
//! * The overlay is mounted `nodev`, and its options are built only from paths that
//!   cannot be read as more options.

use super::{HostError, Result, io};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Reads of a file in a root stop after this much: files from a topology are at most
/// this big, and a bigger one differs from them anyway.
const MAX_READ: u64 = 32 << 20;

/// Where a container's files are.
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("paths have no NUL")
}

/// Whether a path can stand in overlay's mount options as it is: no `,` (the next
/// option), `:` (the next layer), `\` (an escape), `=` or control character.
pub fn safe_in_mount_options(path: &Path) -> bool {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .all(|&b| !matches!(b, b',' | b':' | b'\\' | b'=') && b >= 0x20 && b != 0x7f)
}

/// Mounts the copy-on-write root over `image`; a root that is mounted already is kept.
pub fn mount_root(p: &Paths, image: &Path) -> Result<()> {
    if is_mounted(&p.merged()) {
        return Ok(());
    }
    for path in [image, &p.upper(), &p.work()] {
        if !safe_in_mount_options(path) {
            return Err(HostError::Other(format!(
                "{}: a path with `,` `:` `\\` `=` or control characters cannot be an overlay layer",
                path.display()
            )));
        }
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
            libc::MS_NODEV,
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
    super::remove_tree(&p.dir)
}

/// The mount points of this mount namespace.
pub fn mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\'
            && let Some(d) = octal
        {
            out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        // Never onto another mount: a running endpoint's /proc, /sys or /dev (an engine's
        // files are written through its running root) are not its files.
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
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

/// What is at a path in a root, looked at without opening it.
enum Found {
    Nothing,
    Regular(OwnedFd),
    Other(&'static str),
}

/// Looks at `path` in `root` through a bare handle: the file is not opened, and a link
/// there is seen as a link.
fn look(root: &File, path: &str) -> std::io::Result<Found> {
    let handle = match open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e),
    };
    let ft = File::from(handle.try_clone()?).metadata()?.file_type();
    Ok(if ft.is_file() {
        Found::Regular(handle)
    } else if ft.is_symlink() {
        Found::Other("a symbolic link")
    } else if ft.is_fifo() {
        Found::Other("a FIFO")
    } else if ft.is_char_device() || ft.is_block_device() {
        Found::Other("a device node")
    } else if ft.is_dir() {
        Found::Other("a directory")
    } else {
        Found::Other("not a regular file")
    })
}

/// Opens the regular file behind a bare handle, through that handle (so it is the file
/// that was looked at, whatever the container did to the path since), without blocking.
fn reopen(handle: &OwnedFd, flags: i32) -> std::io::Result<File> {
    let path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let c = CString::new(path).expect("no NUL");
    // SAFETY: open of a C string; the descriptor is owned by the File.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by no one else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Writes `content` at `path` inside `root`, making missing directories, every step
/// resolved inside the root; what is at the path must be a regular file or nothing.
pub fn write_file(root: &Path, path: &str, content: &[u8], mode: u32) -> Result<()> {
    let root_dir = File::open(root).map_err(io(format!("write {path}")))?;
    write_file_at(&root_dir, path, content, mode)
}

/// [`write_file`] in the root that `root_dir` is open on (a running container's, say,
/// opened through `/proc/PID/root` while its process was known to be the one).
pub fn write_file_at(root_dir: &File, path: &str, content: &[u8], mode: u32) -> Result<()> {
    let what = format!("write {path}");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut prefix = String::new();
    for dir in &parts[..parts.len().saturating_sub(1)] {
        let parent = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.clone()
        };
        prefix = format!("{prefix}/{dir}");
        if open_in_root(root_dir, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0).is_ok() {
            continue;
        }
        let pfd = open_in_root(root_dir, &parent, libc::O_PATH | libc::O_DIRECTORY, 0)
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
    let mut f = match look(root_dir, path).map_err(io(&what))? {
        Found::Regular(handle) => {
            let f = reopen(&handle, libc::O_WRONLY).map_err(io(&what))?;
            f.set_len(0).map_err(io(&what))?;
            f
        }
        // Made new and exclusive: if anything took the path meanwhile, this fails.
        Found::Nothing => File::from(
            open_in_root(
                root_dir,
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                mode,
            )
            .map_err(io(&what))?,
        ),
        Found::Other(kind) => {
            return Err(HostError::Other(format!(
                "{what}: the container has {kind} there; cloonix writes only regular files"
            )));
        }
    };
    f.write_all(content).map_err(io(&what))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(&what))
}

/// Removes `path` inside `root`, resolved inside it; one that is gone is fine. Whatever is
/// there is unlinked, not opened.
pub fn remove_file(root: &Path, path: &str) -> Result<()> {
    let root_dir = File::open(root).map_err(io(format!("remove {path}")))?;
    remove_file_at(&root_dir, path)
}

/// [`remove_file`] in the root that `root_dir` is open on.
pub fn remove_file_at(root_dir: &File, path: &str) -> Result<()> {
    let what = format!("remove {path}");
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = if parent.is_empty() { "." } else { parent };
    let Ok(pfd) = open_in_root(root_dir, parent, libc::O_PATH | libc::O_DIRECTORY, 0) else {
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
/// default PATH), resolved inside the root; nothing is opened.
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

/// Reads `path` inside `root` (at most [`MAX_READ`] bytes); None when there is no regular
/// file there or it cannot be read.
pub fn read_file(root: &Path, path: &str) -> Option<String> {
    read_file_at(&File::open(root).ok()?, path)
}

/// [`read_file`] in the root that `root_dir` is open on.
pub fn read_file_at(root_dir: &File, path: &str) -> Option<String> {
    let Found::Regular(handle) = look(root_dir, path).ok()? else {
        return None;
    };
    let mut bytes = Vec::new();
    reopen(&handle, libc::O_RDONLY)
        .ok()?
        .take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_option_text_is_refused() {
        assert!(safe_in_mount_options(Path::new(
            "/var/lib/cloonix/images/busybox"
        )));
        for bad in ["/x,upperdir=/etc", "/img:/etc", "/a\\b", "/a\nb", "/a=b"] {
            assert!(!safe_in_mount_options(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn only_regular_files_are_read_or_written() {
        let dir = std::env::temp_dir().join(format!("cloonix-rootfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let fifo = CString::new(dir.join("etc/fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a C string, inside the test's own directory.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::os::unix::fs::symlink("/etc/hostname", dir.join("etc/link")).unwrap();
        assert!(read_file(&dir, "/etc/fifo").is_none(), "a FIFO was read");
        assert!(write_file(&dir, "/etc/fifo", b"x", 0o644).is_err());
        assert!(
            read_file(&dir, "/etc/link").is_none(),
            "a link was followed"
        );
        assert!(write_file(&dir, "/etc/link", b"x", 0o644).is_err());
        write_file(&dir, "/etc/new/file", b"hello", 0o600).unwrap();
        assert_eq!(read_file(&dir, "/etc/new/file").as_deref(), Some("hello"));
        write_file(&dir, "/etc/new/file", b"hi", 0o600).unwrap();
        assert_eq!(read_file(&dir, "/etc/new/file").as_deref(), Some("hi"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
