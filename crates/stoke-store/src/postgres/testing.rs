//! A throw-away PostgreSQL cluster for tests ([`Cluster`]): `initdb` in a temporary folder,
//! `postgres` on a free loopback port, trust authentication, no Unix socket; stopped (and its
//! folder removed) when the last test of the process that holds it lets go ([`shared`]).
//!
//! The server binaries are looked for in `/usr/lib/postgresql/*/bin` (where Debian's
//! `postgresql` package puts them, off PATH), the newest first, then on PATH. `initdb` refuses
//! to run as root: as root, the cluster runs as `nobody` (its uid and gid from /etc/passwd),
//! its folder handed over to that user. A machine without PostgreSQL fails with one message
//! naming the package to install.
//!
//! Besides the tests, `stoke bench --store-compare` starts one (feature `pg-testing`) with
//! [`Cluster::start_durable`]: fsync on, as a production server, so that its durable enqueues
//! are measured against SQLite's on equal terms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What a test says when PostgreSQL is not installed.
pub const MISSING: &str = "PostgreSQL is not installed: these tests start a PostgreSQL server of \
     their own and need its binaries (initdb, postgres, pg_ctl). Install the Debian package \
     `postgresql` (apt-get install postgresql), or run scripts/test.sh, which installs it";

/// The database user the cluster is made with (trust authentication on loopback).
pub const USER: &str = "stoke";

/// A running PostgreSQL server of this process.
pub struct Cluster {
    /// Holds the data folder; removed with the cluster.
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The unprivileged user the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    /// fsync and full-page writes on (a benchmark's server), off (the tests', faster).
    durable: bool,
    child: Mutex<Option<Child>>,
}

/// The folder of the server binaries: Debian's versioned folders first (newest), then PATH.
pub fn find_binaries() -> Option<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .map(|(_, p)| p)
        .chain(on_path)
        .find(|dir| {
            ["initdb", "postgres", "pg_ctl", "pg_isready"]
                .iter()
                .all(|b| dir.join(b).is_file())
        })
}

/// `nobody`'s uid and gid, when this process is root (initdb refuses root).
fn unprivileged() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    if me != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&"nobody") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// Makes and starts a cluster; `Err` says why not (with [`MISSING`] if PostgreSQL is not
    /// installed). Tests' settings: no fsync (their data is thrown away).
    pub fn start() -> Result<Self, String> {
        Self::start_with(false)
    }

    /// [`Cluster::start`] with PostgreSQL's durable defaults (fsync, full-page writes).
    pub fn start_durable() -> Result<Self, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, String> {
        let bin = find_binaries().ok_or_else(|| MISSING.to_owned())?;
        let dir = tempfile::Builder::new()
            .prefix("stoke-pg-")
            .tempdir()
            .map_err(|e| format!("a temporary folder for PostgreSQL: {e}"))?;
        let data = dir.path().join("data");
        let run_as = unprivileged();
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = run_as {
            use std::os::unix::fs::PermissionsExt;
            // The unprivileged server must reach and own its data folder.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let mut cluster = Self {
            _dir: dir,
            data,
            bin,
            port: 0,
            run_as,
            durable,
            child: Mutex::new(None),
        };
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // A port found free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn launch(&self) -> Result<(), String> {
        let log = std::fs::File::create(self.data.with_file_name("postgres.log"))
            .map_err(|e| e.to_string())?;
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
            ])
            .args(if self.durable {
                &[][..]
            } else {
                &["-c", "fsync=off", "-c", "full_page_writes=off"][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.data.with_file_name("postgres.log"))
                    .unwrap_or_default();
                return Err(format!("postgres exited ({status}): {}", log.trim()));
            }
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("postgres did not accept connections within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` of this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; answers its URL.
    pub fn create_database(&self) -> String {
        self.try_create_database()
            .expect("creating a test database")
    }

    /// [`Cluster::create_database`], its failure said rather than panicked.
    pub fn try_create_database(&self) -> Result<String, String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        // A thread of its own: callers may be inside a runtime already.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&sql).execute(&mut conn).await?;
                conn.close().await
            })
            .map_err(|e| format!("creating a database: {e}"))
        })
        .join()
        .map_err(|_| "creating a database: the thread panicked".to_owned())??;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing waits).
    fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "20", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// The data folder (for tests that look at what the server wrote).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// The cluster of this process: started by the first caller, shared by every caller while one
/// holds it, stopped when the last lets go. Panics with the reason (for a missing PostgreSQL,
/// [`MISSING`]) if it cannot start.
pub fn shared() -> Arc<Cluster> {
    let mut slot = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = slot.upgrade() {
        return c;
    }
    let cluster = Arc::new(Cluster::start().unwrap_or_else(|e| panic!("{e}")));
    *slot = Arc::downgrade(&cluster);
    cluster
}
