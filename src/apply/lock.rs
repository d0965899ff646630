//! One apply or destroy per lab at a time, and none during `images prune`. The lock files
//! live outside the lab's runtime directory, which `destroy` removes, so a waiting apply
//! never locks a file that is gone; lock files are kept, as `flock` needs.
//!
//! The lock directory sits in cloonix's private `/run/cloonix`; it must still be a real
//! directory that this user owns and nobody else can write to, and a lock file is opened
//! without following a link, so a local user cannot make cloonix create or truncate a file
//! of their choosing.

use crate::host::{HostError, LOCK_ROOT, Result, io};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Held for as long as it lives; the kernel releases it if the process dies. It holds
/// the images lock too, shared: `images prune` takes that one alone, so it never runs while
/// an apply of any lab (one it could not know of yet included) is between finding an image
/// and mounting it.
pub struct LabLock {
    _images: File,
    _file: File,
}

/// The file of the images lock, beside the labs' (a lab name never starts with a dot).
const IMAGES: &str = ".images.lock";

impl LabLock {
    /// Takes the lab's lock, calling `waiting` once if another holder makes it wait.
    pub fn take(lab: &str, waiting: impl FnOnce()) -> Result<LabLock> {
        crate::host::private_roots()?;
        Self::take_in(Path::new(LOCK_ROOT), lab, waiting)
    }

    /// As [`LabLock::take`], with the lock directory `dir`.
    pub fn take_in(dir: &Path, lab: &str, waiting: impl FnOnce()) -> Result<LabLock> {
        private_dir(dir)?;
        let mut waiting = Some(waiting);
        let mut wait = || {
            if let Some(w) = waiting.take() {
                w()
            }
        };
        let images = lock(&dir.join(IMAGES), libc::LOCK_SH, &mut wait)?;
        let file = lock(&dir.join(format!("{lab}.lock")), libc::LOCK_EX, &mut wait)?;
        Ok(LabLock {
            _images: images,
            _file: file,
        })
    }
}

/// Held while `images prune` runs: no apply or destroy of any lab runs meanwhile.
pub struct ImagesLock {
    _file: File,
}

impl ImagesLock {
    /// Takes the images lock alone, calling `waiting` once if applies make it wait.
    pub fn take(waiting: impl FnOnce()) -> Result<ImagesLock> {
        crate::host::private_roots()?;
        Self::take_in(Path::new(LOCK_ROOT), waiting)
    }

    /// As [`ImagesLock::take`], with the lock directory `dir`.
    pub fn take_in(dir: &Path, waiting: impl FnOnce()) -> Result<ImagesLock> {
        private_dir(dir)?;
        let mut waiting = Some(waiting);
        let file = lock(&dir.join(IMAGES), libc::LOCK_EX, &mut || {
            if let Some(w) = waiting.take() {
                w()
            }
        })?;
        Ok(ImagesLock { _file: file })
    }
}

/// Opens the lock file at `path` (never through a link, only a regular file of this
/// user's) and flocks it `how`, calling `waiting` before it blocks.
fn lock(path: &Path, how: i32, waiting: &mut dyn FnMut()) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    let meta = file.metadata().map_err(io("lock file"))?;
    if !meta.is_file() || meta.uid() != euid() {
        return Err(HostError::Other(format!(
            "{} is not a lock file of this user's; remove it",
            path.display()
        )));
    }
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } != 0 {
        waiting();
        if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
            return Err(io(format!("lock {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(file)
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Makes `dir` with mode 0700 if it is missing, and checks that it is a directory (not a
/// link to one) that this user owns and that nobody else may write to.
fn private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io(format!("create {}", dir.display()))(e));
        }
        _ => {}
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io(format!("check {}", dir.display())))?;
    if !meta.is_dir() || meta.uid() != euid() || meta.mode() & 0o022 != 0 {
        return Err(HostError::Other(format!(
            "{} must be a directory of this user's that nobody else can write to; \
             someone else made it: remove it and run cloonix again",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cloonix-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn prune_waits_for_every_lab_and_labs_wait_for_prune() {
        let d = scratch("images");
        let locks = d.join("locks");
        let lab = LabLock::take_in(&locks, "lab", || ()).unwrap();
        // Another lab's lock is free meanwhile: labs share the images lock.
        drop(LabLock::take_in(&locks, "other", || {
            panic!("labs waited for each other")
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = locks.clone();
        let prune = std::thread::spawn(move || {
            let _l = ImagesLock::take_in(&dir, || tx.send("waiting").unwrap()).unwrap();
        });
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)),
            Ok("waiting")
        );
        drop(lab);
        prune.join().unwrap();
        let held = ImagesLock::take_in(&locks, || ()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = locks.clone();
        let apply = std::thread::spawn(move || {
            let _l = LabLock::take_in(&dir, "lab", || tx.send("waiting").unwrap()).unwrap();
        });
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)),
            Ok("waiting")
        );
        drop(held);
        apply.join().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let d = scratch("link");
        let locks = d.join("locks");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&locks)
            .unwrap();
        let target = d.join("victim");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, locks.join("lab.lock")).unwrap();
        assert!(LabLock::take_in(&locks, "lab", || ()).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let d = scratch("open");
        let locks = d.join("locks");
        std::fs::DirBuilder::new()
            .mode(0o777)
            .create(&locks)
            .unwrap();
        std::fs::set_permissions(&locks, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        assert!(LabLock::take_in(&locks, "lab", || ()).is_err());
        assert!(!locks.join("lab.lock").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fresh_directory_is_private_and_locks() {
        let d = scratch("fresh");
        let locks = d.join("locks");
        let lock = LabLock::take_in(&locks, "lab", || panic!("nobody holds it")).unwrap();
        let mode = std::fs::metadata(&locks).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(lock);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
