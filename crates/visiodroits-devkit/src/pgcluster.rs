//! A private PostgreSQL cluster under a directory of ours, for `demo`, the tests and the bench.
//!
//! It listens on a Unix socket only (no port to collide with), trusts local connections on that
//! socket (the socket directory is private to the cluster's owner), and is reused when the
//! directory already holds one. PostgreSQL refuses to run as root: as root the cluster runs as the
//! `postgres` system user (or `nobody` if there is none).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Name of the superuser created by `initdb`.
pub const SUPERUSER: &str = "postgres";

const MISSING: &str =
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in PATH \
nor in /usr/lib/postgresql/*/bin. Install the Debian package: apt-get install postgresql";

/// A running private cluster.
#[derive(Debug)]
pub struct Cluster {
    base: PathBuf,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    /// The port once TCP is served ([`Cluster::serve_tls`]); 5432 (the socket's name) otherwise.
    port: Option<u16>,
}

impl Cluster {
    /// Starts the cluster under `base` (creating it if needed) and returns once it accepts
    /// connections.
    pub fn start(base: &Path) -> anyhow::Result<Self> {
        let bin = find_binaries()?;
        let base = absolute(base)?;
        let run_as = unprivileged_user()?;
        let cluster = Cluster {
            base,
            bin,
            run_as,
            port: None,
        };
        cluster.check_socket_path()?;
        fs::create_dir_all(&cluster.base)
            .with_context(|| format!("cannot create {}", cluster.base.display()))?;
        cluster.own(&cluster.base)?;
        if !cluster.data_dir().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        fs::create_dir_all(cluster.socket_dir())?;
        fs::set_permissions(cluster.socket_dir(), fs::Permissions::from_mode(0o700))?;
        cluster.own(&cluster.socket_dir())?;
        if !cluster.is_running() {
            cluster.pg_ctl_start()?;
        }
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The directory holding the Unix socket (`host=` in a connection URL).
    pub fn socket_dir(&self) -> PathBuf {
        self.base.join("run")
    }

    /// A connection URL for `user` on `database` through the private socket.
    pub fn url(&self, user: &str, database: &str) -> String {
        let port = self.port.map(|p| format!("&port={p}")).unwrap_or_default();
        format!(
            "postgres://{user}@localhost/{database}?host={}{port}",
            self.socket_dir().display()
        )
    }

    /// A TCP connection URL for `user` on `database` (to add `sslmode` and the files to), once
    /// [`Cluster::serve_tls`] has opened a port.
    pub fn tcp_url(&self, user: &str, database: &str) -> Option<String> {
        self.port
            .map(|port| format!("postgres://{user}@localhost:{port}/{database}"))
    }

    /// Serves TCP on 127.0.0.1 (a free port) besides the socket, TLS only, with the server
    /// certificate chain `cert` and its key `key` (PEM). With `client_ca`, a TCP client must also
    /// present a certificate that chains to it (`clientcert=verify-ca`). Restarts the cluster.
    pub fn serve_tls(
        &mut self,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<u16> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let data = self.data_dir();
        let install = |from: &Path, name: &str| -> anyhow::Result<()> {
            let to = data.join(name);
            fs::copy(from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o600))?;
            self.own(&to)
        };
        install(cert, "server.crt")?;
        install(key, "server.key")?;
        let mut conf = format!(
            "\n# TCP, TLS only\nlisten_addresses = '127.0.0.1'\nport = {port}\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        );
        let mut client = "";
        if let Some(ca) = client_ca {
            install(ca, "client-ca.crt")?;
            conf.push_str("ssl_ca_file = 'client-ca.crt'\n");
            client = " clientcert=verify-ca";
        }
        let conf_path = data.join("postgresql.conf");
        let text = fs::read_to_string(&conf_path)? + &conf;
        fs::write(&conf_path, text)?;
        // First match wins: these come before initdb's own lines.
        let hba_path = data.join("pg_hba.conf");
        let hba = format!(
            "hostnossl all all 0.0.0.0/0 reject\nhostssl all all 127.0.0.1/32 trust{client}\n{}",
            fs::read_to_string(&hba_path)?
        );
        fs::write(&hba_path, hba)?;
        self.stop()?;
        self.port = Some(port);
        self.pg_ctl_start()?;
        self.wait_ready(Duration::from_secs(30))?;
        Ok(port)
    }

    /// Directory of the PostgreSQL binaries in use (pgbench lives there too).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Stops the cluster (fast mode: connections are closed, data is flushed).
    pub fn stop(&self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let status = self
            .command("pg_ctl")
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .status()
            .context("cannot run pg_ctl stop")?;
        if !status.success() {
            bail!("pg_ctl stop failed ({status})");
        }
        Ok(())
    }

    /// A streaming standby of `primary` under `base`: a `pg_basebackup` of it (with its
    /// `standby.signal` and `primary_conninfo`), listening on its own socket, started and ready.
    pub fn standby_of(primary: &Cluster, base: &Path) -> anyhow::Result<Cluster> {
        let standby = Cluster {
            base: absolute(base)?,
            bin: primary.bin.clone(),
            run_as: primary.run_as,
            port: None,
        };
        standby.check_socket_path()?;
        fs::create_dir_all(&standby.base)?;
        standby.own(&standby.base)?;
        let out = standby
            .command("pg_basebackup")
            .arg("-D")
            .arg(standby.data_dir())
            .args(["-R", "-X", "stream", "-c", "fast", "-U", SUPERUSER, "-h"])
            .arg(primary.socket_dir())
            .args(["-p", &primary.port.unwrap_or(5432).to_string()])
            .output()
            .context("cannot run pg_basebackup")?;
        if !out.status.success() {
            bail!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // The copy of the primary's settings names the primary's socket: this one has its own.
        let conf_path = standby.data_dir().join("postgresql.conf");
        let text = fs::read_to_string(&conf_path)?
            + &format!(
                "\n# standby\nunix_socket_directories = '{}'\nlisten_addresses = ''\nport = 5432\n",
                standby.socket_dir().display()
            );
        fs::write(&conf_path, text)?;
        fs::create_dir_all(standby.socket_dir())?;
        fs::set_permissions(standby.socket_dir(), fs::Permissions::from_mode(0o700))?;
        standby.own(&standby.socket_dir())?;
        standby.pg_ctl_start()?;
        standby.wait_ready(Duration::from_secs(30))?;
        Ok(standby)
    }

    /// Makes every commit wait for a standby's flush (`synchronous_standby_names = '*'`,
    /// `synchronous_commit = on`), reloaded at once.
    pub fn require_synchronous_standby(&self) -> anyhow::Result<()> {
        let conf_path = self.data_dir().join("postgresql.conf");
        let text = fs::read_to_string(&conf_path)?
            + "\n# synchronous replication\nsynchronous_standby_names = '*'\nsynchronous_commit = on\n";
        fs::write(&conf_path, text)?;
        self.pg_ctl(&["reload"])
    }

    /// Stops the cluster as a crash would (`pg_ctl stop -m immediate`): no checkpoint, the
    /// clients' connections cut.
    pub fn stop_immediately(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])
    }

    /// Promotes a standby to primary (`pg_ctl promote`), once it accepts writes.
    pub fn promote(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["promote", "-w"])
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command("pg_ctl")
            .args(args)
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .with_context(|| format!("cannot run pg_ctl {}", args[0]))?;
        if !out.status.success() {
            bail!(
                "pg_ctl {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts a watchdog that stops the cluster and removes `remove` when process `pid` ends,
    /// so that a test binary leaves nothing behind even though statics are never dropped. It runs
    /// as the current user (root may signal the postmaster and remove the files of any user).
    pub fn remove_when_process_ends(&self, pid: u32, remove: &Path) -> anyhow::Result<()> {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \
             if [ -f '{data}/postmaster.pid' ]; then kill -QUIT $(head -n 1 '{data}/postmaster.pid') 2>/dev/null; sleep 1; fi; \
             rm -rf '{remove}'",
            data = self.data_dir().display(),
            remove = remove.display(),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a Ctrl-C aimed at the tests must not kill the watchdog first.
        cmd.process_group(0);
        cmd.spawn().context("cannot start the cluster watchdog")?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
            // The parent may sit in a directory the unprivileged user cannot enter.
            cmd.current_dir("/");
        }
        cmd.env_remove("PGDATA");
        cmd
    }

    fn own(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to the cluster user", path.display()))?;
        }
        Ok(())
    }

    fn check_socket_path(&self) -> anyhow::Result<()> {
        // sun_path is 108 bytes on Linux, including the terminating NUL.
        let socket = self.socket_dir().join(".s.PGSQL.5432");
        if socket.as_os_str().len() > 100 {
            bail!(
                "the cluster directory {} is too deep for a Unix socket path; use a shorter one",
                self.base.display()
            );
        }
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed in {}: {}{}",
                self.data_dir().display(),
                String::from_utf8_lossy(&out.stderr).trim(),
                if self.run_as.is_some() {
                    " (as root, the cluster runs as an unprivileged user: every directory above it must be enterable by that user)"
                } else {
                    ""
                }
            );
        }
        let conf = format!(
            "\n# visiodroits private cluster\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
             max_connections = 300\nshared_buffers = 128MB\nlog_min_messages = warning\n\
             logging_collector = off\n",
            self.socket_dir().display()
        );
        let conf_path = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path)?;
        text.push_str(&conf);
        fs::write(&conf_path, text)?;
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let log = self.base.join("postgres.log");
        let out = self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"])
            // The postmaster must not die with our process group on Ctrl-C: we stop it ourselves.
            .process_group(0)
            .stdout(Stdio::null())
            .output()
            .context("cannot run pg_ctl start")?;
        if !out.status.success() {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "PostgreSQL did not start in {}: {}",
                self.data_dir().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        Ok(())
    }

    fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let ok = self
                .command("pg_isready")
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.unwrap_or(5432).to_string()])
                .args(["-U", SUPERUSER, "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("PostgreSQL in {} is not ready", self.data_dir().display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// Installs Debian's `postgresql` package for the demo when its server binaries are missing: as
/// root with `apt-get`; otherwise, when standard input is a terminal, after asking once, with
/// `sudo apt-get`. Anything else leaves the message of what to install.
pub fn install_server_if_missing() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if find_binaries().is_ok() || !Path::new("/usr/bin/apt-get").exists() {
        return Ok(());
    }
    let root = running_as_root()?;
    let sudo = if root {
        None
    } else {
        if !std::io::stdin().is_terminal() {
            return Ok(());
        }
        print!("PostgreSQL is not installed; install it with 'sudo apt-get install postgresql'? [Y/n] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim().to_ascii_lowercase().starts_with('n') {
            return Ok(());
        }
        Some("sudo")
    };
    for args in [
        &["apt-get", "update", "-q"][..],
        &[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "postgresql",
        ][..],
    ] {
        let (program, rest) = sudo.map_or((args[0], &args[1..]), |s| (s, args));
        let status = Command::new(program)
            .args(rest)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("cannot run {}", args.join(" ")))?;
        anyhow::ensure!(status.success(), "{} failed", args.join(" "));
    }
    Ok(())
}

/// Finds `initdb` and `pg_ctl`: `PATH` first, then the newest `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> anyhow::Result<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_isready"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_all(&dir) {
                // Resolve symlinks such as /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin.
                let real = fs::canonicalize(dir.join("pg_ctl"))?;
                let real_dir = real.parent().map(Path::to_path_buf).unwrap_or(dir.clone());
                return Ok(if has_all(&real_dir) { real_dir } else { dir });
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((v, _)) if v < 15 => bail!("PostgreSQL {v} found; version 15 or later is needed"),
        Some((_, dir)) => Ok(dir),
        None => bail!(MISSING),
    }
}

/// Whether this process runs as root: the owner of /proc/self is the effective user (no unsafe
/// `geteuid` needed).
fn running_as_root() -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata("/proc/self")?.uid() == 0)
}

/// As root, the (uid, gid) of the user the cluster runs as; otherwise `None` (current user).
fn unprivileged_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !running_as_root()? {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    lookup("postgres")
        .or_else(|| lookup("nobody"))
        .map(Some)
        .context(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL",
    )
}
