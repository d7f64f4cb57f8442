//! The code package of `stoke deploy`: a folder zipped in memory, a lone `.wasm` module zipped
//! on its own, or a `.zip` file read as it is, and the default `Handler` a runtime gets from what
//! the package holds.
//!
//! Folder zips are deterministic, so the same folder always gives the same `CodeSha256`: entries in
//! byte order of their names, every timestamp fixed at 1980-01-01 00:00, modes normalised to 0755
//! (directories and files with any executable bit) or 0644, no extra fields. Symbolic links are
//! followed (the server refuses links inside a zip), and a link that leads back to one of its own
//! parent folders is an error rather than an endless walk. A `.stoke` (a data dir, with its
//! credentials) or `.git` folder at the top is left out.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// Handler of `provided*` runtimes: the executable the runtime starts.
const PROVIDED_HANDLER: &str = "bootstrap";
/// Lambda's conventional handler for `python*` runtimes.
const PYTHON_HANDLER: &str = "lambda_function.lambda_handler";
/// Lambda's conventional handler for `nodejs*` runtimes.
const NODEJS_HANDLER: &str = "index.handler";

/// Folders at the top of a deployed folder that are never zipped: `stoke serve`'s default data
/// dir (credentials included) and version control.
const SKIPPED_AT_ROOT: &[&str] = &[".stoke", ".git"];

/// What went wrong while packaging.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The path given to deploy is missing or unreadable.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file name that a zip cannot carry faithfully.
    #[error("{} has a name that is not valid UTF-8", path.display())]
    NonUtf8Name { path: PathBuf },
    /// A socket, FIFO or device inside the folder.
    #[error("{} is not a regular file or folder", path.display())]
    NotAFile { path: PathBuf },
    /// A symbolic link that leads to one of its own parents.
    #[error("{} is a link back to one of its parent folders", path.display())]
    SymlinkLoop { path: PathBuf },
    /// The file given is not a readable zip.
    #[error("{} is not a zip file", path.display())]
    NotAZip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// Writing the in-memory zip failed.
    #[error("could not build the zip")]
    Zip(#[from] zip::result::ZipError),
    /// A wasm package without exactly one module and no `--handler` to pick one.
    #[error(
        "runtime wasm needs the path of its .wasm module as the handler and the package holds {}; \
         name it with --handler",
        if found.is_empty() { "none".to_owned() } else { found.join(", ") }
    )]
    NoSingleWasm { found: Vec<String> },
}

/// A zip ready to upload.
#[derive(Debug, Clone)]
pub struct Package {
    /// The zip archive's bytes.
    pub zip: Vec<u8>,
    /// Names of the file (not folder) entries, to choose a default handler from.
    pub files: Vec<String>,
}

/// Loads `path`: a folder is zipped, a `.wasm` file becomes a zip of that one module, anything
/// else must be a zip file and is sent as it is.
pub fn load(path: &Path) -> Result<Package, PackageError> {
    let read_error = |source| PackageError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    let zip = if metadata.is_dir() {
        zip_folder(path)?
    } else if path.extension().is_some_and(|e| e == "wasm") {
        zip_one_file(path)?
    } else {
        fs::read(path).map_err(read_error)?
    };
    let files = file_names(&zip).map_err(|source| PackageError::NotAZip {
        path: path.to_owned(),
        source,
    })?;
    Ok(Package { zip, files })
}

/// Zips one file under its own name, deterministically.
fn zip_one_file(path: &Path) -> Result<Vec<u8>, PackageError> {
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PackageError::NonUtf8Name {
                path: path.to_owned(),
            })?;
    let data = fs::read(path).map_err(|source| PackageError::Read {
        path: path.to_owned(),
        source,
    })?;
    let options = SimpleFileOptions::DEFAULT
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::DEFAULT)
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    writer.start_file(name, options)?;
    writer.write_all(&data).map_err(zip::result::ZipError::Io)?;
    Ok(writer.finish()?.into_inner())
}

/// What a folder entry becomes in the zip.
enum Entry {
    Dir,
    File { path: PathBuf, executable: bool },
}

/// Zips the contents of `dir` (not `dir` itself) in memory, deterministically.
pub fn zip_folder(dir: &Path) -> Result<Vec<u8>, PackageError> {
    let mut entries = BTreeMap::new();
    walk(dir, "", &mut HashSet::new(), &mut entries)?;

    let base = SimpleFileOptions::DEFAULT
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::DEFAULT);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, entry) in entries {
        match entry {
            Entry::Dir => writer.add_directory(name, base.unix_permissions(0o755))?,
            Entry::File { path, executable } => {
                let mode = if executable { 0o755 } else { 0o644 };
                let data = fs::read(&path).map_err(|source| PackageError::Read { path, source })?;
                writer.start_file(name, base.unix_permissions(mode))?;
                writer.write_all(&data).map_err(zip::result::ZipError::Io)?;
            }
        }
    }
    Ok(writer.finish()?.into_inner())
}

/// Collects the entries under `dir` into `out`, keyed by their name in the zip (`prefix` is the
/// name of `dir` itself, empty at the root; folder names end in `/`). `ancestors` holds the
/// canonical paths of the folders being walked, to stop symlink loops.
fn walk(
    dir: &Path,
    prefix: &str,
    ancestors: &mut HashSet<PathBuf>,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), PackageError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Read { path, source }
    };
    let canonical = fs::canonicalize(dir).map_err(read_error(dir))?;
    if !ancestors.insert(canonical.clone()) {
        return Err(PackageError::SymlinkLoop {
            path: dir.to_owned(),
        });
    }
    for item in fs::read_dir(dir).map_err(read_error(dir))? {
        let item = item.map_err(read_error(dir))?;
        let path = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| PackageError::NonUtf8Name { path: path.clone() })?;
        // Never ship a Stoke data dir (it holds the credentials) or a git folder by accident.
        if prefix.is_empty() && SKIPPED_AT_ROOT.contains(&name.as_str()) {
            continue;
        }
        let name = format!("{prefix}{name}");
        // Follows symbolic links: the zip carries what they point at.
        let metadata = fs::metadata(&path).map_err(read_error(&path))?;
        if metadata.is_dir() {
            let folder = format!("{name}/");
            walk(&path, &folder, ancestors, out)?;
            out.insert(folder, Entry::Dir);
        } else if metadata.is_file() {
            let executable = is_executable(&metadata);
            out.insert(name, Entry::File { path, executable });
        } else {
            return Err(PackageError::NotAFile { path });
        }
    }
    ancestors.remove(&canonical);
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &fs::Metadata) -> bool {
    false
}

/// Names of the file entries of a zip.
pub fn file_names(zip: &[u8]) -> Result<Vec<String>, zip::result::ZipError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
    let mut names = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i)?;
        if !file.is_dir() {
            names.push(file.name()?.into_owned());
        }
    }
    Ok(names)
}

/// The handler to use when `--handler` is not given: for `wasm` the one `.wasm` file of the
/// package, for `provided*` `bootstrap`, for `python*` and `nodejs*` Lambda's conventional
/// `lambda_function.lambda_handler` and `index.handler`. `None` for other runtimes: the server
/// decides (and names the runtime it does not know).
pub fn default_handler(runtime: &str, files: &[String]) -> Result<Option<String>, PackageError> {
    if runtime == "wasm" {
        let modules: Vec<&String> = files.iter().filter(|f| f.ends_with(".wasm")).collect();
        return match modules.as_slice() {
            [one] => Ok(Some((*one).clone())),
            _ => Err(PackageError::NoSingleWasm {
                found: modules.into_iter().cloned().collect(),
            }),
        };
    }
    let handler = if runtime.starts_with("provided") {
        PROVIDED_HANDLER
    } else if runtime.starts_with("python") {
        PYTHON_HANDLER
    } else if runtime.starts_with("nodejs") {
        NODEJS_HANDLER
    } else {
        return Ok(None);
    };
    Ok(Some(handler.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn write(root: &Path, name: &str, data: &str) {
        let path = root.join(name);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, data).expect("write");
    }

    #[cfg(unix)]
    fn chmod(root: &Path, name: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn entries(zip: &[u8]) -> Vec<(String, Option<u32>, String)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).expect("entry");
                let mut data = String::new();
                file.read_to_string(&mut data).expect("read");
                (
                    file.name().expect("name").into_owned(),
                    file.unix_mode(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn same_folder_gives_the_same_bytes_whatever_the_creation_order_and_times() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        for name in ["z.txt", "a/b.txt", "a/c/d.txt", "m"] {
            write(a.path(), name, name);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        for name in ["m", "a/c/d.txt", "z.txt", "a/b.txt"] {
            write(b.path(), name, name);
        }
        let first = zip_folder(a.path()).expect("zip");
        assert_eq!(first, zip_folder(a.path()).expect("zip"), "twice the same");
        assert_eq!(first, zip_folder(b.path()).expect("zip"), "same content");

        let names: Vec<String> = entries(&first).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["a/", "a/b.txt", "a/c/", "a/c/d.txt", "m", "z.txt"]);
        let mut archive = zip::ZipArchive::new(Cursor::new(&first)).expect("zip");
        for i in 0..archive.len() {
            let file = archive.by_index(i).expect("entry");
            assert_eq!(file.last_modified(), Some(zip::DateTime::DEFAULT));
        }
    }

    #[cfg(unix)]
    #[test]
    fn executable_bit_is_kept_and_modes_are_normalised() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "bootstrap", "#!/bin/sh\n");
        write(dir.path(), "data.txt", "data");
        write(dir.path(), "private", "x");
        chmod(dir.path(), "bootstrap", 0o700);
        chmod(dir.path(), "data.txt", 0o664);
        chmod(dir.path(), "private", 0o600);
        let zip = zip_folder(dir.path()).expect("zip");
        let modes: Vec<(String, u32)> = entries(&zip)
            .into_iter()
            .map(|(name, mode, _)| (name, mode.expect("unix mode") & 0o777))
            .collect();
        assert_eq!(
            modes,
            [
                ("bootstrap".to_owned(), 0o755),
                ("data.txt".to_owned(), 0o644),
                ("private".to_owned(), 0o644)
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_loops_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "real/file.txt", "content");
        std::os::unix::fs::symlink("real/file.txt", dir.path().join("link.txt")).expect("ln");
        let zip = zip_folder(dir.path()).expect("zip");
        let link = entries(&zip)
            .into_iter()
            .find(|e| e.0 == "link.txt")
            .expect("link entry");
        assert_eq!(link.2, "content");
        assert_eq!(link.1.expect("mode") & 0o170000, 0o100000, "a regular file");

        std::os::unix::fs::symlink("..", dir.path().join("real/up")).expect("ln");
        assert!(matches!(
            zip_folder(dir.path()),
            Err(PackageError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn a_zip_file_is_sent_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "src/main.wasm", "\0asm");
        write(dir.path(), "src/readme", "hi");
        let zip = zip_folder(&dir.path().join("src")).expect("zip");
        let path = dir.path().join("code.zip");
        fs::write(&path, &zip).expect("write");
        let package = load(&path).expect("package");
        assert_eq!(package.zip, zip);
        assert_eq!(package.files, ["main.wasm", "readme"]);

        let package = load(&dir.path().join("src")).expect("folder");
        assert_eq!(package.zip, zip);
    }

    #[test]
    fn a_lone_wasm_module_is_zipped_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.wasm");
        fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let package = load(&path).unwrap();
        assert_eq!(package.files, ["hello.wasm"]);
        assert_eq!(
            default_handler("wasm", &package.files).unwrap().as_deref(),
            Some("hello.wasm")
        );
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "code.zip", "not a zip");
        assert!(matches!(
            load(&dir.path().join("code.zip")),
            Err(PackageError::NotAZip { .. })
        ));
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(PackageError::Read { .. })
        ));
    }

    #[test]
    fn default_handler_follows_the_runtime() {
        let files = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let some = |s: &str| Some(s.to_owned());
        let wasm = files(&["lib/helper.txt", "bin/hello.wasm"]);
        assert_eq!(
            default_handler("wasm", &wasm).expect("one"),
            some("bin/hello.wasm")
        );
        assert!(matches!(
            default_handler("wasm", &files(&["a.wasm", "b.wasm"])),
            Err(PackageError::NoSingleWasm { found }) if found.len() == 2
        ));
        assert!(default_handler("wasm", &files(&["x.txt"])).is_err());
        assert_eq!(
            default_handler("provided.al2023", &[]).expect("ok"),
            some("bootstrap")
        );
        assert_eq!(
            default_handler("provided", &[]).expect("ok"),
            some("bootstrap")
        );
        assert_eq!(
            default_handler("python3.12", &[]).expect("ok"),
            some("lambda_function.lambda_handler")
        );
        assert_eq!(
            default_handler("nodejs20.x", &[]).expect("ok"),
            some("index.handler")
        );
        assert_eq!(default_handler("cobol", &[]).expect("ok"), None);
    }
}
