//! A standalone `zabd` process on a free loopback port with a temporary data directory (the
//! differential and bad-input tests' server), stopped when dropped; a failing test prints the
//! tail of its log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zab_zk::client::four_letter_word;

/// A running standalone server.
pub struct Standalone {
    /// Its client address.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Standalone {
    /// Starts `zabd` with `zoo.cfg` lines `extra` (after the defaults: tickTime 2000, every
    /// four-letter word) and command-line `args`, and waits until it serves clients.
    pub fn start(extra: &str, args: &[&str]) -> Standalone {
        let tmp = tempfile::tempdir().expect("tempdir");
        let port = super::free_ports(1)[0];
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\n{extra}\n",
            dir.display()
        );
        let cfg_path = tmp.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("zoo.cfg");
        let log = tmp.path().join("zabd.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_zabd"))
            .arg("--config")
            .arg(&cfg_path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn zabd");
        let mut s = Standalone {
            addr,
            log,
            child: Some(child),
            _tmp: tmp,
        };
        s.wait_serving(Duration::from_secs(60));
        s
    }

    fn wait_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mode = four_letter_word(self.addr, "srvr", Duration::from_secs(2))
                .ok()
                .and_then(|out| {
                    out.lines()
                        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
                });
            if mode.is_some() {
                return;
            }
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    self.dump_log();
                    panic!("zabd exited at start: {status}");
                }
            }
            if Instant::now() > deadline {
                self.dump_log();
                panic!("zabd did not serve within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Prints the end of the log.
    pub fn dump_log(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("----- zabd ({}) -----", self.log.display());
        for l in &lines[lines.len().saturating_sub(80)..] {
            eprintln!("{l}");
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ruok` answered `imok`.
pub fn ruok(addr: SocketAddr) -> bool {
    four_letter_word(addr, "ruok", Duration::from_secs(5)).is_ok_and(|s| s == "imok")
}
