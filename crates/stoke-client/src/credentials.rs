//! Where the client's AWS credentials come from: the usual AWS chain, then the file `stoke serve`
//! writes into its default data dir.
//!
//! The order, first match wins:
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`),
//!    profile `AWS_PROFILE` (default `default`);
//! 3. `./.stoke/credentials`, profile `stoke`.
//!
//! The environment is read through the [`Env`] trait so that tests pass a map instead of mutating
//! the process environment. The INI format of the credentials file is parsed by [`parse_ini`].

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Access key id, for the first link of the chain.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Secret access key, for the first link of the chain.
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Optional session token that goes with the two above.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Path of the shared credentials file.
pub const ENV_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// Profile to read from the shared credentials file.
pub const ENV_PROFILE: &str = "AWS_PROFILE";
/// Home folder, for the default `~/.aws/credentials`.
pub const ENV_HOME: &str = "HOME";

/// The data dir `stoke serve` uses when it is given none, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".stoke";
/// The profile `stoke serve` writes its account's access key under.
pub const STOKE_PROFILE: &str = "stoke";

/// A source of environment variables: the process environment, or a map in tests.
pub trait Env {
    /// The value of `name`, or `None` when it is unset or empty (as the AWS SDKs treat empty).
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<K: std::borrow::Borrow<str> + Ord, V: AsRef<str>> Env for BTreeMap<K, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| v.as_ref().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// An access key found by [`resolve`], with a note of where it was found (for error messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id, sent in clear in the `Credential=` part of the signature.
    pub access_key_id: String,
    /// The secret key that signs; never printed.
    pub secret_access_key: String,
    /// A session token, sent as `x-amz-security-token` when present.
    pub session_token: Option<String>,
    /// Where the key came from ("environment", "profile [stoke] in ./.stoke/credentials"), so an
    /// authentication error can say which key the server refused.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// Why no credentials could be found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Only one of the two environment variables is set.
    #[error("{ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} must be set together")]
    IncompleteEnv,
    /// A credentials file exists but could not be read.
    #[error("could not read the credentials file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The profile exists but lacks a key.
    #[error(
        "profile [{profile}] in {} has no aws_access_key_id or no aws_secret_access_key",
        path.display()
    )]
    IncompleteProfile { path: PathBuf, profile: String },
    /// Nothing in the chain matched.
    #[error(
        "no AWS credentials found ({}); set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}, or \
         {ENV_SHARED_CREDENTIALS_FILE} and {ENV_PROFILE} (e.g. the file `stoke serve` writes in \
         its data dir, profile {STOKE_PROFILE})",
        tried.join("; ")
    )]
    NotFound { tried: Vec<String> },
}

/// Sections of an INI file, each a map of lower-cased keys to values.
pub type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// Parses the AWS shared-credentials INI format: `[section]` headers, `key = value` lines, full-line
/// comments starting with `#` or `;`. Keys are lower-cased as botocore's parser does; values keep
/// everything after the first `=` (trimmed). Indented lines under a key with an empty value (the
/// nested form of the config file) are skipped, as are lines outside any section. A section that
/// appears twice is merged, later keys winning.
pub fn parse_ini(text: &str) -> Ini {
    let mut sections = Ini::new();
    let mut current: Option<String> = None;
    let mut in_nested_block = false;
    for raw in text.trim_start_matches('\u{feff}').lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with(char::is_whitespace);
        if indented && in_nested_block {
            continue;
        }
        in_nested_block = false;
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').unwrap_or(rest).trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            in_nested_block = true;
        }
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_ascii_lowercase(), value.to_owned());
    }
    sections
}

/// Finds credentials along the chain described in the module docs. `cwd` is the folder the
/// fallback `.stoke/credentials` is looked up in (the working directory outside tests).
pub fn resolve(env: &impl Env, cwd: &Path) -> Result<Credentials, CredentialsError> {
    let mut tried = Vec::new();

    match (env.var(ENV_ACCESS_KEY_ID), env.var(ENV_SECRET_ACCESS_KEY)) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: env.var(ENV_SESSION_TOKEN),
                source: "the environment".to_owned(),
            });
        }
        (None, None) => tried.push(format!("{ENV_ACCESS_KEY_ID} is not set")),
        _ => return Err(CredentialsError::IncompleteEnv),
    }

    let shared = env
        .var(ENV_SHARED_CREDENTIALS_FILE)
        .map(PathBuf::from)
        .or_else(|| {
            env.var(ENV_HOME)
                .map(|home| Path::new(&home).join(".aws").join("credentials"))
        });
    let profile = env.var(ENV_PROFILE).unwrap_or_else(|| "default".to_owned());
    if let Some(path) = shared {
        let path = if path.is_relative() {
            cwd.join(path)
        } else {
            path
        };
        match from_file(&path, &profile)? {
            Some(credentials) => return Ok(credentials),
            None => tried.push(format!("no profile [{profile}] in {}", path.display())),
        }
    }

    let fallback = cwd.join(DEFAULT_DATA_DIR).join("credentials");
    match from_file(&fallback, STOKE_PROFILE)? {
        Some(credentials) => Ok(credentials),
        None => {
            tried.push(format!(
                "no profile [{STOKE_PROFILE}] in {}",
                fallback.display()
            ));
            Err(CredentialsError::NotFound { tried })
        }
    }
}

/// Reads `profile` from the credentials file at `path`; `Ok(None)` when the file or the profile
/// does not exist.
pub fn from_file(path: &Path, profile: &str) -> Result<Option<Credentials>, CredentialsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let ini = parse_ini(&text);
    let Some(section) = ini.get(profile) else {
        return Ok(None);
    };
    let key = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
    match (key("aws_access_key_id"), key("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: key("aws_session_token"),
            source: format!("profile [{profile}] in {}", path.display()),
        })),
        _ => Err(CredentialsError::IncompleteProfile {
            path: path.to_owned(),
            profile: profile.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
        pairs.iter().cloned().collect()
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    const STOKE_FILE: &str =
        "[stoke]\naws_access_key_id = AKSTOKE\naws_secret_access_key = s3cr3t\n";

    #[test]
    fn ini_parses_sections_keys_and_comments() {
        let ini = parse_ini(
            "\u{feff}# leading comment\nstray = ignored\n[default]\n\
             aws_access_key_id=AKIA1\n  AWS_Secret_Access_Key =  abc/def+ghi=  \n; comment\n\
             [ other ]\nkey = a = b\ns3 =\n  max_concurrent_requests = 2\nafter = yes\n\
             [default]\nregion = eu-west-1\n",
        );
        assert_eq!(ini.len(), 2);
        let default = &ini["default"];
        assert_eq!(default["aws_access_key_id"], "AKIA1");
        assert_eq!(default["aws_secret_access_key"], "abc/def+ghi=");
        assert_eq!(default["region"], "eu-west-1", "repeated sections merge");
        let other = &ini["other"];
        assert_eq!(
            other["key"], "a = b",
            "value keeps what follows the first ="
        );
        assert_eq!(other["s3"], "");
        assert!(
            !other.contains_key("max_concurrent_requests"),
            "nested block skipped"
        );
        assert_eq!(other["after"], "yes");
        assert!(!ini.values().any(|s| s.contains_key("stray")));
    }

    #[test]
    fn environment_keys_win_over_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(".stoke/credentials"), STOKE_FILE);
        write(
            &dir.path().join("shared"),
            "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=x\n",
        );
        let e = env(&[
            (ENV_ACCESS_KEY_ID, "AKENV".into()),
            (ENV_SECRET_ACCESS_KEY, "secret".into()),
            (ENV_SESSION_TOKEN, "token".into()),
            (ENV_SHARED_CREDENTIALS_FILE, "shared".into()),
        ]);
        let c = resolve(&e, dir.path()).expect("credentials");
        assert_eq!(c.access_key_id, "AKENV");
        assert_eq!(c.secret_access_key, "secret");
        assert_eq!(c.session_token.as_deref(), Some("token"));
    }

    #[test]
    fn shared_file_profile_wins_over_the_stoke_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(".stoke/credentials"), STOKE_FILE);
        let shared = dir.path().join("creds");
        write(
            &shared,
            "[default]\naws_access_key_id=AKDEF\naws_secret_access_key=x\n\
             [dev]\naws_access_key_id=AKDEV\naws_secret_access_key=y\naws_session_token=t\n",
        );
        let e = env(&[
            (ENV_SHARED_CREDENTIALS_FILE, shared.display().to_string()),
            (ENV_PROFILE, "dev".into()),
        ]);
        let c = resolve(&e, dir.path()).expect("credentials");
        assert_eq!(c.access_key_id, "AKDEV");
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert!(c.source.contains("[dev]"), "{}", c.source);

        let e = env(&[(ENV_SHARED_CREDENTIALS_FILE, shared.display().to_string())]);
        assert_eq!(
            resolve(&e, dir.path()).expect("credentials").access_key_id,
            "AKDEF",
            "profile defaults to `default`"
        );
    }

    #[test]
    fn home_aws_credentials_is_the_default_shared_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            &dir.path().join("home/.aws/credentials"),
            "[default]\naws_access_key_id=AKHOME\naws_secret_access_key=x\n",
        );
        let e = env(&[(ENV_HOME, dir.path().join("home").display().to_string())]);
        assert_eq!(
            resolve(&e, dir.path()).expect("credentials").access_key_id,
            "AKHOME"
        );
    }

    #[test]
    fn falls_back_to_the_stoke_data_dir_when_the_profile_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(".stoke/credentials"), STOKE_FILE);
        write(
            &dir.path().join("home/.aws/credentials"),
            "[work]\naws_access_key_id=AKWORK\naws_secret_access_key=x\n",
        );
        let e = env(&[(ENV_HOME, dir.path().join("home").display().to_string())]);
        let c = resolve(&e, dir.path()).expect("credentials");
        assert_eq!(c.access_key_id, "AKSTOKE");
        assert_eq!(c.secret_access_key, "s3cr3t");
        assert!(c.source.contains("[stoke]"), "{}", c.source);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(".stoke/credentials"), STOKE_FILE);
        let e = env(&[
            (ENV_ACCESS_KEY_ID, String::new()),
            (ENV_SECRET_ACCESS_KEY, String::new()),
        ]);
        assert_eq!(
            resolve(&e, dir.path()).expect("credentials").access_key_id,
            "AKSTOKE"
        );
    }

    #[test]
    fn errors_when_only_one_key_is_in_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(&[(ENV_ACCESS_KEY_ID, "AK".into())]);
        assert!(matches!(
            resolve(&e, dir.path()),
            Err(CredentialsError::IncompleteEnv)
        ));
    }

    #[test]
    fn errors_when_a_profile_lacks_its_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("c"), "[default]\naws_access_key_id=AK\n");
        let e = env(&[(ENV_SHARED_CREDENTIALS_FILE, "c".into())]);
        assert!(matches!(
            resolve(&e, dir.path()),
            Err(CredentialsError::IncompleteProfile { .. })
        ));
    }

    #[test]
    fn not_found_lists_every_place_it_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(&[(ENV_SHARED_CREDENTIALS_FILE, "nope".into())]);
        let err = resolve(&e, dir.path()).expect_err("no credentials");
        let text = err.to_string();
        assert!(text.contains("AWS_ACCESS_KEY_ID is not set"), "{text}");
        assert!(text.contains("no profile [default] in"), "{text}");
        assert!(text.contains(".stoke/credentials"), "{text}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok".into()),
            source: "test".into(),
        };
        let text = format!("{c:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("tok\""),
            "{text}"
        );
    }
}
