//! One client at a time per config, across tasks and processes.
//!
//! js-host 0.12's manager records a host only once its start has finished, so two concurrent
//! `/host/start`s of one config spawn two hosts and it forgets one; and a disconnect that
//! reaches it before it noticed a crashed host's exit arms a stop timer that later deletes the
//! record of the host started after it. The SDK works around both by serialising everything it
//! asks a config's manager (locate, start, connect, restart, stop, disconnect) behind an
//! advisory lock on a file in this user's private directory (next to the manager's log; another
//! user cannot create it first and block us). The OS releases the lock when the process holding
//! it dies.

use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long to wait for another client of the same config.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct ConfigLock {
    _file: File,
}

fn lock_path(config: &Path) -> Result<PathBuf> {
    let key = jshost_core::hash(config.to_string_lossy().as_bytes());
    Ok(crate::private::dir()?.join(format!("manager-{}.lock", &key[..12])))
}

impl ConfigLock {
    /// Waits (up to [`LOCK_TIMEOUT`]) until no other client of `config` holds the lock.
    ///
    /// # Errors
    /// A config error when the private directory is refused; a process error naming the lock
    /// file when it cannot be opened or is not this user's; a timeout error when another client
    /// holds it too long.
    pub(crate) async fn acquire(config: &Path) -> Result<ConfigLock> {
        let path = lock_path(config)?;
        let file = crate::private::open_shared(&path)?;
        // Uncontended (the usual case): taken at once, without a blocking thread.
        match file.try_lock() {
            Ok(()) => return Ok(ConfigLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::process(format!("cannot lock {}", path.display())).with_source(e))
            }
        }
        // `File::lock` blocks the thread: on a blocking thread. If the wait times out, that
        // thread gets the lock later and releases it at once.
        let locking = tokio::task::spawn_blocking(move || file.lock().map(|()| file));
        match tokio::time::timeout(LOCK_TIMEOUT, locking).await {
            Ok(Ok(Ok(file))) => Ok(ConfigLock { _file: file }),
            Ok(Ok(Err(e))) => Err(Error::process(format!("cannot lock {}", path.display())).with_source(e)),
            Ok(Err(e)) => Err(Error::process(format!("cannot lock {}", path.display())).with_source(e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "another client of {} held the lock file {} for more than {LOCK_TIMEOUT:?}",
                    config.display(),
                    path.display()
                ),
            )),
        }
    }
}
