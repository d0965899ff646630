//! One apply or destroy per lab at a time. The lock file lives outside the lab's runtime
//! directory, which `destroy` removes, so a waiting apply never locks a file that is gone.

use crate::host::{LOCK_ROOT, Result, io};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Held for as long as it lives; the kernel releases it if the process dies.
pub struct LabLock {
    _file: File,
}

impl LabLock {
    /// Takes the lab's lock, calling `waiting` once if another holder makes it wait.
    pub fn take(lab: &str, waiting: impl FnOnce()) -> Result<LabLock> {
        std::fs::create_dir_all(LOCK_ROOT).map_err(io("create the lock directory"))?;
        let path = Path::new(LOCK_ROOT).join(format!("{lab}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("open {}", path.display())))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            waiting();
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io("lock the lab")(std::io::Error::last_os_error()));
            }
        }
        Ok(LabLock { _file: file })
    }
}
