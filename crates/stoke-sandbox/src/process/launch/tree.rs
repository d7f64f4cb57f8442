//! The plan of a sandbox's file tree: what goes where ([`Mount`]) and the steps that build
//! it under the root folder ([`Step`]), prepared before the fork; the sandbox's PID 1 runs
//! them (see the parent module).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{image, scratch};

/// One step of building the new root; paths are absolute on the host (under the root folder).
#[derive(Debug)]
pub(super) enum Step {
    Dir(CString),
    File(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        writable: bool,
    },
    Tmpfs {
        dst: CString,
        data: CString,
    },
    /// An ext4 on a loop device, mode 1777, without `lost+found`.
    Disk {
        dev: CString,
        dst: CString,
        lost_found: CString,
    },
    Proc(CString),
    /// A read-only ext4 on an attached loop device.
    Image {
        dev: CString,
        dst: CString,
    },
    /// A new file of the root's tmpfs, holding `data` (mode 644).
    Write {
        path: CString,
        data: Vec<u8>,
    },
}

/// What goes where in a sandbox's file tree.
#[derive(Debug, Clone)]
pub(crate) enum Mount {
    /// A host file or folder, read-only (or writable: the devices) at a path inside.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        writable: bool,
    },
    /// A symbolic link inside.
    Symlink { target: PathBuf, link: PathBuf },
    /// An empty folder of the root (read-only once the root is).
    Dir { dst: PathBuf },
    /// A tmpfs of `bytes` (mode 1777).
    Tmpfs { dst: PathBuf, bytes: u64 },
    /// Disk of `bytes` (mode 1777): a fresh ext4 on a loop device, made in `scratch`.
    Disk {
        dst: PathBuf,
        bytes: u64,
        scratch: Arc<scratch::Scratch>,
    },
    /// `/proc` of the sandbox's pid namespace.
    Proc { dst: PathBuf },
    /// A read-only image (its own file system, whose root is `dst`), attached (see `image`).
    Image {
        dst: PathBuf,
        image: Arc<image::Attached>,
    },
    /// A small file of the root itself (read-only once the root is), e.g. `/etc/passwd`.
    File { dst: PathBuf, data: Arc<[u8]> },
}

pub(super) fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

/// The steps that build `mounts` under `root`, parents first; `disks` are the attached
/// devices of the [`Mount::Disk`]s, in order.
pub(super) fn plan(
    root: &Path,
    mounts: &[Mount],
    disks: &[scratch::Disk],
) -> io::Result<Vec<Step>> {
    let mut disks = disks.iter();
    let mut steps = Vec::new();
    let mut made: Vec<PathBuf> = vec![PathBuf::from("/")];
    let under = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mut parents = |steps: &mut Vec<Step>, inside: &Path| -> io::Result<()> {
        let mut todo = Vec::new();
        let mut p = inside.parent();
        while let Some(d) = p {
            if made.iter().any(|m| m == d) {
                break;
            }
            todo.push(d.to_path_buf());
            p = d.parent();
        }
        for d in todo.into_iter().rev() {
            steps.push(Step::Dir(cstr(under(&d))?));
            made.push(d);
        }
        Ok(())
    };
    for m in mounts {
        match m {
            Mount::Bind { src, dst, writable } => {
                parents(&mut steps, dst)?;
                let target = cstr(under(dst))?;
                steps.push(if src.is_dir() {
                    Step::Dir(target.clone())
                } else {
                    Step::File(target.clone())
                });
                steps.push(Step::Bind {
                    src: cstr(src)?,
                    dst: target,
                    writable: *writable,
                });
            }
            Mount::Symlink { target, link } => {
                parents(&mut steps, link)?;
                steps.push(Step::Symlink {
                    target: cstr(target)?,
                    link: cstr(under(link))?,
                });
            }
            Mount::Dir { dst } => {
                parents(&mut steps, dst)?;
                steps.push(Step::Dir(cstr(under(dst))?));
            }
            Mount::Tmpfs { dst, bytes } => {
                parents(&mut steps, dst)?;
                let target = cstr(under(dst))?;
                steps.push(Step::Dir(target.clone()));
                steps.push(Step::Tmpfs {
                    dst: target,
                    data: cstr(format!("size={bytes},mode=1777"))?,
                });
            }
            Mount::Disk { dst, .. } => {
                let disk = disks
                    .next()
                    .ok_or_else(|| io::Error::other("a disk was not made"))?;
                parents(&mut steps, dst)?;
                let target = cstr(under(dst))?;
                steps.push(Step::Dir(target.clone()));
                steps.push(Step::Disk {
                    dev: cstr(disk.device())?,
                    dst: target,
                    lost_found: cstr(under(dst).join("lost+found"))?,
                });
            }
            Mount::Proc { dst } => {
                parents(&mut steps, dst)?;
                let target = cstr(under(dst))?;
                steps.push(Step::Dir(target.clone()));
                steps.push(Step::Proc(target));
            }
            Mount::Image { dst, image } => {
                parents(&mut steps, dst)?;
                let target = cstr(under(dst))?;
                steps.push(Step::Dir(target.clone()));
                steps.push(Step::Image {
                    dev: cstr(image.device())?,
                    dst: target,
                });
            }
            Mount::File { dst, data } => {
                parents(&mut steps, dst)?;
                steps.push(Step::Write {
                    path: cstr(under(dst))?,
                    data: data.to_vec(),
                });
            }
        }
    }
    Ok(steps)
}
