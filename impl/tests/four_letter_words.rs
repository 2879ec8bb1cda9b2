//! Four-letter words in ZooKeeper 3.8's formats (`../shared/reference/zk-3.8-fourlw/`):
//! ruok, srvr, stat, mntr, conf, cons, wchs, envi, dirs, isro on a standalone `zabd` with
//! one session that holds an ephemeral node and a watch, and the refusal of a word that is
//! not whitelisted. Each output is checked line by line against its shape (numbers as `N`,
//! hex as `H`), so the same checks hold for ZooKeeper itself: with
//! `ZAB_REFERENCE_ZK=host:port` (a standalone ZooKeeper 3.8 with `4lw.commands.whitelist=*`,
//! e.g. `ci/differential.sh --serve`) the words are checked against it instead.

#![allow(clippy::print_stderr)]

mod support;

use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use support::standalone::Standalone;
use support::wire::Wire;
use zab_zk::client::four_letter_word;
use zab_zk::proto::{CreateRequest, GetDataRequest, Request, ids};

const IO: Duration = Duration::from_secs(10);

fn word(addr: SocketAddr, w: &str) -> String {
    four_letter_word(addr, w, IO).unwrap_or_else(|e| panic!("{w}: {e}"))
}

/// A line's shape: `0x` + hex digits become `0xH`, other digit runs `N`.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'0'
            && b.get(i + 1) == Some(&b'x')
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out.push_str("0xH");
            i += 2;
            while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
                i += 1;
            }
        } else if b[i].is_ascii_digit() {
            out.push('N');
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        } else {
            let c = line[i..].chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn shapes(text: &str) -> Vec<String> {
    text.lines().map(shape).collect()
}

/// The version line: ZooKeeper's `3.8.0-<commit>, built on <date> UTC`.
fn assert_version(v: &str) {
    assert!(v.starts_with("3.8."), "version {v:?}");
    assert!(
        v.contains(", built on ") && v.ends_with(" UTC"),
        "version {v:?}"
    );
}

/// srvr's lines after the version line (stat's after its client list).
const STATS: &[&str] = &[
    "Latency min/avg/max: N/N.N/N",
    "Received: N",
    "Sent: N",
    "Connections: N",
    "Outstanding: N",
    "Zxid: 0xH",
    "Mode: standalone",
    "Node count: N",
];

fn check_words(addr: SocketAddr) {
    // One session: an ephemeral node and a data watch on it.
    let (mut w, resp) = Wire::session(addr).expect("session");
    let path = format!("/fourlw-{}", std::process::id());
    let r = w
        .call(
            &Request::Create(CreateRequest {
                path: path.clone(),
                data: Some(Bytes::from_static(b"x")),
                acl: ids::open_acl_unsafe(),
                flags: 1,
            }),
            IO,
        )
        .expect("create");
    assert_eq!(r.header.err, 0);
    let r = w
        .call(
            &Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: true,
            }),
            IO,
        )
        .expect("getData");
    assert_eq!(r.header.err, 0);

    assert_eq!(word(addr, "ruok"), "imok");
    assert_eq!(word(addr, "isro"), "rw");

    let srvr = word(addr, "srvr");
    assert!(srvr.ends_with('\n'), "{srvr:?}");
    let lines: Vec<&str> = srvr.lines().collect();
    assert_version(
        lines[0]
            .strip_prefix("Zookeeper version: ")
            .expect("version line"),
    );
    assert_eq!(shapes(&srvr)[1..], *STATS, "{srvr}");
    let count = |text: &str, key: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    assert!(count(&srvr, "Connections:") >= 1);
    assert!(
        count(&srvr, "Node count:") >= 6,
        "the root, /zookeeper (3) and the node"
    );

    // stat: the header, the clients (this session's and the stat connection itself), a
    // blank line, then srvr's lines.
    let stat = word(addr, "stat");
    let st = shapes(&stat);
    assert_eq!(st[1], "Clients:", "{stat}");
    let blank = st.iter().position(String::is_empty).expect("a blank line");
    assert!(blank >= 4, "two clients at least: {stat}");
    for c in &st[2..blank] {
        assert!(
            c == " /N.N.N.N:N[N](queued=N,recved=N,sent=N)",
            "client line {c:?} in {stat}"
        );
    }
    assert_eq!(st[blank + 1..], *STATS, "{stat}");

    // cons: one line per connection, this session's with its details; then a blank line.
    let cons = word(addr, "cons");
    assert!(cons.ends_with("\n\n"), "{cons:?}");
    let sid = format!("sid=0x{:x},", resp.session_id);
    let mine = cons
        .lines()
        .find(|l| l.contains(&sid))
        .unwrap_or_else(|| panic!("no {sid} in {cons}"));
    assert_eq!(
        shape(mine),
        " /N.N.N.N:N[N](queued=N,recved=N,sent=N,sid=0xH,lop=GETD,est=N,to=N,lcxid=0xH,\
         lzxid=0xH,lresp=N,llat=N,minlat=N,avglat=N,maxlat=N)",
        "{cons}"
    );
    assert!(
        mine.contains("[1](") && mine.contains(",to=30000,"),
        "{mine}"
    );
    for l in cons
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("sid="))
    {
        assert_eq!(
            shape(l),
            " /N.N.N.N:N[N](queued=N,recved=N,sent=N)",
            "{cons}"
        );
    }

    // wchs: this session's one watch.
    assert_eq!(
        word(addr, "wchs"),
        "1 connections watching 1 paths\nTotal watches:1\n"
    );

    // mntr: `zk_<key>\t<value>` lines; the keys exporters read, with sensible values.
    let mntr = word(addr, "mntr");
    assert!(mntr.ends_with('\n'));
    let mut kv = BTreeMap::new();
    for l in mntr.lines() {
        let (k, v) = l
            .split_once('\t')
            .unwrap_or_else(|| panic!("mntr line {l:?}"));
        assert!(
            k.starts_with("zk_") && !k.contains(char::is_whitespace) && !v.is_empty(),
            "mntr key {k:?}"
        );
        assert!(kv.insert(k, v).is_none(), "mntr key {k} twice");
    }
    assert_version(kv["zk_version"]);
    assert_eq!(kv["zk_server_state"], "standalone");
    assert_eq!(shape(kv["zk_avg_latency"]), "N.N", "{mntr}");
    for k in [
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_global_sessions",
        "zk_local_sessions",
        "zk_auth_failed_count",
        "zk_uptime",
    ] {
        let v = kv
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in mntr:\n{mntr}"));
        assert!(v.parse::<i64>().is_ok(), "{k}\t{v}");
    }
    let n = |k: &str| kv[k].parse::<i64>().expect("a number");
    assert!(n("zk_ephemerals_count") >= 1);
    assert_eq!(n("zk_watch_count"), 1);
    assert!(n("zk_global_sessions") >= 1);
    assert!(n("zk_num_alive_connections") >= 1);
    assert_eq!(n("zk_znode_count"), count(&srvr, "Node count:"));
    assert!(n("zk_open_file_descriptor_count") > 0);
    assert!(
        !kv.contains_key("zk_peer_state"),
        "a standalone server has no peer state"
    );

    // conf: ZooKeeper's standalone keys, in its order.
    let conf = word(addr, "conf");
    let keys: Vec<&str> = conf
        .lines()
        .map(|l| {
            l.split_once('=')
                .unwrap_or_else(|| panic!("conf line {l:?}"))
                .0
        })
        .collect();
    assert_eq!(
        keys,
        [
            "clientPort",
            "secureClientPort",
            "dataDir",
            "dataDirSize",
            "dataLogDir",
            "dataLogSize",
            "tickTime",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "clientPortListenBacklog",
            "serverId",
        ],
        "{conf}"
    );
    assert!(conf.starts_with(&format!(
        "clientPort={}\nsecureClientPort=-1\n",
        addr.port()
    )));
    assert!(
        conf.contains("\ntickTime=2000\n")
            && conf.contains("\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n"),
        "{conf}"
    );

    // dirs.
    assert_eq!(
        shapes(&word(addr, "dirs")),
        ["datadir_size: N", "logdir_size: N"]
    );

    // envi: `Environment:` then `key=value` lines; kazoo's server_version() parses
    // `zookeeper.version=`.
    let envi = word(addr, "envi");
    let mut lines = envi.lines();
    assert_eq!(lines.next(), Some("Environment:"));
    let env: BTreeMap<&str, &str> = lines
        .map(|l| {
            l.split_once('=')
                .unwrap_or_else(|| panic!("envi line {l:?}"))
        })
        .collect();
    assert_version(env["zookeeper.version"]);
    for k in [
        "host.name",
        "java.version",
        "os.name",
        "os.arch",
        "user.name",
        "user.dir",
    ] {
        assert!(env.contains_key(k), "no {k} in envi:\n{envi}");
    }
    drop(w);
}

#[test]
fn four_letter_words_have_zookeepers_formats() {
    match std::env::var("ZAB_REFERENCE_ZK") {
        Ok(a) if !a.is_empty() => check_words(a.parse().expect("ZAB_REFERENCE_ZK=host:port")),
        _ => {
            let s = Standalone::start("", &[]);
            check_words(s.addr);
        }
    }
}

#[test]
fn a_word_off_the_whitelist_is_refused_like_zookeeper() {
    let s = Standalone::start("4lw.commands.whitelist=srvr, ruok\n", &[]);
    assert_eq!(word(s.addr, "ruok"), "imok");
    assert!(word(s.addr, "srvr").contains("\nMode: standalone\n"));
    for w in [
        "stat", "mntr", "conf", "cons", "wchs", "envi", "dirs", "isro", "dump", "wchc",
    ] {
        assert_eq!(
            word(s.addr, w),
            format!("{w} is not executed because it is not in the whitelist.\n"),
        );
    }
    // The server goes on serving clients.
    let (mut w, _) = Wire::session(s.addr).expect("session");
    let r = w.call(&Request::Ping, IO).expect("ping");
    assert_eq!(r.header.err, 0);
}
