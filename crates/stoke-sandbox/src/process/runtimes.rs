//! Runtimes of the process backend: what runs for `provided*`, `python3.x` and `nodejs*`.
//!
//! - `provided*`: the zip's executable `/var/task/bootstrap`.
//! - `python3.x`: the configured Python (default `python3` on `PATH`) running Stoke's runtime
//!   loop `sdk/python/bootstrap.py`, mounted at `/var/runtime/python/`.
//! - `nodejs*`: the configured Node.js (default `node`) running `sdk/node/bootstrap.js`, at
//!   `/var/runtime/node/`.
//!
//! The runtime files are compiled into the binary and written under the data dir at start-up.
//! Interpreters are resolved once, at start-up, to real paths (following shims such as
//! pyenv's by asking the interpreter itself), with the install prefix that must be
//! bind-mounted for them to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use stoke_core::RuntimeFamily;

use crate::FunctionSpec;

const PYTHON_BOOTSTRAP: &str = include_str!("../../../../sdk/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../../../../sdk/node/bootstrap.js");

/// An interpreter found on this machine.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// The real path of the executable (the same inside sandboxes).
    pub exe: PathBuf,
    /// Install folders mounted read-only into sandboxes (none when under `/usr`).
    pub mounts: Vec<PathBuf>,
}

/// What the process backend knows about the interpreters.
#[derive(Debug, Clone)]
pub struct Interpreters {
    pub python: Result<Interpreter, String>,
    pub node: Result<Interpreter, String>,
}

fn outside_usr(p: &Path) -> Vec<PathBuf> {
    if p.starts_with("/usr") || p == Path::new("/") {
        Vec::new()
    } else {
        vec![p.to_path_buf()]
    }
}

/// Runs `cmd args` and returns its non-empty stdout lines.
fn ask(cmd: &str, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("'{cmd}' could not be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "'{cmd}' failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

impl Interpreters {
    /// Resolves the Python and Node.js commands (each may be missing: functions of that
    /// runtime then fail with the reason).
    pub fn resolve(python: &str, node: &str) -> Self {
        let python = ask(
            python,
            &[
                "-c",
                "import os,sys;print(os.path.realpath(sys.executable));\
                 print(os.path.realpath(sys.base_prefix))",
            ],
        )
        .and_then(|lines| match lines.as_slice() {
            [exe, prefix, ..] => Ok(Interpreter {
                exe: PathBuf::from(exe),
                mounts: outside_usr(Path::new(prefix)),
            }),
            _ => Err(format!("'{python}' did not say where it is installed")),
        })
        .map_err(|e| format!("no Python interpreter: {e} (see --python)"));
        let node = ask(
            node,
            &[
                "-e",
                "console.log(require('fs').realpathSync(process.execPath))",
            ],
        )
        .and_then(|lines| {
            let exe = PathBuf::from(lines.first().ok_or("no output")?);
            let prefix = exe
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            Ok(Interpreter {
                mounts: outside_usr(&prefix),
                exe,
            })
        })
        .map_err(|e: String| format!("no Node.js interpreter: {e} (see --node)"));
        Self { python, node }
    }
}

/// Writes Stoke's runtime files under `dir` (mounted at `/var/runtime`).
pub(crate) fn write_runtime_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (sub, name, text) in [
        ("python", "bootstrap.py", PYTHON_BOOTSTRAP),
        ("node", "bootstrap.js", NODE_BOOTSTRAP),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let path = d.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            let tmp = d.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
            std::fs::rename(&tmp, &path)?;
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// What to run for a function: program, arguments, extra environment and extra mounts.
#[derive(Debug, Clone)]
pub(crate) struct Command0 {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<PathBuf>,
}

impl Interpreters {
    pub(crate) fn command(&self, spec: &FunctionSpec) -> Result<Command0, String> {
        let interp = |i: &Result<Interpreter, String>| -> Result<Interpreter, String> {
            i.clone().map_err(|e| {
                format!(
                    "The runtime {} is not available on this Stoke server: {e}",
                    spec.runtime
                )
            })
        };
        let exec_env = (
            "AWS_EXECUTION_ENV".to_owned(),
            format!("AWS_Lambda_{}", spec.runtime),
        );
        match spec.runtime.family() {
            RuntimeFamily::Provided => Ok(Command0 {
                program: PathBuf::from("/var/task/bootstrap"),
                args: Vec::new(),
                env: Vec::new(),
                mounts: Vec::new(),
            }),
            RuntimeFamily::Python => {
                let i = interp(&self.python)?;
                Ok(Command0 {
                    program: i.exe,
                    args: vec!["/var/runtime/python/bootstrap.py".into()],
                    env: vec![
                        exec_env,
                        ("PYTHONUNBUFFERED".into(), "1".into()),
                        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                    ],
                    mounts: i.mounts,
                })
            }
            RuntimeFamily::Nodejs => {
                let i = interp(&self.node)?;
                Ok(Command0 {
                    program: i.exe,
                    args: vec!["/var/runtime/node/bootstrap.js".into()],
                    env: vec![
                        exec_env,
                        (
                            "NODE_PATH".into(),
                            "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/task/node_modules"
                                .into(),
                        ),
                    ],
                    mounts: i.mounts,
                })
            }
            RuntimeFamily::Wasm => Err("wasm functions do not run in process sandboxes".into()),
        }
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
