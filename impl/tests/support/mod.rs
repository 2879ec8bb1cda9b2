//! A harness that runs real `zabd` processes as an ensemble on loopback: configuration files,
//! free ports, start / stop / `kill -9` / pause, role queries through `srvr`, metrics, clients.
//! A failing test prints the tail of every server's log.

#![allow(dead_code, clippy::print_stderr)]

pub mod certs;
pub mod rogue;
pub mod standalone;
pub mod wire;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zab_zk::client::{Client, ClientError, ConnectOptions, four_letter_word};

/// `tickTime` of test ensembles, ms: elections and failure detection scale with it.
pub const TICK_MS: u64 = 200;

/// One server of the ensemble.
pub struct Node {
    pub id: u64,
    pub client: SocketAddr,
    pub metrics: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// A running ensemble; stops every process when dropped.
pub struct Ensemble {
    pub nodes: Vec<Node>,
    _tmp: tempfile::TempDir,
}

/// `n` distinct free ports for servers to listen on. Taken below Linux's ephemeral range
/// (32768-60999), so that no outgoing connection of another test or server can take one as
/// its source port between this probe and the server's bind (that race made a server exit
/// with "Address already in use" under a loaded CI run), and handed out from a process-wide
/// counter (started at a place that depends on the process id), so that tests running in
/// parallel threads never get the same port.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const HIGH: u32 = 32_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let _ = NEXT.compare_exchange(
        0,
        LOW + (std::process::id() * 997) % (HIGH - LOW),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..(HIGH - LOW) {
        if ports.len() == n {
            break;
        }
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (LOW + (k - LOW) % (HIGH - LOW)) as u16;
        // Held until all are chosen: the same call never returns a port twice.
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports in {LOW}..{HIGH}");
    ports
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    let _ = nix::sys::signal::kill(pid, sig);
}

impl Ensemble {
    /// `(id, quorum, election)` addresses of every `server.N` line of server 1's `zoo.cfg`.
    #[allow(dead_code)] // used by some test binaries only
    pub fn peer_addrs(&self) -> Vec<(u64, SocketAddr, SocketAddr)> {
        let cfg = std::fs::read_to_string(self.node(1).dir.join("zoo.cfg")).expect("zoo.cfg");
        cfg.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                let id: u64 = k.strip_prefix("server.")?.parse().ok()?;
                let mut parts = v.split(':');
                let host = parts.next()?;
                let q: u16 = parts.next()?.parse().ok()?;
                let el: u16 = parts.next()?.parse().ok()?;
                Some((
                    id,
                    format!("{host}:{q}").parse().ok()?,
                    format!("{host}:{el}").parse().ok()?,
                ))
            })
            .collect()
    }

    /// Starts `n` servers with `extra` appended to every `zoo.cfg`.
    pub fn start(n: usize, extra: &str) -> Ensemble {
        Ensemble::start_each(n, |_| extra.to_string())
    }

    /// Starts `n` servers with `extra(id)` appended to server `id`'s `zoo.cfg`.
    pub fn start_each(n: usize, extra: impl Fn(u64) -> String) -> Ensemble {
        Ensemble::start_with_observers(n, &[], extra)
    }

    /// Starts `n` servers, those in `observers` listed as `server.N=...:observer`, with
    /// `extra(id)` appended to server `id`'s `zoo.cfg`.
    pub fn start_with_observers(
        n: usize,
        observers: &[u64],
        extra: impl Fn(u64) -> String,
    ) -> Ensemble {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(4 * n);
        let mut servers = String::new();
        for k in 0..n {
            let role = if observers.contains(&(k as u64 + 1)) {
                ":observer"
            } else {
                ""
            };
            servers.push_str(&format!(
                "server.{}=127.0.0.1:{}:{}{role}\n",
                k + 1,
                ports[4 * k + 1],
                ports[4 * k + 2]
            ));
        }
        let mut nodes = Vec::new();
        for k in 0..n {
            let id = k as u64 + 1;
            let dir = tmp.path().join(format!("node{id}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("myid"), format!("{id}\n")).expect("myid");
            let extra = extra(id);
            let cfg = format!(
                "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nmetricsProvider.httpPort={}\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\n{servers}{extra}\n",
                dir.display(),
                ports[4 * k],
                ports[4 * k + 3]
            );
            std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
            nodes.push(Node {
                id,
                client: SocketAddr::from(([127, 0, 0, 1], ports[4 * k])),
                metrics: SocketAddr::from(([127, 0, 0, 1], ports[4 * k + 3])),
                log: dir.join("zabd.log"),
                dir,
                child: None,
                paused: false,
            });
        }
        let mut e = Ensemble { nodes, _tmp: tmp };
        for id in 1..=n as u64 {
            e.start_node(id);
        }
        e
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts (or restarts) server `id`.
    pub fn start_node(&mut self, id: u64) {
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "server {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_zabd"))
            .arg("--config")
            .arg(node.dir.join("zoo.cfg"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn zabd");
        node.child = Some(child);
        node.paused = false;
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether server `id`'s process is still running (it did not exit by itself).
    pub fn alive(&mut self, id: u64) -> bool {
        self.node_mut(id)
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            if node.paused {
                signal(c.id(), nix::sys::signal::Signal::SIGCONT);
            }
            signal(c.id(), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process keeps its sockets but does nothing.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(c) = &node.child {
            signal(c.id(), nix::sys::signal::Signal::SIGSTOP);
            node.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(c) = &node.child {
            signal(c.id(), nix::sys::signal::Signal::SIGCONT);
            node.paused = false;
        }
    }

    /// The process id of server `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    pub fn running(&self, id: u64) -> bool {
        self.node(id).child.is_some() && !self.node(id).paused
    }

    /// The `Mode:` of `srvr`, or `None` when the server does not answer or is not serving.
    pub fn mode(&self, id: u64) -> Option<String> {
        let out = four_letter_word(self.node(id).client, "srvr", Duration::from_secs(2)).ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
    }

    /// Waits until one running server leads and every other running server follows it.
    pub fn wait_stable(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let modes: Vec<(u64, Option<String>)> = self
                .nodes
                .iter()
                .filter(|n| self.running(n.id))
                .map(|n| (n.id, self.mode(n.id)))
                .collect();
            let leaders: Vec<u64> = modes
                .iter()
                // A one-server ensemble runs standalone: it is its own leader.
                .filter(|(_, m)| matches!(m.as_deref(), Some("leader" | "standalone")))
                .map(|(id, _)| *id)
                .collect();
            let all_serving = modes.iter().all(|(_, m)| m.is_some());
            if leaders.len() == 1 && all_serving {
                return leaders[0];
            }
            if Instant::now() > deadline {
                panic!("no stable ensemble after {timeout:?}: {modes:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The current leader among running servers, if exactly one says so.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| self.running(n.id) && self.mode(n.id).as_deref() == Some("leader"))
            .map(|n| n.id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// A session on server `id`, retrying while the server is not serving.
    pub fn client(&self, id: u64, timeout: Duration) -> Client {
        let deadline = Instant::now() + timeout;
        loop {
            match Client::connect(self.node(id).client, &client_options()) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot open a session on server {id}: {e}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The value of a metric line (`name` includes labels), from the metrics endpoint.
    pub fn metric(&self, id: u64, name: &str) -> Option<f64> {
        let text = http_get(self.node(id).metrics).ok()?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .map(str::to_string)
            })
            .and_then(|v| v.trim().parse().ok())
    }

    /// The whole text of server `id`'s metrics endpoint.
    pub fn metrics_text(&self, id: u64) -> String {
        http_get(self.node(id).metrics).unwrap_or_default()
    }

    /// Prints the last lines of every server's log (on failure).
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- server {} ({}) -----", n.id, n.log.display());
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
    }

    pub fn data_dir(&self, id: u64) -> &Path {
        &self.node(id).dir
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for id in 1..=self.nodes.len() as u64 {
            self.kill(id);
        }
    }
}

pub fn client_options() -> ConnectOptions {
    ConnectOptions {
        session_timeout_ms: 30_000,
        io_timeout: Duration::from_secs(10),
        ..ConnectOptions::default()
    }
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    http_get_path(addr, "/metrics").map(|(_, body)| body)
}

/// `GET path` on `addr`: the status line and the body.
pub fn http_get_path(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, body.to_string()))
}

/// Retries `f` on connection errors (a server died or is not serving), cycling through the
/// given servers, until `timeout`.
pub fn with_any_server<T>(
    e: &Ensemble,
    servers: &[u64],
    timeout: Duration,
    mut f: impl FnMut(&mut Client) -> Result<T, ClientError>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut k = 0;
    loop {
        let id = servers[k % servers.len()];
        k += 1;
        if e.running(id) {
            if let Ok(mut c) = Client::connect(e.node(id).client, &client_options()) {
                if let Ok(v) = f(&mut c) {
                    let _ = c.close();
                    return v;
                }
            }
        }
        if Instant::now() > deadline {
            panic!("no server of {servers:?} could serve the request within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every node under `root` with its data and its stat's zxids, as seen by server `id` after a
/// `sync`: equal dumps mean the replicas applied the same transactions in the same order.
pub fn dump_tree(e: &Ensemble, id: u64, root: &str) -> Vec<(String, Vec<u8>, i64, i64, i32, i64)> {
    let mut c = e.client(id, Duration::from_secs(20));
    c.sync(root).expect("sync").expect("sync ok");
    let mut out = Vec::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        let (data, stat) = c.get_data(&p, false).expect("io").expect("getData");
        out.push((
            p.clone(),
            data,
            stat.czxid,
            stat.mzxid,
            stat.version,
            stat.pzxid,
        ));
        for child in c.get_children(&p, false).expect("io").expect("getChildren") {
            stack.push(if p == "/" {
                format!("/{child}")
            } else {
                format!("{p}/{child}")
            });
        }
    }
    out.sort();
    let _ = c.close();
    out
}
