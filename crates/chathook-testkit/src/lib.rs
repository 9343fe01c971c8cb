//! Throwaway services for tests: each test that needs PostgreSQL or NATS starts its own instance here,
//! on a free loopback port (PostgreSQL in a temporary directory), and it stops and disappears when the
//! handle is dropped. A test never depends on a service someone else started. Never a dependency of the server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a throwaway service did not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running PostgreSQL cluster of one test.
pub struct Postgres {
    /// The cluster's data directory (and the socket directory), removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Whether the cluster runs as the `postgres` system user (initdb refuses root).
    as_postgres: bool,
}

impl Postgres {
    /// Initialises and starts a cluster with trust authentication for the user `postgres`, without
    /// flushing its commits to disk (`fsync=off`: tests do not survive a power cut).
    pub fn start() -> Result<Postgres, StartError> {
        Postgres::start_with_fsync(false)
    }

    /// [`Postgres::start`], with `fsync` on as in production when `fsync` is set (benchmarks).
    pub fn start_with_fsync(fsync: bool) -> Result<Postgres, StartError> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("chathook-pg-")
            .tempdir()
            .map_err(|e| StartError(format!("temporary directory: {e}")))?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path()))?;
        }
        let port = free_port()?;
        let pg = Postgres {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data_dir();
        run(pg
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data))?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync={} -c max_connections=200",
            pg.dir.path().display(),
            if fsync { "on" } else { "off" }
        );
        run(pg
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(pg.dir.path().join("server.log"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "start"]))?;
        wait_for_port(port, Duration::from_secs(30))?;
        Ok(pg)
    }

    /// A connection string for the `postgres` database (key=value form, as tokio-postgres takes it).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A connection string for a new, empty database named `name`.
    pub fn database(&self, name: &str) -> Result<String, StartError> {
        run(self.command("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]))?;
        Ok(format!(
            "host=127.0.0.1 port={} user=postgres dbname={name}",
            self.port
        ))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` from the PostgreSQL binaries, as the `postgres` user when this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Postgres {
    /// Stops the cluster now (immediate shutdown); dropping it stops it too. Stopping twice does no harm.
    pub fn stop(&self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(&data)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running NATS server of one test (`NATS_SERVER`, else `nats-server` from the PATH, else Debian's
/// `/usr/sbin/nats-server`), killed on drop.
pub struct Nats {
    /// In a mutex so that [`Nats::stop`] takes `&self` (a shared handle can stop it).
    child: std::sync::Mutex<std::process::Child>,
    port: u16,
}

impl Nats {
    /// Starts `nats-server` on a free loopback port.
    pub fn start() -> Result<Nats, StartError> {
        let program = nats_program();
        let port = free_port()?;
        let child = Command::new(&program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                StartError(format!(
                    "{}: {e} (install the nats-server package, or set NATS_SERVER)",
                    Path::new(&program).display()
                ))
            })?;
        let nats = Nats {
            child: std::sync::Mutex::new(child),
            port,
        };
        wait_for_port(port, Duration::from_secs(30))?;
        Ok(nats)
    }

    /// The server's address, as `cluster.nats_url` takes it.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Nats {
    /// Kills the server now; dropping it kills it too. Stopping twice does no harm.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `NATS_SERVER`, else `nats-server` on the PATH, else Debian's place for it (outside a normal user's
/// PATH).
fn nats_program() -> std::ffi::OsString {
    if let Some(program) = std::env::var_os("NATS_SERVER") {
        return program;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("nats-server").exists()));
    let debian = Path::new("/usr/sbin/nats-server");
    if !on_path && debian.exists() {
        return debian.into();
    }
    "nats-server".into()
}

/// The directory of PostgreSQL's programs: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else wherever `pg_ctl` is on the PATH.
fn pg_bin() -> Result<PathBuf, StartError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return Ok(newest);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths).find(|p| Path::new(p).join("pg_ctl").exists())
        })
        .ok_or_else(|| StartError("PostgreSQL is not installed (no pg_ctl; set PG_BIN)".into()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> Result<u16, StartError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StartError(format!("no free port: {e}")))
}

fn wait_for_port(port: u16, limit: Duration) -> Result<(), StartError> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(StartError(format!("nothing listens on port {port}")))
}

/// Runs `command`; its output is in the error when it fails.
fn run(command: &mut Command) -> Result<(), StartError> {
    let out = command
        .output()
        .map_err(|e| StartError(format!("{command:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(StartError(format!(
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}
