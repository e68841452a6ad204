//! The fingerprint key on disk: exactly 32 raw bytes, mode 0600.

use std::{
    fs::{DirBuilder, File, Permissions},
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use super::FingerprintKey;

/// Why the fingerprint key could not be loaded or created. Every message
/// names the file; none contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file exists but could not be opened or read (or is not a
    /// regular file).
    #[error("cannot read fingerprint key {}: {source}", .path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The key file is not exactly 32 bytes long.
    #[error(
        "fingerprint key {} is {len} bytes long, expected 32 (remove it to have a new key generated; \
         fingerprints will change)",
        .path.display()
    )]
    WrongLength {
        /// The key file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The key file grants some permission to group or others (any bit of
    /// 0o077), the check OpenSSH applies to private keys.
    #[error(
        "fingerprint key {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The key file did not exist and could not be created (directory,
    /// temporary file, write or rename failed).
    #[error("cannot create fingerprint key {}: {source}", .path.display())]
    Create {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("cannot create fingerprint key {}: OS random number generator: {source}", .path.display())]
    Random {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: getrandom::Error,
    },
}

impl FingerprintKey {
    /// Loads the per-installation key from `path`, or creates it on first
    /// run.
    ///
    /// Creating: 32 bytes from the OS RNG (`getrandom`), parent directories
    /// created (mode 0700), written to a temporary file (mode 0600) in the
    /// same directory, fsynced, then renamed into place without replacing a
    /// file another process created meanwhile (`tempfile`'s
    /// `persist_noclobber`: `renameat2(RENAME_NOREPLACE)`, or link + unlink).
    /// If that race is lost, the winner's key is loaded instead.
    ///
    /// # Errors
    /// [`KeyError::Read`] if the file exists but can't be read,
    /// [`KeyError::Permissions`] if group or others have any permission on
    /// it (fix with `chmod 600 PATH`), [`KeyError::WrongLength`] if it isn't
    /// exactly 32 bytes, [`KeyError::Create`] / [`KeyError::Random`] if it
    /// had to be created and that failed.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match File::open(path) {
            Ok(file) => load(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(path),
            Err(source) => Err(KeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

fn load(path: &Path, mut file: File) -> Result<FingerprintKey, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::other("not a regular file")));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    // Read one byte more than needed so a longer file is noticed even if it
    // grew after the metadata was taken.
    let mut buf = [0u8; 33];
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(e)),
        }
    }
    if len != 32 || meta.len() != 32 {
        return Err(KeyError::WrongLength {
            path: path.to_owned(),
            len: meta.len().max(len as u64),
        });
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&buf[..32]);
    Ok(FingerprintKey::from_bytes(key))
}

fn create(path: &Path) -> Result<FingerprintKey, KeyError> {
    let create_err = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(create_err)?;

    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|source| KeyError::Random {
        path: path.to_owned(),
        source,
    })?;

    let mut tmp = tempfile::Builder::new()
        .prefix(".fingerprint-key.")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(create_err)?;
    tmp.write_all(&key).map_err(create_err)?;
    tmp.as_file().sync_all().map_err(create_err)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        // Another process created the key first: use theirs.
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            let file = File::open(path).map_err(|source| KeyError::Read {
                path: path.to_owned(),
                source,
            })?;
            return load(path, file);
        }
        Err(e) => return Err(create_err(e.error)),
    }
    // Make the new directory entry durable; failure here is not fatal to
    // this run, so it is reported like any other creation error.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(create_err)?;
    Ok(FingerprintKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn created_0600_in_new_dir_and_reloaded_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/fingerprint.key");
        let created = FingerprintKey::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), 32);
        let loaded = FingerprintKey::load_or_create(&path).unwrap();
        assert_eq!(created.fingerprint(b"x"), loaded.fingerprint(b"x"));
        // No temporary file left behind.
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn two_installations_get_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = FingerprintKey::load_or_create(&dir.path().join("a")).unwrap();
        let b = FingerprintKey::load_or_create(&dir.path().join("b")).unwrap();
        assert_ne!(a.fingerprint(b"x"), b.fingerprint(b"x"));
    }

    #[test]
    fn wrong_length_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        fs::write(&path, [7u8; 31]).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let err = FingerprintKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongLength { len: 31, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(err.to_string().contains("31 bytes"));

        fs::write(&path, [7u8; 40]).unwrap();
        let err = FingerprintKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongLength { len: 40, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn group_readable_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fingerprint.key");
        FingerprintKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let err = FingerprintKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        // The key bytes are not in the message.
        let bytes = fs::read(&path).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!msg.contains(&hex));
    }

    #[test]
    fn unreadable_path_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the key should be.
        let err = FingerprintKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
    }
}
