//! This user's private directory for jshost's state: the status cache, the manager lock files
//! and logs, owned hosts' logfiles and sockets, js-host's guard script.
//!
//! Where: `$XDG_RUNTIME_DIR/jshost` when `XDG_RUNTIME_DIR` is set to an absolute path, else
//! `$TMPDIR/jshost-UID` (`TMPDIR` defaulting to `/tmp`). Rules, because other local users share
//! `/tmp` and may create any name in it first:
//! - the directory is created with mode 0700, and before every use it must be a directory (not
//!   a symlink) owned by this user that nobody else can enter, list or write (no group or other
//!   permission bits); anything else is refused with an error naming it, never repaired or used;
//! - files are created 0600 with `O_NOFOLLOW`, and with `O_EXCL` when they are this process's
//!   own; a file opened again (a lock file, a cache entry, the guard script) is used only when
//!   it is a regular file owned by this user.

use jshost_core::error::Build as _;
use jshost_core::{Error, Result};
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest Unix socket path the OS accepts (`sun_path` holds it and a NUL byte).
#[cfg(target_os = "linux")]
pub(crate) const MAX_SOCKET_PATH: usize = 107;
/// The longest Unix socket path the OS accepts (`sun_path` holds it and a NUL byte).
#[cfg(not(target_os = "linux"))]
pub(crate) const MAX_SOCKET_PATH: usize = 103;

/// The current user's id.
pub(crate) fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Where the private directory is, from `XDG_RUNTIME_DIR` and the temporary directory.
pub(crate) fn location(xdg_runtime_dir: Option<std::ffi::OsString>, temp: &Path, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(PathBuf::from) {
        Some(xdg) if xdg.is_absolute() => xdg.join("jshost"),
        _ => temp.join(format!("jshost-{uid}")),
    }
}

/// This user's private directory, created if missing and checked.
///
/// # Errors
/// A config error naming the directory when it cannot be created, or is not a directory owned by
/// this user with no permissions for anyone else.
pub fn dir() -> Result<PathBuf> {
    let dir = location(std::env::var_os("XDG_RUNTIME_DIR"), &std::env::temp_dir(), uid());
    ensure(&dir)?;
    Ok(dir)
}

/// A short private directory for sockets when [`dir`] is too long for one:
/// `/tmp/jshost-UID`, under the same rules.
///
/// # Errors
/// As [`dir`].
pub(crate) fn short_dir() -> Result<PathBuf> {
    let dir = location(None, Path::new("/tmp"), uid());
    ensure(&dir)?;
    Ok(dir)
}

/// Creates `dir` (mode 0700) if it does not exist, then checks it (see the module's rules).
///
/// # Errors
/// As [`dir`].
pub fn ensure(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::config(format!(
                "cannot create jshost's private directory {} (set TMPDIR or XDG_RUNTIME_DIR to a directory you own)",
                dir.display()
            ))
            .with_source(e))
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        Error::config(format!(
            "cannot inspect jshost's private directory {}",
            dir.display()
        ))
        .with_source(e)
    })?;
    check_dir(dir, &meta, uid())
}

/// Why `dir` (with `meta`, not following symlinks) cannot be this user's private directory.
pub(crate) fn check_dir(dir: &Path, meta: &Metadata, uid: u32) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::config(format!(
            "jshost refuses to use its private directory {}: {why}; another user may have created it \
             to read or plant jshost's state. Remove it (or set TMPDIR or XDG_RUNTIME_DIR elsewhere)",
            dir.display()
        )))
    };
    if !meta.file_type().is_dir() {
        return refuse("it is not a directory (a symlink or a file)".to_owned());
    }
    if meta.uid() != uid {
        return refuse(format!(
            "it is owned by uid {}, not by this user (uid {uid})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return refuse(format!(
            "its mode is {mode:o}: other users may enter it (it must be 700)"
        ));
    }
    Ok(())
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    options
}

/// Creates a new file of this process's own in the private directory (0600, `O_EXCL`,
/// `O_NOFOLLOW`).
///
/// # Errors
/// A process error naming the file.
pub(crate) fn create_new(path: &Path) -> Result<File> {
    options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::process(format!("cannot create {}", path.display())).with_source(e))
}

/// Opens (creating if missing, never truncating) a file shared by this user's processes, such as
/// a lock file: 0600, `O_NOFOLLOW`, and used only when it is a regular file owned by this user.
///
/// # Errors
/// A process error naming the file.
pub(crate) fn open_shared(path: &Path) -> Result<File> {
    let file = options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::process(format!("cannot open {}", path.display())).with_source(e))?;
    trusted(path, &file)?;
    Ok(file)
}

/// The contents of `path` when it is a regular file owned by this user (never through a
/// symlink); `None` when it is missing, unreadable or not trusted.
pub(crate) fn read_trusted(path: &Path) -> Option<String> {
    let mut file = open_trusted(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// `path` opened for reading when it is a regular file owned by this user (never through a
/// symlink).
pub(crate) fn open_trusted(path: &Path) -> Option<File> {
    let file = options().read(true).open(path).ok()?;
    trusted(path, &file).ok()?;
    Some(file)
}

/// Checks an opened file: a regular file owned by this user that nobody else may write.
fn trusted(path: &Path, file: &File) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::process(format!("cannot inspect {}", path.display())).with_source(e))?;
    if !meta.file_type().is_file() || meta.uid() != uid() || meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::process(format!(
            "{} is not a regular file owned by this user and writable only by it: not used",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `contents` to `path` atomically (a new 0600 file renamed over it).
///
/// # Errors
/// A process error naming the file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    let written = create_new(&tmp).and_then(|mut file| {
        file.write_all(contents)
            .map_err(|e| Error::process(format!("cannot write {}", tmp.display())).with_source(e))
    });
    let renamed = written.and_then(|()| {
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::process(format!("cannot write {}", path.display())).with_source(e))
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Whether `path` fits in a Unix socket address.
pub(crate) fn fits_socket(path: &Path) -> bool {
    path.as_os_str().len() <= MAX_SOCKET_PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prefers_an_absolute_xdg_runtime_dir() {
        let tmp = Path::new("/tmp");
        assert_eq!(
            location(Some("/run/user/7".into()), tmp, 7),
            Path::new("/run/user/7/jshost")
        );
        assert_eq!(
            location(Some("relative".into()), tmp, 7),
            Path::new("/tmp/jshost-7")
        );
        assert_eq!(
            location(None, Path::new("/var/tmp"), 7),
            Path::new("/var/tmp/jshost-7")
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jshost-private-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_new_directory_is_private_and_accepted() {
        let base = scratch("new");
        let dir = base.join("state");
        ensure(&dir).expect("created");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&dir).expect("checked again");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn an_open_directory_or_a_symlink_is_refused() {
        let base = scratch("open");
        let dir = base.join("state");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ensure(&dir).expect_err("0755 refused").to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("755"),
            "{err}"
        );
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let err = ensure(&link).expect_err("symlink refused").to_string();
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn another_users_directory_is_refused() {
        let base = scratch("owner");
        let meta = std::fs::symlink_metadata(&base).expect("meta");
        let err = check_dir(&base, &meta, meta.uid() + 1)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("owned by uid"), "{err}");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn files_are_0600_and_symlinks_are_not_followed() {
        let base = scratch("files");
        let file = base.join("a.lock");
        open_shared(&file).expect("created");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let link = base.join("b.lock");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(open_shared(&link).is_err());
        assert!(create_new(&file).is_err(), "O_EXCL");
        write_atomic(&base.join("c"), b"x").expect("write");
        assert_eq!(read_trusted(&base.join("c")).as_deref(), Some("x"));
        assert_eq!(read_trusted(&link), None);
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
