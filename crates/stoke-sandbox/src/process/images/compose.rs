//! A folder of a sandbox composed from pieces of the host ([`Composed`]): `/var/lang` (an
//! interpreter's executable, its standard library, its `libpython`) and `/var/runtime`
//! (Stoke's runtime loop and the runtime libraries). It has two renderings: read-only binds
//! of each piece ([`Composed::binds`], the fallback, which shows the pieces' host paths in
//! `/proc/self/mountinfo`), and a staged copy of the whole (hard links where the file system
//! allows, else copies) that `build` turns into an image ([`Composed::stage`]). Its
//! [`Composed::key`] names its content: the same pieces with the same sizes, times and modes
//! give the same key, on any run.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::process::launch::Mount;

/// One piece, at a path relative to the folder's root (`""`: the root itself).
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// A host folder and everything under it.
    Tree { src: PathBuf, at: PathBuf },
    /// A host file.
    File { src: PathBuf, at: PathBuf },
    /// A symbolic link.
    Link { target: PathBuf, at: PathBuf },
    /// An empty folder over what an earlier piece put there (an install's `site-packages`).
    Empty { at: PathBuf },
}

/// A folder of the sandbox made of pieces, in order (later ones cover earlier ones).
#[derive(Debug, Clone)]
pub(crate) struct Composed {
    /// Where it is inside the sandbox (`/var/lang`).
    pub root: PathBuf,
    pub parts: Vec<Part>,
    /// An empty host folder (what the binds put over an [`Part::Empty`]).
    pub empty: PathBuf,
    /// What it holds, hashed (see [`Composed::new`]): the name of its image.
    pub key: String,
}

/// Bumped when the way images are made changes, so that older ones are not used.
const FORMAT: &str = "stoke image v1";

impl Composed {
    /// The folder at `root` made of `parts`; reads what they hold for its key (every path, its
    /// kind and mode, and each file's size and time), to which `salt` is added (what the times
    /// do not say: Stoke writes its own runtime files with a fixed time, and salts with their
    /// hash, so that every data dir's copy of them gives the same key).
    pub(crate) fn new(
        root: PathBuf,
        parts: Vec<Part>,
        empty: PathBuf,
        salt: &str,
    ) -> io::Result<Self> {
        let mut c = Self {
            root,
            parts,
            empty,
            key: String::new(),
        };
        c.key = c.content_key(salt)?;
        Ok(c)
    }

    /// The read-only binds of each piece (the fallback without images).
    pub(crate) fn binds(&self) -> Vec<Mount> {
        let inside = |at: &Path| {
            if at.as_os_str().is_empty() {
                self.root.clone()
            } else {
                self.root.join(at)
            }
        };
        let ro = |src: &Path, at: &Path| Mount::Bind {
            src: src.to_owned(),
            dst: inside(at),
            writable: false,
        };
        self.parts
            .iter()
            .map(|p| match p {
                Part::Tree { src, at } | Part::File { src, at } => ro(src, at),
                Part::Link { target, at } => Mount::Symlink {
                    target: target.clone(),
                    link: inside(at),
                },
                Part::Empty { at } => ro(&self.empty, at),
            })
            .collect()
    }

    fn masked(&self) -> Vec<&Path> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Empty { at } => Some(at.as_path()),
                _ => None,
            })
            .collect()
    }

    fn content_key(&self, salt: &str) -> io::Result<String> {
        let mut h = Sha256::new();
        h.update(FORMAT.as_bytes());
        h.update(salt.as_bytes());
        h.update(self.root.as_os_str().as_encoded_bytes());
        let masked = self.masked();
        for p in &self.parts {
            match p {
                Part::Tree { src, at } => walk(src, at, &masked, &mut |_, rel, meta, link| {
                    line(&mut h, rel, meta, link);
                    Ok(())
                })?,
                Part::File { src, at } => {
                    line(&mut h, at, &fs::metadata(src)?, None);
                }
                Part::Link { target, at } => {
                    h.update(b"L");
                    h.update(at.as_os_str().as_encoded_bytes());
                    h.update(target.as_os_str().as_encoded_bytes());
                }
                Part::Empty { at } => {
                    h.update(b"E");
                    h.update(at.as_os_str().as_encoded_bytes());
                }
            }
            h.update(b"\n");
        }
        Ok(hex::encode(&h.finalize()[..16]))
    }

    /// Writes the whole folder into the empty folder `dir`.
    pub(crate) fn stage(&self, dir: &Path) -> io::Result<()> {
        let masked = self.masked();
        for p in &self.parts {
            match p {
                Part::Tree { src, at } => {
                    walk(src, at, &masked, &mut |from, rel, meta, link| {
                        let dst = dir.join(rel);
                        if meta.is_dir() {
                            fs::create_dir_all(&dst)?;
                            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode()))
                        } else {
                            make_parents(dir, &dst)?;
                            remove_file(&dst)?;
                            match link {
                                Some(target) => std::os::unix::fs::symlink(target, &dst),
                                None => link_or_copy(from, &dst),
                            }
                        }
                    })?;
                }
                Part::File { src, at } => {
                    let dst = dir.join(at);
                    make_parents(dir, &dst)?;
                    remove_file(&dst)?;
                    link_or_copy(src, &dst)?;
                }
                Part::Link { target, at } => {
                    let dst = dir.join(at);
                    make_parents(dir, &dst)?;
                    remove_file(&dst)?;
                    std::os::unix::fs::symlink(target, &dst)?;
                }
                Part::Empty { at } => {
                    let dst = dir.join(at);
                    if dst.is_dir() {
                        fs::remove_dir_all(&dst)?;
                    }
                    make_parents(dir, &dst)?;
                    fs::create_dir_all(&dst)?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))?;
                }
            }
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
    }
}

/// Hashes one entry of the manifest: its path, mode, and for a file with content its size and
/// time (a folder's own time and an empty file's say nothing of the content: Stoke's
/// placeholders are made afresh at each start).
fn line(h: &mut Sha256, rel: &Path, meta: &fs::Metadata, link: Option<&Path>) {
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update(format!(" {:o}", meta.mode()).as_bytes());
    if meta.is_file() && meta.len() > 0 {
        h.update(format!(" {} {}.{}", meta.len(), meta.mtime(), meta.mtime_nsec()).as_bytes());
    }
    if let Some(t) = link {
        h.update(t.as_os_str().as_encoded_bytes());
    }
    h.update(b"\n");
}

/// What [`walk`] calls for each entry: (host path, path inside, metadata, link target).
type Visit<'a> = dyn FnMut(&Path, &Path, &fs::Metadata, Option<&Path>) -> io::Result<()> + 'a;

/// Calls `f(host path, path relative to the composed root, metadata, link target)` for `src`
/// (at `at`)
/// and everything under it, parents first, sorted by name; a masked folder is reported but
/// not entered.
fn walk(src: &Path, at: &Path, masked: &[&Path], f: &mut Visit<'_>) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        return f(src, at, &meta, Some(&fs::read_link(src)?));
    }
    f(src, at, &meta, None)?;
    if !meta.is_dir() || masked.contains(&at) {
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        walk(&e.path(), &at.join(e.file_name()), masked, f)?;
    }
    Ok(())
}

fn make_parents(dir: &Path, dst: &Path) -> io::Result<()> {
    match dst.parent() {
        Some(p) if p != dir && !p.is_dir() => {
            fs::create_dir_all(p)?;
            fs::set_permissions(p, fs::Permissions::from_mode(0o755))
        }
        _ => Ok(()),
    }
}

fn remove_file(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A hard link (the same file system), else a copy (with its mode).
fn link_or_copy(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    fs::copy(src, dst).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::{Composed, Part};
    use std::path::{Path, PathBuf};

    fn compose(src: &Path, empty: &Path) -> Composed {
        let parts = vec![
            Part::Tree {
                src: src.join("stdlib"),
                at: "lib/py".into(),
            },
            Part::Empty {
                at: "lib/py/site-packages".into(),
            },
            Part::File {
                src: src.join("exe"),
                at: "bin/py".into(),
            },
            Part::Link {
                target: "py".into(),
                at: "bin/python3".into(),
            },
        ];
        Composed::new("/var/lang".into(), parts, empty.to_owned(), "salt").unwrap()
    }

    #[test]
    fn the_key_names_the_content_and_the_stage_holds_it_masked() {
        let dir = tempfile::tempdir().unwrap();
        let (src, empty) = (dir.path().join("src"), dir.path().join("empty"));
        std::fs::create_dir_all(src.join("stdlib/site-packages/host_pkg")).unwrap();
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(src.join("stdlib/os.py"), "import sys\n").unwrap();
        std::fs::write(src.join("stdlib/site-packages/host_pkg/x.py"), "x").unwrap();
        std::fs::write(src.join("exe"), "ELF").unwrap();
        let key = compose(&src, &empty).key;
        assert_eq!(
            key,
            compose(&src, &empty).key,
            "the same content, the same key"
        );
        // An empty file made afresh (a placeholder) and what a masked folder holds do not
        // change it; a file's content does.
        std::fs::write(src.join("stdlib/placeholder"), "").unwrap();
        let with_placeholder = compose(&src, &empty).key;
        std::fs::remove_file(src.join("stdlib/placeholder")).unwrap();
        std::fs::write(src.join("stdlib/placeholder"), "").unwrap();
        assert_eq!(with_placeholder, compose(&src, &empty).key);
        std::fs::write(src.join("stdlib/site-packages/host_pkg/x.py"), "xyz").unwrap();
        assert_eq!(with_placeholder, compose(&src, &empty).key);
        std::fs::write(src.join("stdlib/os.py"), "import sys, os\n").unwrap();
        assert_ne!(with_placeholder, compose(&src, &empty).key);

        let stage = dir.path().join("stage");
        std::fs::create_dir(&stage).unwrap();
        compose(&src, &empty).stage(&stage).unwrap();
        let mut found: Vec<PathBuf> = Vec::new();
        let mut todo = vec![stage.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                found.push(p.strip_prefix(&stage).unwrap().to_owned());
                if e.file_type().unwrap().is_dir() {
                    todo.push(p);
                }
            }
        }
        found.sort();
        let want: Vec<PathBuf> = [
            "bin",
            "bin/py",
            "bin/python3",
            "lib",
            "lib/py",
            "lib/py/os.py",
            "lib/py/placeholder",
            "lib/py/site-packages",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(found, want);
        assert_eq!(
            std::fs::read_to_string(stage.join("lib/py/os.py")).unwrap(),
            "import sys, os\n"
        );
        assert_eq!(
            std::fs::read_link(stage.join("bin/python3")).unwrap(),
            PathBuf::from("py")
        );
    }
}
