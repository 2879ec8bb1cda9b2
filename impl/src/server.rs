//! Assembling a running server from its configuration: storage recovery, the log writer, the
//! replica thread, peer networking, the client port and the metrics endpoint.
//!
//! Start-up refuses, with a message naming the file and offset, a data directory whose log or
//! snapshots are corrupt in the middle (a torn tail is cut with a warning); a storage error
//! while running stops the server (exit code 2) rather than pretending.

use crate::config::ServerConfig;
use crate::core::{PeerConfig, TraceEvent};
use crate::metrics::Status;
use crate::net::{self, NetConfig, NetState, QuorumSender};
use crate::quorum_tls::{MemberHost, QuorumTls};
use crate::runtime::{self, Event, Replica};
use crate::service::client::{self, ClientPortConfig, Security};
use crate::service::{ClientEvent, ServiceConfig, ZkService};
use crate::storage::{LogWriter, StdFs, Storage, StorageConfig, WriterEvent};
use crate::wire::PayloadCodec;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};
use zab_spec::Zxid;
use zab_zk::DataTree;

/// Options beyond the ZooKeeper configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Write a trace record (NDJSON) of every model action to this file.
    pub trace_file: Option<PathBuf>,
    /// The super user's digest (`super:<base64 sha1>`).
    pub super_digest: Option<String>,
    /// How often the leader looks for empty containers, ms (default 60 000).
    pub container_check_ms: Option<i64>,
}

/// A trace event as one JSON line (the format `zab-refinement`'s `ndjson` module reads): the
/// wall-clock time in nanoseconds (`t`, for merging the files of several servers), the action,
/// the servers, the payload (base64 of its encoding), and the projection of the state.
#[must_use]
pub fn trace_json<P: PayloadCodec>(ev: &TraceEvent<P>, t_nanos: u128) -> String {
    use base64::Engine as _;
    let s = &ev.summary;
    let payload = ev.payload.as_ref().map(|p| {
        let mut buf = bytes::BytesMut::new();
        p.encode(&mut buf);
        base64::engine::general_purpose::STANDARD.encode(&buf)
    });
    serde_json::json!({
        "t": t_nanos.to_string(),
        "action": ev.action,
        "i": ev.i.0,
        "j": ev.j.map(|j| j.0),
        "payload": payload,
        "state": format!("{:?}", s.state),
        "zab_state": format!("{:?}", s.zab_state),
        "accepted_epoch": s.accepted_epoch.0,
        "current_epoch": s.current_epoch.0,
        "snapshot": s.snapshot.to_string(),
        "log": s.log.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "persisted": s.persisted.to_string(),
        "committed": s.committed.to_string(),
        "recovering": s.recovering,
    })
    .to_string()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs a server until it is stopped (SIGINT/SIGTERM) or fails.
pub fn run(cfg: ServerConfig, opts: RunOptions) -> anyhow::Result<()> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    std::fs::create_dir_all(&cfg.data_log_dir)
        .with_context(|| format!("cannot create {}", cfg.data_log_dir.display()))?;
    let mut storage_cfg = StorageConfig::new(&cfg.data_dir, &cfg.data_log_dir);
    storage_cfg.snap_retain_count = cfg.snap_retain_count;
    let (storage, recovered) = Storage::open(Arc::new(StdFs), &storage_cfg)
        .map_err(|e| anyhow::anyhow!("cannot start from {}: {e}", cfg.data_dir.display()))?;
    let snapshot_zxid = recovered.snapshot_zxid();
    // Decoded from the file straight into the tree (the snapshot is never in memory whole).
    let tree = match &recovered.snapshot {
        Some(s) => crate::service::tree_from_snapshot(&s.data).map_err(|e| {
            anyhow::anyhow!(
                "snapshot {} in {} is unreadable: {e}",
                s.zxid,
                cfg.data_dir.display()
            )
        })?,
        None => DataTree::new(),
    };
    info!(
        myid = cfg.myid.0,
        snapshot = %snapshot_zxid,
        txns = recovered.txns.len(),
        accepted_epoch = recovered.accepted_epoch.0,
        current_epoch = recovered.current_epoch.0,
        "recovered"
    );
    let servers = cfg.server_ids();
    if recovered.recovering && servers.len() == 1 {
        // §7.1: a damaged server is restored by its peers; alone, it has none, and starting
        // would serve a history that may lack acknowledged writes.
        anyhow::bail!(
            "cannot start from {}: its durable state is damaged ({}), and a single-server \
             ensemble has no peer to restore it from. Restore the data directory from a backup; \
             or, to accept the loss of what the damage took, delete {} and start again",
            cfg.data_dir.display(),
            if recovered.damage.is_empty() {
                "the recovering flag is set".to_owned()
            } else {
                recovered.damage.join("; ")
            },
            cfg.data_dir
                .join(crate::storage::LAYOUT_DIR)
                .join(crate::storage::RECOVERING_FILE)
                .display()
        );
    }
    if recovered.recovering {
        tracing::warn!(
            myid = cfg.myid.0,
            "starting in the recovering state: not a candidate, votes and ACKs not counted, \
             until a leader established by intact servers restores this server"
        );
    }
    let mut peer_cfg = PeerConfig::new(cfg.myid, servers.clone());
    peer_cfg.observers = cfg.observer_ids();
    peer_cfg.tick_ms = cfg.tick_ms;
    peer_cfg.init_limit = cfg.init_limit;
    peer_cfg.sync_limit = cfg.sync_limit;
    peer_cfg.commit_log_count = cfg.commit_log_count;
    peer_cfg.trace = opts.trace_file.is_some();
    let peer = runtime::recover_peer::<zab_zk::Txn>(peer_cfg, &recovered)
        .map_err(|e| anyhow::anyhow!("cannot start from {}: {e}", cfg.data_dir.display()))?;
    // The log records read back (their payloads now decoded into the core) are not kept.
    drop(recovered);

    let (events_tx, events_rx) = std::sync::mpsc::channel::<Event<zab_zk::Txn, ClientEvent>>();
    let writer_events = events_tx.clone();
    let status = Arc::new(Status::default());
    let breakdown = Arc::clone(&status.breakdown);
    let writer = Arc::new(
        LogWriter::spawn(storage, move |ev| {
            if let WriterEvent::Durable {
                zxid, fsync_micros, ..
            } = &ev
            {
                // Stamped on the writer thread, as the fsync returns.
                breakdown.durable_through(*zxid, *fsync_micros, std::time::Instant::now());
            }
            let _ = writer_events.send(Event::Writer(ev));
        })
        .map_err(|e| anyhow::anyhow!("cannot start the log writer: {e}"))?,
    );

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("zab-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    // `status` is the one created before the log writer: its breakdown is the one the
    // writer's report stamps (`durable`, `log.fsync`). A second `Status` here (left by a
    // merge) made those stamps land in an orphan, so `leader.durable` never showed.
    // Directory sizes and file descriptors for dirs, conf, mntr, the AdminServer and
    // /metrics, measured here so that none of them walks a directory on the replica thread.
    crate::metrics::spawn_disk_usage(
        &status,
        cfg.data_dir.clone(),
        cfg.data_log_dir.clone(),
        Duration::from_secs(1),
    );
    let net_state = Arc::new(NetState::default());
    // A SNAP from the leader is written into the snapshot directory as it arrives.
    let _ = net_state
        .snap_spool
        .set(cfg.data_dir.join(crate::storage::LAYOUT_DIR));
    let (net_tx, quorum) = start_network(&cfg, &tokio_rt, &net_state, &events_tx, &status)?;

    let port_cfg = ClientPortConfig {
        max_frame: cfg.jute_max_buffer,
        max_per_ip: cfg.max_client_cnxns,
        four_letter_words: cfg.four_letter_words.clone(),
        // ZooKeeper drops a connection without a session after
        // `zookeeper.nio.sessionlessCnxnTimeout` (10 s; checked by tests/bad_input.rs).
        handshake_timeout: Duration::from_secs(10),
        output_soft_limit: cfg.bounds.client_output_soft,
        max_outstanding: cfg.bounds.client_outstanding_limit,
        outstanding: crate::service::backpressure::Outstanding::new(
            cfg.bounds.global_outstanding_limit,
            cfg.bounds.global_outstanding_bytes,
        ),
        breakdown: Some(Arc::clone(&status.breakdown)),
    };
    start_client_ports(&cfg, &tokio_rt, &events_tx, &port_cfg)?;
    if let Some(addr) = cfg.metrics_addr {
        let st = Arc::clone(&status);
        let zk: Option<crate::metrics::ZkQuery> = cfg.zookeeper_metrics.then(|| {
            let events = events_tx.clone();
            Arc::new(move |reply| {
                events
                    .send(Event::Client(ClientEvent::Metrics { reply }))
                    .is_ok()
            }) as crate::metrics::ZkQuery
        });
        tokio_rt.spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, st, zk).await {
                error!("metrics endpoint stopped: {e}");
            }
        });
    }
    if let Some(admin) = cfg.admin.clone() {
        let events = events_tx.clone();
        let query: crate::admin::AdminQuery = Arc::new(move |command, reply| {
            events
                .send(Event::Client(ClientEvent::Admin { command, reply }))
                .is_ok()
        });
        tokio_rt.spawn(async move {
            // Like ZooKeeper, a server whose AdminServer cannot start keeps serving.
            if let Err(e) = crate::admin::serve(admin.addr, admin.command_url, query).await {
                warn!("AdminServer not started: {e}");
            }
        });
    }
    let stop_tx = events_tx.clone();
    tokio_rt.spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        info!("stopping");
        let _ = stop_tx.send(Event::Shutdown);
    });

    let service = ZkService::new(
        ServiceConfig {
            super_digest: opts.super_digest.clone(),
            session_secret: random_secret()?,
            container_check_ms: opts.container_check_ms.unwrap_or(60_000),
            server: cfg.clone(),
        },
        tree,
        snapshot_zxid.max(Zxid::ZERO),
        runtime::wall_clock_ms(),
    );
    let mut replica = Replica::new(
        peer,
        service,
        Arc::clone(&writer),
        net_tx,
        net_state,
        events_tx,
        Arc::clone(&status),
        cfg.snap_count,
    )
    .with_snap_size_limit((cfg.bounds.snap_size_limit_kb as u64).saturating_mul(1024));
    if let Some(quorum) = quorum {
        replica = replica.with_quorum_sender(quorum);
    }
    if let Some(path) = &opts.trace_file {
        let sink = trace_sink(path, &replica, cfg.myid)?;
        replica = replica.with_trace(sink);
    }
    let result = replica.run(events_rx);
    if let Err(e) = writer.shutdown() {
        warn!("log writer shutdown: {e}");
    }
    tokio_rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| anyhow::anyhow!("storage failure, stopping: {e}"))
}

/// Binds the client ports: `clientPort` (plaintext, or both with `client.portUnification`)
/// and `secureClientPort` (TLS, configured by the `ssl.*` keys). A TLS configuration that
/// does not load (a missing store, a wrong password, a key that does not fit) stops the
/// start with the reason, rather than serving without the port the operator asked for.
fn start_client_ports(
    cfg: &ServerConfig,
    tokio_rt: &tokio::runtime::Runtime,
    events_tx: &std::sync::mpsc::Sender<Event<zab_zk::Txn, ClientEvent>>,
    port_cfg: &ClientPortConfig,
) -> anyhow::Result<()> {
    let acceptor = if cfg.secure_client_addr.is_some() || cfg.client_port_unification {
        let tls = cfg
            .client_tls
            .server_config()
            .context("cannot set up TLS for the client port")?;
        Some(tokio_rustls::TlsAcceptor::from(tls))
    } else {
        None
    };
    let mut ports = Vec::new();
    if cfg.client_port_plaintext {
        let security = match (&acceptor, cfg.client_port_unification) {
            (Some(a), true) => Security::Unified(a.clone()),
            _ => Security::Plain,
        };
        ports.push((cfg.client_addr, security, "client port"));
    }
    if let (Some(addr), Some(a)) = (cfg.secure_client_addr, &acceptor) {
        ports.push((addr, Security::Tls(a.clone()), "secure client port"));
    }
    if ports.is_empty() {
        anyhow::bail!("no client port: set clientPort or secureClientPort");
    }
    for (addr, security, what) in ports {
        let listener = tokio_rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on the {what} {addr}"))?;
        tokio_rt.spawn(client::serve(
            listener,
            events_tx.clone(),
            port_cfg.clone(),
            security,
        ));
    }
    Ok(())
}

/// Starts peer networking (an ensemble only; a standalone server gets a command channel no
/// one reads). Peer events go straight onto the replica thread's channel, like the log
/// writer's reports; the replica thread writes quorum frames itself (the [`QuorumSender`]).
fn start_network(
    cfg: &ServerConfig,
    tokio_rt: &tokio::runtime::Runtime,
    net_state: &Arc<NetState>,
    events_tx: &std::sync::mpsc::Sender<Event<zab_zk::Txn, ClientEvent>>,
    status: &Status,
) -> anyhow::Result<NetStarted> {
    let servers = cfg.server_ids();
    if cfg.members.len() <= 1 {
        return Ok((net::Commands::channel(1).0, None));
    }
    let tls = quorum_tls(cfg)?;
    match &tls {
        None => warn_plaintext_quorum(servers.len()),
        Some(t) if t.accepts_plaintext() => warn!(
            ssl_quorum = cfg.ssl_quorum,
            port_unification = cfg.port_unification,
            "SECURITY: the quorum and election ports still accept PLAINTEXT peers \
             (portUnification=true or sslQuorum=false, for a rolling switch to TLS): until \
             every member runs sslQuorum=true without portUnification, any process that \
             reaches them can pose as a member; see README, Security."
        ),
        Some(_) => info!("quorum TLS: every peer link is TLS with mutual authentication"),
    }
    if tls.as_ref().is_some_and(|t| !t.hostname_verification()) {
        warn!(
            "SECURITY: ssl.quorum.hostnameVerification=false: any certificate the trust store \
             trusts can pose as any member (unless it carries zab:server.N URIs)"
        );
    }
    let net_cfg = NetConfig {
        me: cfg.myid,
        election: cfg
            .members
            .iter()
            .map(|m| (m.id, m.election_addr))
            .collect(),
        quorum: cfg.members.iter().map(|m| (m.id, m.quorum_addr)).collect(),
        ensemble: crate::wire::ensemble_fingerprint_with_observers(&servers, &cfg.observer_ids()),
        jute_max_buffer: cfg.jute_max_buffer,
        live_window: Duration::from_millis(cfg.tick_ms.saturating_mul(2)),
        tls,
        send_queue_limit: cfg.bounds.peer_send_queue,
        inbox_limit: cfg.bounds.peer_inbox,
        breakdown: Some(Arc::clone(&status.breakdown)),
    };
    let net_events = events_tx.clone();
    let sink: net::NetSink<zab_zk::Txn> =
        Box::new(move |ev| net_events.send(Event::Net(ev)).is_ok());
    let (tx, quorum) = tokio_rt
        .block_on(net::start(net_cfg, Arc::clone(net_state), sink))
        .context("cannot start peer networking")?;
    Ok((tx, Some(quorum)))
}

/// The network's command sender and, in an ensemble, the replica thread's direct sender.
type NetStarted = (
    net::Commands<zab_zk::Txn>,
    Option<QuorumSender<zab_zk::Txn>>,
);

/// 32 random bytes from the operating system: this process's key for new sessions'
/// passwords (they travel in the `createSession`, so no other server needs it).
fn random_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness from the operating system"))?;
    Ok(secret)
}

/// The quorum's TLS, when `sslQuorum` or `portUnification` asks for it: the stores are read
/// now, so a bad store stops the start with a message naming the key and the file.
fn quorum_tls(cfg: &ServerConfig) -> anyhow::Result<Option<Arc<QuorumTls>>> {
    if !cfg.ssl_quorum && !cfg.port_unification {
        return Ok(None);
    }
    let members = cfg
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                MemberHost {
                    host: m.host.clone(),
                    ip: m.quorum_addr.ip(),
                },
            )
        })
        .collect();
    let tls = QuorumTls::new(
        &cfg.quorum_tls,
        members,
        cfg.ssl_quorum,
        cfg.port_unification,
    )
    .context("cannot set up quorum TLS (sslQuorum)")?;
    Ok(Some(Arc::new(tls)))
}

/// Without `sslQuorum` the peer ports carry no authentication: say loudly
/// what anyone who reaches them can do, so that no one runs this on a shared network unaware.
fn warn_plaintext_quorum(members: usize) {
    warn!(
        members,
        "SECURITY: the quorum and election ports are PLAINTEXT and UNAUTHENTICATED. Any process \
         that reaches them can pose as a member: vote itself leader and commit forged writes, \
         acknowledge proposals for stopped followers (acknowledged writes can then be lost), \
         or forward writes with super-user rights past every ACL. Set sslQuorum=true (README, \
         Security), or bind them to loopback for development only."
    );
}

/// Opens the trace file, writes its first record (this process starts from its durable
/// state: `NodeRestart`), and returns the sink that appends every later one.
fn trace_sink(
    path: &std::path::Path,
    replica: &Replica<zab_zk::Txn, ZkService>,
    myid: zab_spec::ServerId,
) -> anyhow::Result<runtime::TraceSink<zab_zk::Txn>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the trace file {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let start: TraceEvent<zab_zk::Txn> = TraceEvent {
        action: zab_spec::ActionKind::NodeRestart,
        i: myid,
        j: None,
        payload: None,
        summary: replica.peer().summary(),
    };
    writeln!(out, "{}", trace_json(&start, now_nanos()))
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write the trace file {}", path.display()))?;
    Ok(Box::new(move |ev: &TraceEvent<zab_zk::Txn>| {
        if writeln!(out, "{}", trace_json(ev, now_nanos()))
            .and_then(|()| out.flush())
            .is_err()
        {
            warn!("cannot write the trace file");
        }
    }))
}
