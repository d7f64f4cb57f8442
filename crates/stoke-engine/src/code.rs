//! Unpacking code zips safely.
//!
//! A zip is untrusted input. [`unpack`] writes one into a fresh folder and refuses, as an
//! unusable zip, any entry that would land outside it (`..`, absolute paths, symlinks: the
//! "zip-slip" family). It counts the bytes it actually inflates and stops the moment they pass
//! the limit, so a zip bomb is stopped while unpacking, whatever its headers claim.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

/// What [`unpack`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Bytes of unpacked code in all.
    pub max_bytes: u64,
    /// Entries in the zip.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: stoke_core::function::limits::MAX_UNZIPPED_BYTES,
            max_entries: 100_000,
        }
    }
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
}

/// Why a zip could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("not a readable zip: {0}")]
    NotAZip(String),
    #[error("entry {0:?} would be written outside the code folder")]
    UnsafePath(String),
    #[error("entry {0:?} is a symbolic link")]
    Symlink(String),
    #[error("unpacked code exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("more than {0} entries")]
    TooManyEntries(usize),
    #[error("writing unpacked code: {0}")]
    Io(#[from] io::Error),
}

impl CodeError {
    /// Whether the zip is at fault (as opposed to the disk).
    pub fn is_callers_fault(&self) -> bool {
        !matches!(self, CodeError::Io(_))
    }
}

/// Unpacks `zip` into `dest` (which must exist and be empty). Blocking.
pub fn unpack(zip: &[u8], dest: &Path, limits: UnpackLimits) -> Result<Unpacked, CodeError> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(zip))
        .map_err(|e| CodeError::NotAZip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(CodeError::TooManyEntries(limits.max_entries));
    }
    // The headers' sizes may lie (that is what a bomb does), but when they admit to too much
    // there is no need to inflate anything.
    let declared: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|f| f.size()))
        .fold(0u64, u64::saturating_add);
    if declared > limits.max_bytes {
        return Err(CodeError::TooLarge {
            limit: limits.max_bytes,
        });
    }

    let mut total = 0u64;
    let mut files = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| CodeError::NotAZip(e.to_string()))?;
        let raw = entry
            .name()
            .map_err(|e| CodeError::NotAZip(e.to_string()))?
            .into_owned();
        let rel = safe_relative_path(&raw)?;
        if entry.is_symlink() {
            return Err(CodeError::Symlink(raw));
        }
        let target = dest.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::File::create(&target)?;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CodeError::NotAZip(e.to_string())),
            };
            total += n as u64;
            if total > limits.max_bytes {
                return Err(CodeError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
            out.write_all(&buf[..n])?;
        }
        set_mode(&out, entry.unix_mode())?;
        files += 1;
    }
    Ok(Unpacked {
        files,
        bytes: total,
    })
}

/// The entry's path if it stays inside the folder: relative, with no `..`, no root, no drive.
fn safe_relative_path(raw: &str) -> Result<std::path::PathBuf, CodeError> {
    let unsafe_path = || CodeError::UnsafePath(raw.to_owned());
    if raw.is_empty() || raw.contains('\0') || raw.starts_with('/') || raw.starts_with('\\') {
        return Err(unsafe_path());
    }
    let path = Path::new(raw);
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                // A backslash path component (`..\evil`) is a Windows traversal.
                if p.to_string_lossy().split('\\').any(|s| s == "..") {
                    return Err(unsafe_path());
                }
                out.push(p);
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path());
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(unsafe_path());
    }
    Ok(out)
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Keep the executable bit (a `bootstrap` needs it); nothing else of the zip's mode.
    let exec = mode.is_some_and(|m| m & 0o111 != 0);
    file.set_permissions(fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_files_and_folders_and_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_of(&[("a.txt", b"hello"), ("lib/b.py", b"x = 1\n")]);
        let u = unpack(&z, dir.path(), UnpackLimits::default()).unwrap();
        assert_eq!(
            u,
            Unpacked {
                files: 2,
                bytes: 11
            }
        );
        assert_eq!(fs::read(dir.path().join("lib/b.py")).unwrap(), b"x = 1\n");
    }

    #[test]
    fn refuses_entries_that_climb_out_or_are_absolute() {
        for name in ["../evil", "a/../../evil", "/etc/evil", "..\\evil"] {
            let dir = tempfile::tempdir().unwrap();
            let z = zip_of(&[(name, b"x")]);
            let e = unpack(&z, &dir.path().join("in"), UnpackLimits::default());
            assert!(matches!(e, Err(CodeError::UnsafePath(_))), "{name}: {e:?}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn refuses_symlinks() {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&z, dir.path(), UnpackLimits::default()),
            Err(CodeError::Symlink(_))
        ));
    }

    #[test]
    fn stops_a_bomb_while_inflating() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let z = zip_of(&[("zeros", &zeros)]);
        assert!(z.len() < 64 * 1024, "deflate should squeeze zeros");
        let dir = tempfile::tempdir().unwrap();
        let limits = UnpackLimits {
            max_bytes: 1024 * 1024,
            ..UnpackLimits::default()
        };
        assert!(matches!(
            unpack(&z, dir.path(), limits),
            Err(CodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(b"definitely not a zip", dir.path(), UnpackLimits::default());
        assert!(matches!(e, Err(CodeError::NotAZip(_))));
    }
}
