//! The interpreters of the process backend: which Python or Node.js serves each `python3.x`
//! and `nodejs*` runtime, what version it really is, and how it appears at `/var/lang` inside a
//! sandbox (as Lambda's runtimes do), with no host path in sight.
//!
//! - Each interpreter is asked, once at start-up, where it really is (following shims such as
//!   pyenv's) and which version it is.
//! - A runtime is served by the interpreter configured for it (`--python python3.12=PATH`),
//!   else by one of the version it names, else by the nearest version (the newer on a tie),
//!   never silently: [`Interpreters::mapping`] says so at start-up, the `INIT_START` line and
//!   `RuntimeVersionConfig` name the version that really serves ([`RuntimeVersion`]), and with
//!   `strict` such a runtime is refused instead.
//! - `/var/lang` is composed of only what the interpreter needs ([`Composed`]): for Python the
//!   executable at `/var/lang/bin/pythonX.Y`, the standard library at `/var/lang/lib/pythonX.Y`
//!   (its `site-packages` and CPython's own `test` package left empty, so the host's packages
//!   never show) and `libpythonX.Y` where the build has one; CPython finds `sys.prefix`
//!   (`/var/lang`) from the executable's location, whether the host's install is Debian's
//!   `/usr` or a self-contained prefix. For Node.js: the executable at `/var/lang/bin/node`.
//!   Sandboxes mount it as an image of its own (see `images`), or bind its pieces.

use std::path::{Path, PathBuf};
use std::process::Command;

use stoke_core::Runtime;

use super::images::{Composed, Part};
use crate::RuntimeVersion;

/// The runtimes listed at start-up beside the configured ones (Lambda's recent ones).
const LISTED_PYTHON: [u32; 6] = [9, 10, 11, 12, 13, 14];
const LISTED_NODE: [u32; 4] = [18, 20, 22, 24];

/// The language of an interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    Node,
}

/// An interpreter found on this machine.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub lang: Lang,
    /// The real path of the executable on the host.
    pub exe: PathBuf,
    /// `major.minor.patch`.
    pub version: [u32; 3],
    /// Where the executable is inside a sandbox (under `/var/lang/bin`).
    pub(crate) program: PathBuf,
    /// What makes up `/var/lang` inside a sandbox.
    pub(crate) var_lang: Composed,
}

impl Interpreter {
    fn version_text(&self) -> String {
        let [a, b, c] = self.version;
        format!("{a}.{b}.{c}")
    }

    /// What Lambda would call this runtime version.
    pub fn runtime_version(&self) -> RuntimeVersion {
        use sha2::Digest;
        let [a, b, c] = self.version;
        let (name, full) = match self.lang {
            Lang::Python => (
                format!("python:{a}.{b}.v{c}"),
                format!("python {a}.{b}.{c}"),
            ),
            Lang::Node => (format!("nodejs:{a}.v{b}"), format!("nodejs {a}.{b}.{c}")),
        };
        RuntimeVersion {
            name,
            hash: hex::encode(sha2::Sha256::digest(
                format!("stoke runtime {full}").as_bytes(),
            )),
        }
    }

    /// How far this interpreter is from the version `runtime` names (0: the same).
    fn distance(&self, wanted: u32) -> u32 {
        let have = match self.lang {
            Lang::Python => self.version[1],
            Lang::Node => self.version[0],
        };
        have.abs_diff(wanted)
    }

    fn describe(&self) -> String {
        let lang = match self.lang {
            Lang::Python => "Python",
            Lang::Node => "Node.js",
        };
        format!("{lang} {} ({})", self.version_text(), self.exe.display())
    }
}

/// The version a runtime's name asks for: the minor of `python3.N`, the major of `nodejsN.x`.
fn wanted(runtime: &str) -> Option<(Lang, u32)> {
    if let Some(minor) = runtime.strip_prefix("python3.") {
        return minor.parse().ok().map(|m| (Lang::Python, m));
    }
    let major = runtime.strip_prefix("nodejs")?.strip_suffix(".x")?;
    major.parse().ok().map(|m| (Lang::Node, m))
}

/// Runs `cmd args` and returns its non-empty stdout lines.
fn ask(cmd: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new(cmd)
        .args(args)
        .env_remove("PYTHONPATH")
        .env_remove("NODE_OPTIONS")
        .output()
        .map_err(|e| format!("'{}' could not be run: {e}", cmd.display()))?;
    if !out.status.success() {
        return Err(format!(
            "'{}' failed: {}",
            cmd.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

fn parse_version(s: &str) -> Option<[u32; 3]> {
    let mut parts = s.trim().trim_start_matches('v').split('.');
    let mut next = || parts.next()?.parse::<u32>().ok();
    Some([next()?, next()?, next().unwrap_or(0)])
}

const PY_PROBE: &str = "import os,sys;print(os.path.realpath(sys.executable));\
     print(os.path.realpath(sys.base_prefix));print('%d.%d.%d' % sys.version_info[:3]);\
     print(getattr(sys, 'platlibdir', 'lib'))";

fn find_python(cmd: &Path, empty: &Path) -> Result<Interpreter, String> {
    let lines = ask(cmd, &["-c", PY_PROBE])?;
    let [exe, prefix, version, libdir, ..] = lines.as_slice() else {
        return Err(format!(
            "'{}' did not say where it is installed",
            cmd.display()
        ));
    };
    let version = parse_version(version)
        .ok_or_else(|| format!("'{}' gave no version ({version})", cmd.display()))?;
    let (exe, prefix) = (PathBuf::from(exe), PathBuf::from(prefix));
    let xy = format!("python{}.{}", version[0], version[1]);
    let stdlib = prefix.join(libdir).join(&xy);
    if !stdlib.join("os.py").is_file() {
        return Err(format!(
            "'{}' has no standard library at {}",
            cmd.display(),
            stdlib.display()
        ));
    }
    let program = PathBuf::from("/var/lang/bin").join(&xy);
    let lib_xy = PathBuf::from("lib").join(&xy);
    let mut parts = vec![
        Part::File {
            src: exe.clone(),
            at: PathBuf::from("bin").join(&xy),
        },
        Part::Link {
            target: xy.clone().into(),
            at: "bin/python3".into(),
        },
        Part::Tree {
            src: stdlib.clone(),
            at: lib_xy.clone(),
        },
    ];
    // The install's own packages stay out of sight: Lambda's runtime brings its own. So does
    // CPython's own test suite (`test`, half of the standard library's size), which Debian's
    // and Lambda's Pythons leave out too.
    for masked in ["site-packages", "test"] {
        if stdlib.join(masked).is_dir() {
            parts.push(Part::Empty {
                at: lib_xy.join(masked),
            });
        }
    }
    // A shared build's libpython (found through LD_LIBRARY_PATH's /var/lang/lib).
    let lib = prefix.join(libdir);
    if let Ok(entries) = std::fs::read_dir(&lib) {
        let stem = format!("lib{xy}");
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name();
            let Some(n) = name.to_str() else { continue };
            if !n.starts_with(&stem) || !n.contains(".so") {
                continue;
            }
            let path = e.path();
            let at = PathBuf::from("lib").join(n);
            match std::fs::read_link(&path) {
                // Relative links stay links; others are the file they name.
                Ok(t) if t.is_relative() => parts.push(Part::Link { target: t, at }),
                _ => {
                    if let Ok(real) = std::fs::canonicalize(&path) {
                        parts.push(Part::File { src: real, at });
                    }
                }
            }
        }
    }
    let lang = Composed::new("/var/lang".into(), parts, empty.to_owned(), "")
        .map_err(|e| format!("reading {}: {e}", stdlib.display()))?;
    Ok(Interpreter {
        lang: Lang::Python,
        exe,
        version,
        program,
        var_lang: lang,
    })
}

fn find_node(cmd: &Path, empty: &Path) -> Result<Interpreter, String> {
    let lines = ask(
        cmd,
        &[
            "-e",
            "console.log(require('fs').realpathSync(process.execPath));console.log(process.version)",
        ],
    )?;
    let [exe, version, ..] = lines.as_slice() else {
        return Err(format!(
            "'{}' did not say where it is installed",
            cmd.display()
        ));
    };
    let version = parse_version(version)
        .ok_or_else(|| format!("'{}' gave no version ({version})", cmd.display()))?;
    let program = PathBuf::from("/var/lang/bin/node");
    let parts = vec![Part::File {
        src: exe.into(),
        at: "bin/node".into(),
    }];
    let var_lang = Composed::new("/var/lang".into(), parts, empty.to_owned(), "")
        .map_err(|e| format!("reading {exe}: {e}"))?;
    Ok(Interpreter {
        lang: Lang::Node,
        exe: PathBuf::from(exe),
        version,
        var_lang,
        program,
    })
}

/// One configured interpreter: for one runtime (`python3.12=PATH`) or for any (`PATH`).
#[derive(Debug, Clone)]
struct Configured {
    lang: Lang,
    runtime: Option<String>,
    found: Result<Interpreter, String>,
}

/// What serves a runtime.
#[derive(Debug, Clone)]
pub struct Served<'a> {
    pub interpreter: &'a Interpreter,
    /// Whether it is of the version the runtime names.
    pub exact: bool,
}

/// Every interpreter of this server, and which serves each runtime.
#[derive(Debug, Clone)]
pub struct Interpreters {
    configured: Vec<Configured>,
    strict: bool,
}

/// Splits `python3.12=/usr/bin/python3.12` into the runtime and the command.
pub fn split_spec(spec: &str) -> (Option<&str>, &str) {
    match spec.split_once('=') {
        Some((runtime, cmd)) if wanted(runtime).is_some() => (Some(runtime), cmd),
        _ => (None, spec),
    }
}

impl Interpreters {
    /// Resolves the configured interpreters: each of `python` and `node` is a command (for
    /// every runtime of its language) or `RUNTIME=COMMAND`. `empty` is an empty folder (the
    /// mask of an install's `site-packages`). With `strict`, a runtime that only an
    /// interpreter of another version could serve is refused.
    pub fn resolve(python: &[String], node: &[String], strict: bool, empty: &Path) -> Self {
        let mut configured = Vec::new();
        for (lang, specs) in [(Lang::Python, python), (Lang::Node, node)] {
            for spec in specs {
                let (runtime, command) = split_spec(spec);
                let found = match lang {
                    Lang::Python => find_python(Path::new(command), empty),
                    Lang::Node => find_node(Path::new(command), empty),
                };
                let flag = if lang == Lang::Python {
                    "--python"
                } else {
                    "--node"
                };
                configured.push(Configured {
                    lang,
                    runtime: runtime.map(str::to_owned),
                    found: found.map_err(|e| format!("{e} (see {flag})")),
                });
            }
        }
        Self { configured, strict }
    }

    /// Every interpreter found.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Interpreter> {
        self.configured.iter().filter_map(|c| c.found.as_ref().ok())
    }

    fn of(&self, lang: Lang) -> impl Iterator<Item = &Configured> {
        self.configured.iter().filter(move |c| c.lang == lang)
    }

    /// What serves `runtime` (its family is Python or Node.js), or why nothing does.
    pub fn serve(&self, runtime: &Runtime) -> Result<Served<'_>, String> {
        let unavailable = |why: String| {
            format!("The runtime {runtime} is not available on this Stoke server: {why}")
        };
        let (lang, want) = wanted(runtime.as_str())
            .ok_or_else(|| unavailable("it is not a Python or Node.js runtime".into()))?;
        // The one configured for this runtime, whatever its version.
        if let Some(c) = self
            .of(lang)
            .find(|c| c.runtime.as_deref() == Some(runtime.as_str()))
        {
            let i = c.found.as_ref().map_err(|e| unavailable(e.clone()))?;
            return self.checked(runtime, i);
        }
        let found: Vec<&Interpreter> = self
            .of(lang)
            .filter_map(|c| c.found.as_ref().ok())
            .collect();
        let best = found
            .iter()
            .min_by_key(|i| (i.distance(want), std::cmp::Reverse(i.version)))
            .copied();
        match best {
            Some(i) => self.checked(runtime, i),
            None => {
                let why = self
                    .of(lang)
                    .find_map(|c| c.found.as_ref().err().cloned())
                    .unwrap_or_else(|| "no interpreter is configured".into());
                Err(unavailable(why))
            }
        }
    }

    fn checked<'a>(&self, runtime: &Runtime, i: &'a Interpreter) -> Result<Served<'a>, String> {
        let exact = wanted(runtime.as_str()).is_some_and(|(_, w)| i.distance(w) == 0);
        if !exact && self.strict {
            let flag = if i.lang == Lang::Python {
                "--python"
            } else {
                "--node"
            };
            return Err(format!(
                "The runtime {runtime} is not available on this Stoke server: it has {} and no \
                 interpreter of the version {runtime} names, and --strict-runtimes refuses to \
                 serve it with another version (add one with {flag} {runtime}=PATH).",
                i.describe()
            ));
        }
        Ok(Served {
            interpreter: i,
            exact,
        })
    }

    /// The version that serves `runtime`, if an interpreter does.
    pub fn runtime_version(&self, runtime: &Runtime) -> Option<RuntimeVersion> {
        wanted(runtime.as_str())?;
        self.serve(runtime)
            .ok()
            .map(|s| s.interpreter.runtime_version())
    }

    /// What serves each runtime, one line per runtime, for the start-up output: Lambda's
    /// recent runtimes and every configured one.
    pub fn mapping(&self) -> Vec<String> {
        let mut names: Vec<String> = LISTED_PYTHON
            .iter()
            .map(|m| format!("python3.{m}"))
            .chain(LISTED_NODE.iter().map(|m| format!("nodejs{m}.x")))
            .collect();
        for c in &self.configured {
            if let Some(r) = &c.runtime
                && !names.contains(r)
            {
                names.push(r.clone());
            }
        }
        names
            .iter()
            .filter_map(|n| Runtime::parse(n))
            .map(|r| match self.serve(&r) {
                Ok(s) if s.exact => format!("{r} -> {}", s.interpreter.describe()),
                Ok(s) => format!(
                    "{r} -> {} (the nearest version: INIT_START and RuntimeVersionConfig say so; \
                     --strict-runtimes refuses it)",
                    s.interpreter.describe()
                ),
                Err(e) => format!("{r} -> not served: {e}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_give_the_version_they_want() {
        assert_eq!(wanted("python3.12"), Some((Lang::Python, 12)));
        assert_eq!(wanted("nodejs20.x"), Some((Lang::Node, 20)));
        assert_eq!(wanted("provided.al2023"), None);
        assert_eq!(
            split_spec("python3.12=/usr/bin/python3.12"),
            (Some("python3.12"), "/usr/bin/python3.12")
        );
        assert_eq!(
            split_spec("/opt/py=3/bin/python3"),
            (None, "/opt/py=3/bin/python3")
        );
        assert_eq!(parse_version("v20.20.2"), Some([20, 20, 2]));
    }

    #[test]
    fn runtime_versions_are_named_as_lambda_names_them() {
        let i = Interpreter {
            lang: Lang::Python,
            exe: "/x".into(),
            version: [3, 11, 7],
            program: "/var/lang/bin/python3.11".into(),
            var_lang: Composed::new("/var/lang".into(), Vec::new(), "/nonexistent".into(), "")
                .unwrap(),
        };
        let v = i.runtime_version();
        assert_eq!(v.name, "python:3.11.v7");
        assert_eq!(v.hash.len(), 64);
        assert_eq!(
            v.arn("eu-west-1"),
            format!("arn:aws:lambda:eu-west-1::runtime:{}", v.hash)
        );
    }
}
