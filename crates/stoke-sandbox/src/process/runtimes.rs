//! Runtimes of the process backend: what runs for `provided*`, `python3.x` and `nodejs*`, and
//! the runtime's side of a sandbox's file tree.
//!
//! - `provided*`: the zip's executable `/var/task/bootstrap`.
//! - `python3.x`: the interpreter that serves the runtime (see `interpreters`), at
//!   `/var/lang/bin/python3.X`, running Stoke's runtime loop `/var/runtime/bootstrap.py`
//!   (`sdk/python/bootstrap.py`), beside the runtime's own libraries (boto3 and botocore, as
//!   Lambda's) under `/var/runtime`.
//! - `nodejs*`: the Node.js that serves it at `/var/lang/bin/node`, running
//!   `/var/runtime/bootstrap.js` (`sdk/node/bootstrap.js`), with the runtime's own
//!   `/var/runtime/node_modules` when there are some.
//!
//! The runtime files are compiled into the binary and written under the backend's folder at
//! start-up ([`RuntimeFiles::write`]). The runtime libraries come from the folder `stoke serve
//! --runtime-libs` names (`python/`: `pip install --target`; `node/node_modules/`), never from
//! the host's interpreter. `/var/runtime` is composed of Stoke's folder and each entry of the
//! libraries' ([`Composed`]): one image (see `images`), or in the fallback each entry bound
//! over a placeholder of the same name in Stoke's folder (a bind needs something to cover
//! inside the read-only one). The sandbox user's `/etc/passwd` and `/etc/group` are files of
//! each sandbox's root, written at its launch.

use std::path::{Path, PathBuf};

use stoke_core::RuntimeFamily;

use super::images::{Composed, Part};
use super::interpreters::{Interpreters, Lang};
use super::launch::Mount;
use crate::FunctionSpec;

const PYTHON_BOOTSTRAP: &str = include_str!("../../../../sdk/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../../../../sdk/node/bootstrap.js");

/// The sandbox user's name, home and shell, as Lambda's (`HOME` itself is not set).
pub(crate) const SANDBOX_USER: &str = "sbx_user1051";
pub(crate) const SANDBOX_HOME: &str = "/home/sbx_user1051";

/// The runtime's side of every sandbox's file tree, made at start-up.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeFiles {
    /// `/var/runtime` of Python functions: Stoke's folder, then each runtime library.
    python: Composed,
    /// `/var/runtime` of Node.js functions.
    node: Composed,
    /// What every sandbox has: `/etc/passwd` and `/etc/group` (files of the sandbox's root),
    /// the user's home, `/opt`.
    common: Vec<Mount>,
    /// An empty folder (masks an interpreter's own `site-packages`).
    pub empty: PathBuf,
    /// What the runtime libraries folder holds, for the start-up log.
    pub libs: Vec<String>,
}

/// Writes `text` to `path` unless it is there already (by rename: a running sandbox keeps
/// the old file), with a fixed modification time: the image key of its folder takes the
/// text's hash instead (see [`Composed::new`]), the same in every data dir.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let fixed = |p: &Path| {
        std::fs::File::options()
            .write(true)
            .open(p)?
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
    };
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return fixed(path);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    fixed(&tmp)?;
    std::fs::rename(&tmp, path)
}

/// The hash of a runtime file's text (the salt of its folder's image key).
fn text_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A fresh folder at `dir` holding only `keep` (mode 755).
fn clean_dir(dir: &Path, keep: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_name() == keep {
            continue;
        }
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// `/var/runtime`: Stoke's folder `stoke`, then each entry of `libs` at `/var/runtime/<entry>`
/// (over a placeholder made in `stoke`, which the binds of the fallback need).
fn runtime_dir(
    stoke: &Path,
    libs: Option<&Path>,
    names: &mut Vec<String>,
    empty: &Path,
    salt: &str,
) -> std::io::Result<Composed> {
    let mut parts = vec![Part::Tree {
        src: stoke.to_owned(),
        at: PathBuf::new(),
    }];
    let compose = |parts| Composed::new("/var/runtime".into(), parts, empty.to_owned(), salt);
    let Some(libs) = libs.filter(|l| l.is_dir()) else {
        return compose(parts);
    };
    let mut entries: Vec<_> = std::fs::read_dir(libs)?.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        // pip's scripts and caches, and anything that would cover Stoke's own files.
        if matches!(n, "bin" | "__pycache__") || n.starts_with('.') || n.starts_with("bootstrap") {
            continue;
        }
        let Ok(real) = std::fs::canonicalize(e.path()) else {
            continue;
        };
        let stub = stoke.join(n);
        let at = PathBuf::from(n);
        if real.is_dir() {
            std::fs::create_dir_all(&stub)?;
            parts.push(Part::Tree { src: real, at });
        } else {
            std::fs::File::create(&stub)?;
            parts.push(Part::File { src: real, at });
        }
        names.push(n.to_owned());
    }
    compose(parts)
}

impl RuntimeFiles {
    /// Writes Stoke's runtime files and the sandbox user's files under `dir` (the backend's
    /// folder) and plans their mounts; `libs` is the runtime libraries folder.
    pub(crate) fn write(
        dir: &Path,
        libs: Option<&Path>,
        uid: u32,
        gid: u32,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let runtime = dir.join("runtime");
        std::fs::create_dir_all(&runtime)?;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755))?;
        let mut names = Vec::new();
        let empty = dir.join("empty");
        clean_dir(&empty, "")?;
        let python_dir = runtime.join("python");
        clean_dir(&python_dir, "bootstrap.py")?;
        write_file(&python_dir.join("bootstrap.py"), PYTHON_BOOTSTRAP)?;
        let python = runtime_dir(
            &python_dir,
            libs.map(|l| l.join("python")).as_deref(),
            &mut names,
            &empty,
            &text_hash(PYTHON_BOOTSTRAP),
        )?;
        let node_dir = runtime.join("node");
        clean_dir(&node_dir, "bootstrap.js")?;
        write_file(&node_dir.join("bootstrap.js"), NODE_BOOTSTRAP)?;
        let node = runtime_dir(
            &node_dir,
            libs.map(|l| l.join("node")).as_deref(),
            &mut names,
            &empty,
            &text_hash(NODE_BOOTSTRAP),
        )?;
        // Written into each sandbox's root, so no host file shows for them.
        let passwd = format!(
            "root:x:0:0:root:/root:/sbin/nologin\n\
             {SANDBOX_USER}:x:{uid}:{gid}::{SANDBOX_HOME}:/sbin/nologin\n"
        );
        let group = format!("root:x:0:\n{SANDBOX_USER}:x:{gid}:\n");
        let common = vec![
            Mount::File {
                dst: "/etc/passwd".into(),
                data: passwd.into_bytes().into(),
            },
            Mount::File {
                dst: "/etc/group".into(),
                data: group.into_bytes().into(),
            },
            Mount::Dir {
                dst: SANDBOX_HOME.into(),
            },
            Mount::Dir { dst: "/opt".into() },
        ];
        // What earlier versions wrote there (bound at /etc/passwd and /etc/group).
        let _ = std::fs::remove_dir_all(dir.join("etc"));
        Ok(Self {
            python,
            node,
            common,
            empty,
            libs: names,
        })
    }

    /// What every sandbox has (after the host's `/usr` and `/etc`).
    pub(crate) fn common(&self) -> &[Mount] {
        &self.common
    }

    /// `/var/runtime` of `family`; `None`: an empty folder (`provided*`).
    pub(crate) fn runtime(&self, family: RuntimeFamily) -> Option<&Composed> {
        match family {
            RuntimeFamily::Python => Some(&self.python),
            RuntimeFamily::Nodejs => Some(&self.node),
            RuntimeFamily::Provided | RuntimeFamily::Wasm => None,
        }
    }

    /// Every composed folder (for the start-up sweep of images no longer used).
    pub(crate) fn composed(&self) -> [&Composed; 2] {
        [&self.python, &self.node]
    }
}
/// What to run for a function: program, arguments, environment and its interpreter's
/// `/var/lang`.
#[derive(Debug, Clone)]
pub(crate) struct Command0 {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Set whatever the function's configuration says (Lambda's reserved variables).
    pub env: Vec<(String, String)>,
    /// Lambda's values of variables the function's configuration may replace (`PATH`, …).
    pub defaults: Vec<(String, String)>,
    /// `/var/lang`; `None` for `provided*` (none).
    pub var_lang: Option<Composed>,
}

fn pairs(v: &[(&str, String)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, x)| ((*k).to_owned(), x.clone()))
        .collect()
}

/// Lambda's `LD_LIBRARY_PATH` without `/var/lang/lib` (`provided*`).
const LIBRARY_PATH: &str =
    "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib";

impl Interpreters {
    pub(crate) fn command(&self, spec: &FunctionSpec) -> Result<Command0, String> {
        let family = spec.runtime.family();
        if family == RuntimeFamily::Provided {
            return Ok(Command0 {
                program: PathBuf::from("/var/task/bootstrap"),
                args: Vec::new(),
                env: Vec::new(),
                defaults: pairs(&[
                    ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
                    ("LD_LIBRARY_PATH", LIBRARY_PATH.into()),
                ]),
                var_lang: None,
            });
        }
        if family == RuntimeFamily::Wasm {
            return Err("wasm functions do not run in process sandboxes".into());
        }
        let served = self.serve(&spec.runtime)?;
        let i = served.interpreter;
        let mut defaults = vec![
            (
                "PATH",
                "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
            ),
            ("LD_LIBRARY_PATH", format!("/var/lang/lib:{LIBRARY_PATH}")),
        ];
        let script = match i.lang {
            Lang::Python => {
                defaults.extend([
                    ("PYTHONPATH", "/var/runtime".into()),
                    ("PYTHONUNBUFFERED", "1".into()),
                    ("PYTHONDONTWRITEBYTECODE", "1".into()),
                ]);
                "/var/runtime/bootstrap.py"
            }
            Lang::Node => {
                let major = spec
                    .runtime
                    .as_str()
                    .trim_start_matches("nodejs")
                    .trim_end_matches(".x")
                    .to_owned();
                defaults.push((
                    "NODE_PATH",
                    format!(
                        "/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:\
                         /var/runtime/node_modules:/var/runtime:/var/task"
                    ),
                ));
                "/var/runtime/bootstrap.js"
            }
        };
        Ok(Command0 {
            program: i.program.clone(),
            args: vec![script.into()],
            env: pairs(&[("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime))]),
            defaults: pairs(&defaults),
            var_lang: Some(i.var_lang.clone()),
        })
    }
}

/// Deploy-time checks of a function's code for its runtime. `Err` (the function goes
/// `Failed`) only when the runtime's interpreter is missing: as on Lambda, a missing handler or
/// bootstrap is reported when the function is invoked (`Runtime.ImportModuleError`,
/// `Runtime.InvalidEntrypoint`); here it is only logged.
pub(crate) fn check_code(spec: &FunctionSpec, interpreters: &Interpreters) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    interpreters.command(spec)?;
    // The sandbox user must be able to read the code.
    let _ = std::fs::set_permissions(&spec.code_dir, std::fs::Permissions::from_mode(0o755));
    if let Err(why) = check_files(spec) {
        tracing::info!(function = %spec.function_name, "{why}");
    }
    Ok(())
}

/// Whether the file the runtime starts from is there.
fn check_files(spec: &FunctionSpec) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &spec.code_dir;
    match spec.runtime.family() {
        RuntimeFamily::Provided => {
            let meta = std::fs::metadata(dir.join("bootstrap")).map_err(|_| {
                "The deployment package has no 'bootstrap' file, which the provided runtimes \
                 run."
                    .to_owned()
            })?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(
                    "The 'bootstrap' file of the deployment package is not executable \
                            (zip it with its executable bit)."
                        .into(),
                );
            }
        }
        RuntimeFamily::Python => {
            let (module, _) = handler_parts(&spec.handler)?;
            let rel = module.replace('.', "/");
            if !dir.join(format!("{rel}.py")).is_file() && !dir.join(&rel).is_dir() {
                return Err(format!(
                    "The handler '{}' names the module '{module}', but the deployment package \
                     has no {rel}.py.",
                    spec.handler
                ));
            }
        }
        RuntimeFamily::Nodejs => {
            let (file, _) = handler_parts(&spec.handler)?;
            let found = ["js", "mjs", "cjs"]
                .iter()
                .any(|ext| dir.join(format!("{file}.{ext}")).is_file());
            if !found {
                return Err(format!(
                    "The handler '{}' names the file '{file}', but the deployment package has \
                     no {file}.js, {file}.mjs or {file}.cjs.",
                    spec.handler
                ));
            }
        }
        RuntimeFamily::Wasm => {}
    }
    Ok(())
}

/// `module.function` → (`module`, `function`); the module part may hold dots or slashes.
fn handler_parts(handler: &str) -> Result<(&str, &str), String> {
    let bad =
        || format!("The handler '{handler}' is not of the form file.function (e.g. app.handler).");
    let (module, func) = handler.rsplit_once('.').ok_or_else(bad)?;
    if module.is_empty()
        || func.is_empty()
        || module.starts_with('/')
        || module.split('/').any(|p| p == "..")
    {
        return Err(bad());
    }
    Ok((module, func))
}

#[cfg(test)]
mod tests {
    #[test]
    fn handlers_split_at_the_last_dot() {
        assert_eq!(super::handler_parts("app.handler"), Ok(("app", "handler")));
        assert_eq!(
            super::handler_parts("src/app.main.handler"),
            Ok(("src/app.main", "handler"))
        );
        assert!(super::handler_parts("nodot").is_err());
        assert!(super::handler_parts("../x.y").is_err());
    }
}
