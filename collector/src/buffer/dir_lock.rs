//! Exclusive lock on a buffer directory, so that two collectors (or two
//! buffers in one process) never write the same segments. The lock is an
//! `flock` on `<dir>/LOCK`: the kernel releases it when the process dies, so a
//! crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::error::BufferError;
use super::format::LOCK_NAME;

/// Holds the lock for as long as it lives.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, BufferError> {
        let path = dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| BufferError::io("open lock file", &path, e))?;
        // SAFETY: flock only reads the descriptor, which `file` keeps open
        // for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return if err.kind() == std::io::ErrorKind::WouldBlock {
                Err(BufferError::Locked {
                    dir: dir.to_owned(),
                })
            } else {
                Err(BufferError::io("lock", &path, err))
            };
        }
        Ok(DirLock { _file: file })
    }
}
