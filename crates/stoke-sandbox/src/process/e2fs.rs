//! e2fsprogs, as the process backend runs it: finding `mkfs.ext4` and `debugfs`, the ext4
//! options every image of Stoke's shares, and running one of them on an image with its
//! complaint as the error. Used by `launch::scratch` (the `/tmp` disks) and `images` (the
//! read-only images).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `mkfs.ext4` options of every image Stoke makes: 4 KB blocks, no reserved blocks, no
/// journal and no room to grow (images never grow, and are thrown away rather than repaired).
pub(crate) const MKFS_COMMON: [&str; 10] = [
    "-q",
    "-F",
    "-t",
    "ext4",
    "-b",
    "4096",
    "-m",
    "0",
    "-O",
    "^has_journal,^resize_inode",
];

/// A program in the usual places or on `PATH`.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let fixed = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(|d| Path::new(d).join(name));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    fixed.into_iter().chain(on_path).find(|p| p.is_file())
}

/// Runs `program args image` with an empty environment; `Err` is the exit status and what it
/// said on stderr (debugfs reports a failed request there and exits 0, after a version banner,
/// so anything else on stderr is a failure too).
pub(crate) fn run(program: &Path, args: &[&str], image: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .arg(image)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{} could not be run: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let complaint: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if out.status.success() && complaint.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}: {}",
        out.status,
        complaint
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    ))
}
