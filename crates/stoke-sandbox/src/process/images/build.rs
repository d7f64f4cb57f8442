//! Making a read-only ext4 image of a folder: `mkfs.ext4 -d` into a sparse file sized from
//! what the folder holds (no journal, no reserved blocks, lazy inode tables; its root owned by
//! root, mode 755), then `debugfs` removes the `lost+found` that `mkfs` always makes (the image
//! is mounted read-only, and Lambda's `/var/task` has none). Written under a temporary name and
//! renamed into place, so an image path only ever names a whole image.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::ImageError;
use crate::process::e2fs::{self, MKFS_COMMON, find_tool};

/// `mkfs.ext4` and `debugfs` (e2fsprogs).
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    mkfs: PathBuf,
    debugfs: PathBuf,
}

impl Tools {
    pub(crate) fn find() -> Result<Self, ImageError> {
        Ok(Self {
            mkfs: find_tool("mkfs.ext4").ok_or(ImageError::NoTool("mkfs.ext4"))?,
            debugfs: find_tool("debugfs").ok_or(ImageError::NoTool("debugfs"))?,
        })
    }

    /// Makes the image of `src` at `image` (replacing none: `image` must not exist).
    pub(crate) fn build(&self, src: &Path, image: &Path) -> Result<(), ImageError> {
        let (blocks, inodes) = measure(src)?;
        let tmp = image.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut bytes = size_for(blocks, inodes);
            // A folder whose small files need more metadata than the estimate: once more,
            // twice as large (the image is sparse: only what is written takes disk).
            for attempt in 0..2 {
                let _ = fs::remove_file(&tmp);
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?
                    .set_len(bytes)?;
                match self.mkfs(src, &tmp, inodes) {
                    Err(e) if attempt == 0 => {
                        tracing::debug!(error = %e, "mkfs.ext4 -d needed a larger image");
                        bytes *= 2;
                    }
                    r => r?,
                }
            }
            e2fs::run(&self.debugfs, &["-w", "-R", "rmdir lost+found"], &tmp).map_err(|why| {
                ImageError::Tool {
                    name: "debugfs",
                    why,
                }
            })?;
            fs::rename(&tmp, image)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn mkfs(&self, src: &Path, image: &Path, inodes: u64) -> Result<(), ImageError> {
        let n = inodes.to_string();
        let d = src.as_os_str().to_str().ok_or(ImageError::Path)?;
        let mut args = MKFS_COMMON.to_vec();
        args.extend([
            "-N",
            &n,
            "-E",
            "lazy_itable_init=1,nodiscard,root_owner=0:0",
            "-d",
            d,
        ]);
        e2fs::run(&self.mkfs, &args, image).map_err(|why| ImageError::Tool {
            name: "mkfs.ext4",
            why,
        })
    }
}

/// The 4 KB blocks and the inodes a folder's content needs.
fn measure(src: &Path) -> io::Result<(u64, u64)> {
    let (mut blocks, mut inodes) = (0u64, 0u64);
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        inodes += 1;
        blocks += 1;
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                todo.push(e.path());
                continue;
            }
            inodes += 1;
            // Long link targets take a block; file data as many as it fills; each file's
            // extent tree fits in its inode unless it is large.
            blocks += meta.len().div_ceil(4096) + meta.len() / (128 << 20);
        }
    }
    Ok((blocks, inodes + 16))
}

/// The image's size for that content: the data, the inode tables (256 bytes each), the
/// bitmaps, group descriptors and directory blocks, with room to spare.
fn size_for(blocks: u64, inodes: u64) -> u64 {
    let data = blocks * 4096;
    let bytes = data + data / 8 + inodes * 512 + (16 << 20);
    bytes.div_ceil(1 << 20) * (1 << 20)
}
