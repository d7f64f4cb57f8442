//! The runtimes Stoke accepts (kept as the caller spelled them) and the instruction sets a
//! function may be built for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of sandbox a runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFamily {
    /// A WASI preview 1 module; Handler is the path of the `.wasm` file in the zip.
    Wasm,
    /// An executable `bootstrap` that speaks the Runtime API.
    Provided,
    /// Python 3; Handler is `module.function`.
    Python,
    /// Node.js; Handler is `file.export`.
    Nodejs,
}

/// A runtime name Stoke accepts, kept as the caller spelled it (`python3.12`, `nodejs20.x`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Runtime(String);

impl Runtime {
    /// The names Stoke takes, as shown in errors.
    pub const SUPPORTED: &'static str = "wasm, provided, provided.al2, provided.al2023, \
        python3.N (N >= 8), nodejsN.x (N >= 18)";

    pub fn parse(s: &str) -> Option<Self> {
        let ok = match s {
            "wasm" | "provided" | "provided.al2" | "provided.al2023" => true,
            _ => {
                if let Some(minor) = s.strip_prefix("python3.") {
                    minor.parse::<u32>().is_ok_and(|m| (8..100).contains(&m))
                        && !minor.starts_with('0')
                } else if let Some(major) =
                    s.strip_prefix("nodejs").and_then(|r| r.strip_suffix(".x"))
                {
                    major.parse::<u32>().is_ok_and(|m| (18..1000).contains(&m))
                        && !major.starts_with('0')
                } else {
                    false
                }
            }
        };
        ok.then(|| Self(s.to_owned()))
    }

    pub fn family(&self) -> RuntimeFamily {
        match self.0.as_str() {
            "wasm" => RuntimeFamily::Wasm,
            s if s.starts_with("provided") => RuntimeFamily::Provided,
            s if s.starts_with("python") => RuntimeFamily::Python,
            _ => RuntimeFamily::Nodejs,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Runtime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unsupported runtime {s:?}"))
    }
}

impl From<Runtime> for String {
    fn from(r: Runtime) -> String {
        r.0
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instruction set a function is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub const NAMES: [&'static str; 2] = ["x86_64", "arm64"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "x86_64" => Some(Self::X86_64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }
}
