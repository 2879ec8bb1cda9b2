//! ZooKeeper's four-letter words, answered on the client port with ZooKeeper 3.8's formats
//! (`../shared/reference/zk-3.8-fourlw/`), so that `zkServer.sh status`, Prometheus exporters
//! reading `mntr` and other monitoring keep working.
//!
//! `ruok` is answered by the connection task itself (it must work even if the replica thread
//! is busy); the others are rendered on the replica thread from the service's [`StatsView`]
//! and the runtime's status, one function per word.

use super::StatsView;
use crate::config::ServerConfig;
use crate::runtime::AppCx;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use zab_spec::{ServerState, ZabState, Zxid};

/// The version string reported (ZooKeeper's format; exporters parse the leading number).
pub const VERSION: &str = concat!(
    "3.8.0-zab-",
    env!("CARGO_PKG_VERSION"),
    ", built on 1970-01-01 00:00 UTC"
);

/// The answer of a word the whitelist does not allow.
#[must_use]
pub fn not_whitelisted(word: &str) -> String {
    format!("{word} is not executed because it is not in the whitelist.\n")
}

/// What ZooKeeper answers to most words when it has no quorum.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

pub(super) fn mode(cx: &AppCx<'_, zab_zk::Txn>, standalone: bool) -> &'static str {
    match cx.role().state {
        _ if standalone => "standalone",
        ServerState::Leading => "leader",
        ServerState::Following if cx.role().observer => "observer",
        ServerState::Following => "follower",
        ServerState::Looking => "looking",
    }
}

/// The average latency as ZooKeeper prints it: rounded to 4 decimals, then Java's
/// `Double.toString` (`0.0`, `2.1618`, `3.5`).
fn avg_latency(l: (i64, i64, i64, u64)) -> String {
    let avg = if l.3 == 0 {
        0.0
    } else {
        l.2 as f64 / l.3 as f64
    };
    java_double((avg * 10_000.0).round() / 10_000.0)
}

/// Java's `Double.toString` for the magnitudes printed here: the shortest representation,
/// always with a fractional part.
fn java_double(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn latency(l: (i64, i64, i64, u64)) -> String {
    format!("{}/{}/{}", l.0, avg_latency(l), l.1)
}

/// What a word's renderer reads: the configuration, the service's statistics and the
/// runtime's status.
struct Ctx<'a, 'c> {
    cfg: &'a ServerConfig,
    view: &'a StatsView,
    cx: &'a AppCx<'c, zab_zk::Txn>,
    asking: SocketAddr,
    standalone: bool,
    zxid: Zxid,
}

/// Renders a word (other than `ruok`).
///
/// Like ZooKeeper, the asking connection counts: it is among the connections (`[0]`, one
/// packet received, none sent) in stat, cons, srvr's `Connections` and mntr's
/// `zk_num_alive_connections`.
pub fn render(
    word: &str,
    asking: SocketAddr,
    cfg: &ServerConfig,
    view: &StatsView,
    cx: &AppCx<'_, zab_zk::Txn>,
) -> String {
    if !cfg.four_letter_words.iter().any(|w| w == word) {
        return not_whitelisted(word);
    }
    let serving = cx.role().zab_state == ZabState::Broadcast;
    let c = Ctx {
        cfg,
        view,
        cx,
        asking,
        standalone: cfg.members.len() <= 1,
        zxid: Zxid::from_u64(cx.status().last_zxid.load(Ordering::Relaxed)),
    };
    let mut out = String::new();
    match word {
        "srvr" | "stat" | "mntr" | "cons" | "wchs" if !serving => return NOT_SERVING.to_string(),
        "srvr" => header(&mut out, &c, false),
        "stat" => header(&mut out, &c, true),
        "isro" => out.push_str("rw"),
        "wchs" => wchs(&mut out, view),
        "cons" => cons(&mut out, &c),
        "conf" => conf(&mut out, cfg, c.standalone, cx.status().disk.dir_sizes()),
        "dirs" => {
            let (data, log) = cx.status().disk.dir_sizes();
            let _ = writeln!(out, "datadir_size: {data}\nlogdir_size: {log}");
        }
        "envi" => envi(&mut out),
        "mntr" => {
            for (k, v) in mntr(&c) {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        other => out = format!("Unknown command {other}\n"),
    }
    out
}

/// `srvr`, and `stat` (with `clients`: the connections first).
fn header(out: &mut String, c: &Ctx<'_, '_>, clients: bool) {
    let view = c.view;
    let _ = writeln!(out, "Zookeeper version: {VERSION}");
    if clients {
        let _ = writeln!(out, "Clients:");
        for s in &view.conns {
            let _ = writeln!(
                out,
                " /{}[{}](queued={},recved={},sent={})",
                s.remote,
                u8::from(s.session.is_some()),
                s.queued,
                s.stats.received,
                s.stats.sent
            );
        }
        let _ = writeln!(out, " /{}[0](queued=0,recved=1,sent=0)", c.asking);
        let _ = writeln!(out);
    }
    let s = &view.stats;
    let _ = writeln!(out, "Latency min/avg/max: {}", latency(s.latency));
    let _ = writeln!(out, "Received: {}", s.packets_received);
    let _ = writeln!(out, "Sent: {}", s.packets_sent);
    let _ = writeln!(out, "Connections: {}", view.conns.len() + 1);
    let _ = writeln!(out, "Outstanding: {}", view.outstanding());
    let _ = writeln!(out, "Zxid: {}", c.zxid);
    let _ = writeln!(out, "Mode: {}", mode(c.cx, c.standalone));
    let _ = writeln!(out, "Node count: {}", view.znode_count);
    if !c.standalone && c.cx.role().state == ServerState::Leading {
        let p = s.proposal_sizes;
        let _ = writeln!(out, "Proposal sizes last/min/max: {}/{}/{}", p.0, p.1, p.2);
    }
}

/// `wchs`: watch totals.
fn wchs(out: &mut String, view: &StatsView) {
    let _ = writeln!(
        out,
        "{} connections watching {} paths",
        view.watching_sessions, view.watched_paths
    );
    let _ = writeln!(out, "Total watches:{}", view.watch_count);
}

/// `cons`: every connection with its session and latencies.
fn cons(out: &mut String, c: &Ctx<'_, '_>) {
    for s in &c.view.conns {
        let (remote, queued, st) = (s.remote, s.queued, &s.stats);
        match s.session {
            Some(sid) => {
                let l = st.lat;
                let avg = if l.3 == 0 { 0 } else { l.2 / l.3 as i64 };
                let _ = writeln!(
                    out,
                    " /{remote}[1](queued={queued},recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat=0,minlat={},avglat={avg},maxlat={})",
                    st.received,
                    st.sent,
                    sid.0,
                    st.last_op,
                    st.established_ms,
                    s.timeout,
                    st.last_cxid,
                    st.last_zxid,
                    c.cx.now_ms,
                    l.0,
                    l.1
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    " /{remote}[0](queued={queued},recved={},sent={})",
                    st.received, st.sent
                );
            }
        }
    }
    let _ = writeln!(out, " /{}[0](queued=0,recved=1,sent=0)", c.asking);
    out.push('\n');
}

/// `conf`: the configuration, ZooKeeper's keys.
fn conf(out: &mut String, cfg: &ServerConfig, standalone: bool, (data, log): (u64, u64)) {
    // ZooKeeper prints -1 for a port it does not listen on.
    let client_port = if cfg.client_port_plaintext {
        i32::from(cfg.client_addr.port())
    } else {
        -1
    };
    let secure = cfg.secure_client_addr.map_or(-1, |a| i32::from(a.port()));
    let _ = writeln!(out, "clientPort={client_port}\nsecureClientPort={secure}");
    let _ = writeln!(
        out,
        "dataDir={}\ndataDirSize={data}",
        cfg.data_dir.display(),
    );
    let _ = writeln!(
        out,
        "dataLogDir={}\ndataLogSize={log}",
        cfg.data_log_dir.display(),
    );
    let _ = writeln!(
        out,
        "tickTime={}\nmaxClientCnxns={}",
        cfg.tick_ms, cfg.max_client_cnxns
    );
    let _ = writeln!(
        out,
        "minSessionTimeout={}\nmaxSessionTimeout={}",
        cfg.min_session_timeout_ms, cfg.max_session_timeout_ms
    );
    let _ = writeln!(out, "clientPortListenBacklog=-1\nserverId={}", cfg.myid.0);
    if !standalone {
        conf_quorum(out, cfg);
    }
}

/// `conf`'s quorum part (an ensemble only).
fn conf_quorum(out: &mut String, cfg: &ServerConfig) {
    let _ = writeln!(
        out,
        "initLimit={}\nsyncLimit={}\nelectionAlg=3",
        cfg.init_limit, cfg.sync_limit
    );
    if let Some(me) = cfg.me() {
        let _ = writeln!(
            out,
            "electionPort={}\nquorumPort={}",
            me.election_addr.port(),
            me.quorum_addr.port()
        );
    }
    // ZooKeeper prints `LearnerType`'s ordinal: 0 participant, 1 observer.
    let _ = writeln!(
        out,
        "peerType={}\nmembership: ",
        u8::from(cfg.is_observer())
    );
    let _ = writeln!(out, "{}", cfg.membership_text());
}

/// `envi`: the process's environment, ZooKeeper's keys.
fn envi(out: &mut String) {
    let _ = writeln!(out, "Environment:");
    let _ = writeln!(out, "zookeeper.version={VERSION}");
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let _ = writeln!(out, "host.name={host}");
    let _ = writeln!(out, "java.version=none (zab, Rust)\njava.vendor=zab");
    let _ = writeln!(
        out,
        "os.name={}\nos.arch={}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let _ = writeln!(
        out,
        "user.name={}",
        std::env::var("USER").unwrap_or_default()
    );
    let dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "user.dir={dir}");
}

/// `mntr`'s keys and values as the AdminServer's `monitor` reports them: no asking client
/// connection among the connections.
pub(super) fn mntr_pairs(
    cfg: &ServerConfig,
    view: &StatsView,
    cx: &AppCx<'_, zab_zk::Txn>,
) -> Vec<(&'static str, String)> {
    let c = Ctx {
        cfg,
        view,
        cx,
        asking: SocketAddr::from(([0, 0, 0, 0], 0)),
        standalone: cfg.members.len() <= 1,
        zxid: Zxid::from_u64(cx.status().last_zxid.load(Ordering::Relaxed)),
    };
    let mut kv = mntr(&c);
    for (k, v) in &mut kv {
        if *k == "zk_num_alive_connections" {
            *v = view.conns.len().to_string();
        }
    }
    kv
}

/// `mntr`'s keys and values, in ZooKeeper's order.
fn mntr(c: &Ctx<'_, '_>) -> Vec<(&'static str, String)> {
    let (view, s, st) = (c.view, &c.view.stats, c.cx.status());
    let l = s.latency;
    let mut kv = vec![
        ("zk_version", VERSION.to_string()),
        ("zk_server_state", mode(c.cx, c.standalone).to_string()),
        ("zk_avg_latency", avg_latency(l)),
        ("zk_max_latency", l.1.to_string()),
        ("zk_min_latency", l.0.to_string()),
        ("zk_packets_received", s.packets_received.to_string()),
        ("zk_packets_sent", s.packets_sent.to_string()),
        (
            "zk_num_alive_connections",
            (view.conns.len() + 1).to_string(),
        ),
        ("zk_outstanding_requests", view.outstanding().to_string()),
        ("zk_znode_count", view.znode_count.to_string()),
        ("zk_watch_count", view.watch_count.to_string()),
        ("zk_ephemerals_count", view.ephemerals.to_string()),
        (
            "zk_approximate_data_size",
            view.approximate_data_size.to_string(),
        ),
        ("zk_global_sessions", view.global_sessions.to_string()),
        ("zk_local_sessions", "0".into()),
        ("zk_auth_failed_count", s.auth_failed.to_string()),
        ("zk_uptime", (c.cx.now_ms - view.started_ms).to_string()),
        ("zk_last_zxid", format!("{}", c.zxid)),
        (
            "zk_commit_count",
            st.delivered.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_fsync_count", st.fsync_micros.count().to_string()),
    ];
    if let Some((open, max)) = st.disk.file_descriptors() {
        kv.push(("zk_open_file_descriptor_count", open.to_string()));
        kv.push(("zk_max_file_descriptor_count", max.to_string()));
    }
    // A standalone ZooKeeper prints neither its peer state nor quorum figures.
    if !c.standalone {
        mntr_quorum(c, &mut kv);
    }
    kv
}

/// `mntr`'s quorum keys (an ensemble only), and the leader's.
fn mntr_quorum(c: &Ctx<'_, '_>, kv: &mut Vec<(&'static str, String)>) {
    let (role, st) = (c.cx.role(), c.cx.status());
    let state = match role.state {
        ServerState::Leading => "leading",
        ServerState::Following if role.observer => "observing",
        ServerState::Following => "following",
        ServerState::Looking => "looking",
    };
    let phase = format!("{:?}", role.zab_state).to_lowercase();
    kv.push(("zk_peer_state", format!("{state} - {phase}")));
    kv.push(("zk_quorum_size", c.cfg.server_ids().len().to_string()));
    if role.state != ServerState::Leading {
        return;
    }
    let synced = st.synced_followers.load(Ordering::Relaxed);
    let observers = st.synced_observers.load(Ordering::Relaxed);
    kv.push(("zk_learners", (synced + observers).to_string()));
    kv.push(("zk_synced_followers", synced.to_string()));
    kv.push(("zk_synced_non_voting_followers", "0".into()));
    kv.push(("zk_synced_observers", observers.to_string()));
    kv.push(("zk_pending_syncs", "0".into()));
    let outstanding = st.outstanding.load(Ordering::Relaxed);
    kv.push(("zk_outstanding_proposals", outstanding.to_string()));
    let p = c.view.stats.proposal_sizes;
    kv.push(("zk_last_proposal_size", p.0.to_string()));
    kv.push(("zk_min_proposal_size", p.1.to_string()));
    kv.push(("zk_max_proposal_size", p.2.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_print_like_java_doubles() {
        assert_eq!(latency((0, 0, 0, 0)), "0/0.0/0");
        assert_eq!(latency((0, 11, 21618, 10_000)), "0/2.1618/11");
        assert_eq!(latency((1, 6, 7, 2)), "1/3.5/6");
        assert_eq!(latency((1, 2, 2, 1)), "1/2.0/2");
        assert_eq!(avg_latency((0, 9, 10, 3)), "3.3333");
    }

    #[test]
    fn a_word_off_the_whitelist_gets_zookeepers_refusal() {
        assert_eq!(
            not_whitelisted("stat"),
            "stat is not executed because it is not in the whitelist.\n"
        );
    }
}
