//! The network of a run: one namespace per server, one for the clients, and a hub namespace
//! holding the bridge that joins their veth pairs; partitions with iptables, packet loss with
//! netem (or iptables' `statistic` match where netem is missing); teardown by name prefix.
//!
//! Nothing is created outside the namespaces named `<prefix>*`: the veth pairs are created
//! inside the hub, addresses (10.77.0.0/24) exist only inside the namespaces.

use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::process::Command;

/// The default name prefix of every namespace a run creates.
pub const DEFAULT_PREFIX: &str = "zabnem-";

/// Runs a command; an error carries its stderr.
pub fn cmd(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `args` inside namespace `ns`.
pub fn ns_exec(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    cmd("ip", &all)
}

/// The namespaces of one run.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    servers: u64,
    netem: bool,
    torn: bool,
}

impl Topology {
    /// Removes what an earlier run with this prefix left, then builds the network.
    pub fn create(prefix: &str, servers: u64) -> Result<Topology> {
        cleanup_prefix(prefix)?;
        let mut t = Topology {
            prefix: prefix.to_string(),
            servers,
            netem: false,
            torn: false,
        };
        let hub = t.hub_ns();
        cmd("ip", &["netns", "add", &hub])?;
        ns_exec(&hub, &["ip", "link", "set", "lo", "up"])?;
        ns_exec(&hub, &["ip", "link", "add", "br0", "type", "bridge"])?;
        ns_exec(&hub, &["ip", "link", "set", "br0", "up"])?;
        let mut members: Vec<(String, Ipv4Addr)> = (1..=servers)
            .map(|id| (t.server_ns(id), Self::server_addr(id)))
            .collect();
        members.push((t.client_ns(), Self::client_addr()));
        for (k, (ns, addr)) in members.iter().enumerate() {
            cmd("ip", &["netns", "add", ns])?;
            ns_exec(ns, &["ip", "link", "set", "lo", "up"])?;
            let port = format!("v{k}");
            ns_exec(
                &hub,
                &[
                    "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            )?;
            ns_exec(&hub, &["ip", "link", "set", &port, "master", "br0"])?;
            ns_exec(&hub, &["ip", "link", "set", &port, "up"])?;
            ns_exec(
                ns,
                &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
            )?;
            ns_exec(ns, &["ip", "link", "set", "eth0", "up"])?;
        }
        let s1 = t.server_ns(1);
        t.netem = ns_exec(
            &s1,
            &[
                "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "0%",
            ],
        )
        .is_ok();
        if t.netem {
            ns_exec(&s1, &["tc", "qdisc", "del", "dev", "eth0", "root"])?;
        }
        // iptables must work in the namespaces: partitions depend on it.
        ns_exec(&s1, &["iptables", "-w", "-L", "INPUT", "-n"])
            .context("iptables inside a namespace (install the iptables package)")?;
        Ok(t)
    }

    /// The namespace of server `id`.
    #[must_use]
    pub fn server_ns(&self, id: u64) -> String {
        format!("{}s{id}", self.prefix)
    }

    /// The clients' namespace.
    #[must_use]
    pub fn client_ns(&self) -> String {
        format!("{}c", self.prefix)
    }

    fn hub_ns(&self) -> String {
        format!("{}hub", self.prefix)
    }

    /// Server `id`'s address (inside the run's namespaces only).
    #[must_use]
    pub fn server_addr(id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, u8::try_from(id).unwrap_or(250))
    }

    fn client_addr() -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 100)
    }

    /// Whether packet loss uses netem (else iptables' statistic match).
    #[must_use]
    pub fn has_netem(&self) -> bool {
        self.netem
    }

    /// Moves the calling thread (and every thread it starts later) into the clients'
    /// namespace.
    pub fn enter_client_ns(&self) -> Result<()> {
        let path = format!("/run/netns/{}", self.client_ns());
        let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("setns {path}"))?;
        Ok(())
    }

    /// Server `to` drops every packet from server `from`.
    pub fn drop_from(&self, from: u64, to: u64) -> Result<()> {
        let src = Self::server_addr(from).to_string();
        ns_exec(
            &self.server_ns(to),
            &["iptables", "-w", "-A", "INPUT", "-s", &src, "-j", "DROP"],
        )?;
        Ok(())
    }

    /// Cuts `a` and `b` apart, both ways.
    pub fn cut(&self, a: u64, b: u64) -> Result<()> {
        self.drop_from(a, b)?;
        self.drop_from(b, a)
    }

    /// Drops `percent` of the packets every server sends (netem) or receives (iptables).
    pub fn lossy(&self, percent: u32) -> Result<()> {
        for id in 1..=self.servers {
            let ns = self.server_ns(id);
            if self.netem {
                let p = format!("{percent}%");
                ns_exec(
                    &ns,
                    &[
                        "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", &p,
                    ],
                )?;
            } else {
                let p = format!("{:.2}", f64::from(percent) / 100.0);
                ns_exec(
                    &ns,
                    &[
                        "iptables",
                        "-w",
                        "-A",
                        "INPUT",
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every partition and loss rule.
    pub fn heal(&self) -> Result<()> {
        for id in 1..=self.servers {
            let ns = self.server_ns(id);
            ns_exec(&ns, &["iptables", "-w", "-F", "INPUT"])?;
            if self.netem {
                // Absent qdisc: nothing to remove.
                let _ = ns_exec(&ns, &["tc", "qdisc", "del", "dev", "eth0", "root"]);
            }
        }
        Ok(())
    }

    /// Deletes the run's namespaces (processes must be stopped first).
    pub fn teardown(&mut self) {
        if self.torn {
            return;
        }
        self.torn = true;
        if let Err(e) = cleanup_prefix(&self.prefix) {
            tracing::warn!("teardown: {e:#}");
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Deletes every namespace named `<prefix>*`, first killing (`kill -9`, by pid) the
/// processes left inside it by an earlier run — never this process.
pub fn cleanup_prefix(prefix: &str) -> Result<()> {
    let list = cmd("ip", &["netns", "list"])?;
    let me = std::process::id();
    for name in list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
    {
        let pids = cmd("ip", &["netns", "pids", name]).unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if pid as u32 != me {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        cmd("ip", &["netns", "del", name])?;
        tracing::debug!("removed namespace {name}");
    }
    Ok(())
}
