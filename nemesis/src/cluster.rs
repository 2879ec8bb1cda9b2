//! The servers of a run: one `zoo.cfg` shared by zabd and Apache ZooKeeper, processes started
//! inside their namespaces, `kill -9`, SIGSTOP/SIGCONT, roles through `srvr`, exits the
//! nemesis did not cause (crashes), and storage damage on a stopped server.

use crate::topology::Topology;
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::Rng;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// This project's server.
    Zabd,
    /// Apache ZooKeeper 3.8 (Debian's package).
    Zookeeper,
}

impl System {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            System::Zabd => "zabd",
            System::Zookeeper => "zookeeper",
        }
    }
}

/// Timing of the ensemble (the same `zoo.cfg` for both systems).
pub const TICK_MS: u64 = 250;
/// `initLimit` in ticks.
pub const INIT_LIMIT: u64 = 10;
/// `syncLimit` in ticks: a follower silent for this long is dropped.
pub const SYNC_LIMIT: u64 = 5;
/// The session timeout the clients ask for.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(3000);
/// The client port of every server.
pub const CLIENT_PORT: u16 = 2181;

/// The `zoo.cfg` of server `id` (identical for both systems apart from `dataDir`).
#[must_use]
pub fn zoo_cfg(servers: u64, data_dir: &Path) -> String {
    let mut s = format!(
        "tickTime={TICK_MS}\ninitLimit={INIT_LIMIT}\nsyncLimit={SYNC_LIMIT}\n\
         dataDir={}\nclientPort={CLIENT_PORT}\nmaxClientCnxns=0\n\
         minSessionTimeout=1000\nmaxSessionTimeout=10000\n\
         4lw.commands.whitelist=*\nadmin.enableServer=false\nstandaloneEnabled=false\n",
        data_dir.display()
    );
    for id in 1..=servers {
        s.push_str(&format!(
            "server.{id}={}:2888:3888\n",
            Topology::server_addr(id)
        ));
    }
    s
}

/// How to start one server.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The system.
    pub system: System,
    /// zabd's binary.
    pub zabd: PathBuf,
    /// ZooKeeper's Java class path.
    pub zk_classpath: String,
}

/// An exit the nemesis did not cause.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The server.
    pub server: u64,
    /// Seconds since the run started.
    pub at_s: f64,
    /// Its exit status.
    pub status: String,
    /// The last lines of its log.
    pub log_tail: String,
}

/// One server.
#[derive(Debug)]
pub struct Server {
    /// Its id (`myid`).
    pub id: u64,
    /// Its namespace.
    pub ns: String,
    /// Its folder in the run folder (zoo.cfg, data/, server.log).
    pub dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Server {
    /// Its data directory.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its log file.
    #[must_use]
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

/// The ensemble.
#[derive(Debug)]
pub struct Cluster {
    /// The servers, by id - 1.
    pub servers: Vec<Server>,
    launcher: Launcher,
    start: Instant,
    /// Unexpected exits seen so far.
    pub crashes: Vec<Crash>,
}

impl Cluster {
    /// Writes every server's configuration under `run_dir`.
    pub fn prepare(
        topo: &Topology,
        n: u64,
        run_dir: &Path,
        launcher: Launcher,
        start: Instant,
    ) -> Result<Cluster> {
        Self::prepare_with(topo, n, run_dir, launcher, start, "")
    }

    /// [`Cluster::prepare`] with `extra` lines appended to every `zoo.cfg` (e.g. `snapCount`).
    pub fn prepare_with(
        topo: &Topology,
        n: u64,
        run_dir: &Path,
        launcher: Launcher,
        start: Instant,
        extra: &str,
    ) -> Result<Cluster> {
        let mut servers = Vec::new();
        for id in 1..=n {
            let dir = run_dir.join(format!("s{id}"));
            let data = dir.join("data");
            std::fs::create_dir_all(&data).with_context(|| format!("mkdir {}", data.display()))?;
            std::fs::write(data.join("myid"), format!("{id}\n"))?;
            std::fs::write(dir.join("zoo.cfg"), zoo_cfg(n, &data) + extra)?;
            servers.push(Server {
                id,
                ns: topo.server_ns(id),
                dir,
                child: None,
                paused: false,
            });
        }
        Ok(Cluster {
            servers,
            launcher,
            start,
            crashes: Vec::new(),
        })
    }

    fn server(&mut self, id: u64) -> &mut Server {
        &mut self.servers[(id - 1) as usize]
    }

    /// Server ids.
    #[must_use]
    pub fn ids(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.id).collect()
    }

    /// Whether server `id` has a process.
    #[must_use]
    pub fn running(&self, id: u64) -> bool {
        self.servers[(id - 1) as usize].child.is_some()
    }

    /// Starts server `id` if it is not running.
    pub fn start(&mut self, id: u64) -> Result<()> {
        let launcher = self.launcher.clone();
        let s = self.server(id);
        if s.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.log())?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &s.ns]);
        let cfg = s.dir.join("zoo.cfg");
        match launcher.system {
            System::Zabd => {
                c.arg(&launcher.zabd).arg("--config").arg(&cfg);
                c.env("RUST_LOG", "info").env("NO_COLOR", "1");
            }
            System::Zookeeper => {
                c.args([
                    "java",
                    "-Xmx192m",
                    "-XX:+UseSerialGC",
                    "-cp",
                    &launcher.zk_classpath,
                ]);
                c.arg(format!("-Dzookeeper.log.dir={}", s.dir.display()));
                c.arg("-Dzookeeper.root.logger=INFO,CONSOLE");
                c.arg("org.apache.zookeeper.server.quorum.QuorumPeerMain");
                c.arg(&cfg);
            }
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start server {id}"))?;
        s.child = Some(child);
        s.paused = false;
        Ok(())
    }

    /// `kill -9` of server `id` (expected: not a crash).
    pub fn kill9(&mut self, id: u64) {
        let s = self.server(id);
        if let Some(mut c) = s.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        s.paused = false;
    }

    /// SIGSTOP.
    pub fn pause(&mut self, id: u64) {
        let s = self.server(id);
        if let Some(c) = &s.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGSTOP);
            s.paused = true;
        }
    }

    /// SIGCONT of every paused server.
    pub fn resume_all(&mut self) {
        for s in &mut self.servers {
            if let (Some(c), true) = (&s.child, s.paused) {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            }
            s.paused = false;
        }
    }

    /// Collects exits of servers that should be running; returns the ids that exited.
    pub fn reap(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for s in &mut self.servers {
            if let Some(c) = &mut s.child {
                if let Ok(Some(status)) = c.try_wait() {
                    s.child = None;
                    out.push((s.id, status.to_string()));
                }
            }
        }
        out
    }

    /// Records the exits in `exited` as crashes.
    pub fn record_crashes(&mut self, exited: Vec<(u64, String)>) {
        for (id, status) in exited {
            let tail = log_tail(&self.servers[(id - 1) as usize].log(), 15);
            tracing::error!("server {id} exited on its own ({status})");
            self.crashes.push(Crash {
                server: id,
                at_s: self.start.elapsed().as_secs_f64(),
                status,
                log_tail: tail,
            });
        }
    }

    /// Stops every server (SIGCONT, then SIGKILL; the run is over).
    pub fn stop_all(&mut self) {
        self.resume_all();
        for id in self.ids() {
            self.kill9(id);
        }
    }

    /// Removes server `id`'s data (keeping `myid`): the operator's way back after a refusal.
    pub fn wipe(&mut self, id: u64) -> Result<()> {
        let data = self.server(id).data_dir();
        std::fs::remove_dir_all(&data)?;
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("myid"), format!("{id}\n"))?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The last `n` lines of a file.
#[must_use]
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The answer of a four-letter word, or `None`.
#[must_use]
pub fn four_letter_word(id: u64, word: &str) -> Option<String> {
    let addr = SocketAddr::from((Topology::server_addr(id), CLIENT_PORT));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.take(64 * 1024).read_to_string(&mut out).ok()?;
    Some(out)
}

/// `Mode:` of `srvr` (leader, follower), or `None` when the server does not serve.
#[must_use]
pub fn mode(id: u64) -> Option<String> {
    let text = four_letter_word(id, "srvr")?;
    text.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
}

/// The server that says it leads, if exactly one does.
#[must_use]
pub fn leader(ids: &[u64]) -> Option<u64> {
    let leaders: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| mode(id).as_deref() == Some("leader"))
        .collect();
    (leaders.len() == 1).then(|| leaders[0])
}

/// Storage damage of the storage issue's kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Cut the tail of the newest transaction log.
    TruncateLog,
    /// Flip one bit in the newest transaction log's written part.
    FlipBit,
    /// Delete `currentEpoch`.
    DeleteCurrentEpoch,
    /// Remove everything in the data directory but `myid`.
    Wipe,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// The newest transaction log (`log.<hex zxid>`, zabd's and ZooKeeper's naming).
fn newest_log(data: &Path) -> Option<PathBuf> {
    let mut files = Vec::new();
    files_under(data, &mut files);
    files
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let hex = name.strip_prefix("log.")?;
            let z = u64::from_str_radix(hex, 16).ok()?;
            let len = std::fs::metadata(&p).ok()?.len();
            (len > 0).then_some((z, p))
        })
        .max_by_key(|(z, _)| *z)
        .map(|(_, p)| p)
}

/// Damages the (stopped) server's data; returns what was done.
pub fn damage(data: &Path, kind: Damage, rng: &mut impl Rng) -> Result<String> {
    match kind {
        Damage::Wipe => {
            let mut removed = 0;
            for e in std::fs::read_dir(data)?.flatten() {
                let p = e.path();
                if p.file_name().is_some_and(|n| n == "myid") {
                    continue;
                }
                if p.is_dir() {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
                removed += 1;
            }
            Ok(format!(
                "wiped {} ({removed} entries; myid kept)",
                data.display()
            ))
        }
        Damage::DeleteCurrentEpoch => {
            let mut files = Vec::new();
            files_under(data, &mut files);
            let Some(p) = files
                .into_iter()
                .find(|p| p.file_name().is_some_and(|n| n == "currentEpoch"))
            else {
                return Ok("no currentEpoch file to delete".into());
            };
            std::fs::remove_file(&p)?;
            Ok(format!("deleted {}", p.display()))
        }
        Damage::TruncateLog | Damage::FlipBit => {
            let Some(p) = newest_log(data) else {
                return Ok("no transaction log to damage".into());
            };
            let bytes = std::fs::read(&p)?;
            // The written part: ZooKeeper preallocates logs with zeros.
            let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if used < 32 {
                return Ok(format!(
                    "{}: only {used} written bytes, left alone",
                    p.display()
                ));
            }
            if kind == Damage::TruncateLog {
                let cut = rng.random_range(1..=(used / 2).min(300));
                let f = std::fs::OpenOptions::new().write(true).open(&p)?;
                f.set_len((used - cut) as u64)?;
                f.sync_all()?;
                Ok(format!(
                    "truncated {} from {used} written bytes to {} (file was {})",
                    p.display(),
                    used - cut,
                    bytes.len()
                ))
            } else {
                let off = rng.random_range(used / 2..used);
                let bit = rng.random_range(0..8u8);
                let mut b = bytes;
                b[off] ^= 1 << bit;
                let mut f = std::fs::OpenOptions::new().write(true).open(&p)?;
                use std::io::{Seek, SeekFrom};
                f.seek(SeekFrom::Start(off as u64))?;
                f.write_all(&b[off..=off])?;
                f.sync_all()?;
                Ok(format!(
                    "flipped bit {bit} of byte {off} in {}",
                    p.display()
                ))
            }
        }
    }
}

/// Waits until every running server answers `srvr` as leader or follower, with one leader.
pub fn wait_serving(ids: &[u64], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let modes: Vec<Option<String>> = ids.iter().map(|&id| mode(id)).collect();
        let leaders = modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count();
        let serving = modes
            .iter()
            .filter(|m| matches!(m.as_deref(), Some("leader" | "follower")))
            .count();
        if leaders == 1 && serving == ids.len() {
            return Ok(());
        }
        if crate::run::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("not serving after {within:?}: modes {modes:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
