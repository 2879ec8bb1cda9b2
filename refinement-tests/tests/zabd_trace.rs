//! Trace refinement of real `zabd` processes: a 3-node ensemble on loopback with
//! `--trace-file`, an election and a stream of client writes, then the three trace files
//! merged by time and replayed through the model (every invariant on every state).
//!
//! Restarts are left to the simulation: a graceful stop flushes the log, which the model's
//! `NodeCrash` (volatile suffix lost) does not describe.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use zab_refinement::ndjson;
use zab_refinement::refine::Refiner;
use zab_spec::ServerId;
use zab_zk::client::{Client, ConnectOptions, four_letter_word};

/// `target/<profile>/zabd`, built on demand (cargo builds a package's binaries only for that
/// package's own tests).
fn zabd() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("zabd");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "zab-server", "--bin", "zabd"])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p zab-server --bin zabd failed"
        );
    }
    assert!(bin.exists(), "no zabd at {}", bin.display());
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Ensemble {
    children: Vec<Child>,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Ensemble {
    /// Stops every server with SIGTERM (a graceful stop flushes the trace files).
    fn stop(mut self) {
        for c in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        self.children.clear();
    }
}

fn mode(addr: SocketAddr) -> Option<String> {
    let out = four_letter_word(addr, "srvr", Duration::from_secs(1)).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
}

#[test]
fn a_real_ensemble_refines_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = zabd();
    let quorum: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let clients: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let mut ensemble = Ensemble {
        children: Vec::new(),
    };
    let mut traces = Vec::new();
    for id in 1..=3usize {
        let data = dir.path().join(format!("node{id}"));
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::write(data.join("myid"), format!("{id}\n")).expect("write myid");
        let mut cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
            data.display(),
            clients[id - 1].port()
        );
        for (k, (q, e)) in quorum.iter().enumerate() {
            cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", k + 1));
        }
        let file = dir.path().join(format!("zoo{id}.cfg"));
        std::fs::write(&file, cfg).expect("write zoo.cfg");
        let trace = dir.path().join(format!("trace.{id}.ndjson"));
        let child = Command::new(&exe)
            .arg("--config")
            .arg(&file)
            .arg("--trace-file")
            .arg(&trace)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start zabd");
        ensemble.children.push(child);
        traces.push(trace);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let modes: Vec<Option<String>> = clients.iter().map(|a| mode(*a)).collect();
        let leaders: Vec<usize> = (0..3)
            .filter(|k| modes[*k].as_deref() == Some("leader"))
            .collect();
        let followers = modes
            .iter()
            .filter(|m| m.as_deref() == Some("follower"))
            .count();
        if leaders.len() == 1 && followers == 2 {
            break leaders[0];
        }
        assert!(Instant::now() < deadline, "no stable leader: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Writes through a follower (forwarded to the leader) and through the leader.
    for (k, addr) in [(leader + 1) % 3, leader].iter().map(|k| (*k, clients[*k])) {
        let mut c = Client::connect(addr, &ConnectOptions::default()).expect("connect");
        for n in 0..15 {
            let path = format!("/s{k}-{n}");
            c.create(&path, b"v0", 0)
                .expect("io")
                .expect("create succeeds");
            c.set_data(&path, b"v1", -1)
                .expect("io")
                .expect("setData succeeds");
        }
        c.close().expect("close");
    }
    ensemble.stop();

    let paths: Vec<&Path> = traces.iter().map(PathBuf::as_path).collect();
    let trace = ndjson::merge(&paths).unwrap_or_else(|e| panic!("trace files: {e}"));
    let mut refiner = Refiner::new(&[ServerId(1), ServerId(2), ServerId(3)], None);
    if let Err(d) = refiner.replay(&trace) {
        panic!("{d}");
    }
    let count = |a: &str| refiner.counts.get(a).copied().unwrap_or(0);
    assert_eq!(count("ElectLeader"), 1, "{:?}", refiner.counts);
    // 2 sessions created and closed, 30 creates, 30 setData.
    assert!(count("LeaderProcessRequest") >= 64, "{:?}", refiner.counts);
    assert!(
        count("FollowerProcessCOMMIT") >= 2 * 64,
        "{:?}",
        refiner.counts
    );
    assert!(
        refiner.state().ghost.committed_log.len() >= 64,
        "every write acknowledged to a client is committed"
    );
}
