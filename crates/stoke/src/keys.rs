//! The server's keys on disk: the master key that seals secrets at rest, and the admin's
//! `credentials` file.
//!
//! The master key is `STOKE_MASTER_KEY` (64 hexadecimal characters, the same on every node of a
//! cluster) or else the data dir's `master.key`, made with mode 0600 on the first start. A key
//! file that others may read is refused, not repaired: a key that was readable may have been
//! read, which only its owner can judge.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use stoke_store::{AccessKey, MasterKey};

/// The profile the credentials file names.
pub const PROFILE: &str = "stoke";

/// The environment variable with the master key.
pub const ENV: &str = "STOKE_MASTER_KEY";
/// The key file's name in the data dir.
pub const FILE: &str = "master.key";

/// The master key from `env` (the value of [`ENV`], if set) or the key file in `data_dir`,
/// made if there is none.
pub fn load(env: Option<String>, data_dir: &Path) -> anyhow::Result<MasterKey> {
    if let Some(text) = env {
        return MasterKey::from_hex(&text).with_context(|| format!("{ENV} is not a master key"));
    }
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_mode(&path)?;
            MasterKey::from_hex(&text)
                .with_context(|| format!("{} does not hold a master key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Refuses a key file that anyone but its owner may read or write.
fn check_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} has mode {mode:04o}: a master key must be readable by its owner only (mode 0600); \
         if nobody else could have read it, `chmod 600` it, otherwise rotate it",
        path.display()
    );
    Ok(())
}

/// A new key, written to `path` with mode 0600 (never over an existing file).
fn create(path: &Path) -> anyhow::Result<MasterKey> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = MasterKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(format!("{}\n", key.to_hex().as_str()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "created the master key");
    Ok(key)
}

/// Writes the shared-credentials file (mode 0600) unless it already holds this key.
pub fn write_credentials(path: &Path, key: &AccessKey) -> anyhow::Result<()> {
    let text = format!(
        "# Written by `stoke serve` for account {}.\n[{PROFILE}]\naws_access_key_id = {}\n\
         aws_secret_access_key = {}\n",
        key.account, key.access_key_id, key.secret
    );
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let dir = path
        .parent()
        .context("the credentials file has no folder")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_key_file_is_made_once_with_mode_0600_and_a_loose_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = load(None, dir.path()).unwrap();
        let path = dir.path().join(FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load(None, dir.path()).unwrap();
        assert_eq!(made.derive("x"), again.derive("x"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", load(None, dir.path()).unwrap_err());
        assert!(err.contains("mode 0644") && err.contains("0600"), "{err}");
    }

    #[test]
    fn the_environment_wins_and_a_bad_value_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        let k = load(Some(hex.clone()), dir.path()).unwrap();
        assert_eq!(
            k.derive("x"),
            MasterKey::from_hex(&hex).unwrap().derive("x")
        );
        assert!(!dir.path().join(FILE).exists());
        for bad in ["", "abc", &"zz".repeat(32)] {
            let err = format!("{:#}", load(Some(bad.into()), dir.path()).unwrap_err());
            assert!(
                err.contains("STOKE_MASTER_KEY is not a master key"),
                "{err}"
            );
            assert!(err.contains("64 hexadecimal characters"), "{err}");
        }
    }
}
