//! Measurements that are not load: time from `kill -9` of the leader to the first successful
//! write, time until a server serves again (its `srvr` names a mode), which server leads.

use crate::session::{Session, four_letter_word, srvr_mode};
use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zab_zk::proto::{CreateRequest, Request, SetDataRequest, ids};

const FOURLW_TIMEOUT: Duration = Duration::from_secs(2);

/// The `Mode:` of each server (`None`: down or not serving).
pub async fn modes(servers: &[SocketAddr]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for &a in servers {
        let m = four_letter_word(a, "srvr", FOURLW_TIMEOUT)
            .await
            .ok()
            .and_then(|s| srvr_mode(&s).map(str::to_string));
        out.push(m);
    }
    out
}

/// Waits until every server in `servers` serves and, if `one_leader`, exactly one of them
/// leads (or is standalone). Returns the time waited.
pub async fn wait_serving(
    servers: &[SocketAddr],
    one_leader: bool,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let m = modes(servers).await;
        let serving = m.iter().all(Option::is_some);
        let leaders = m
            .iter()
            .filter(|x| matches!(x.as_deref(), Some("leader" | "standalone")))
            .count();
        if serving && (!one_leader || leaders == 1) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            bail!("not serving after {timeout:?}: {m:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Milliseconds from `since_unix_ns` (e.g. `date +%s%N` taken before starting a process)
/// until now.
pub fn ms_since_unix_ns(since_unix_ns: u128) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    now.saturating_sub(since_unix_ns) as f64 / 1e6
}

async fn write_once(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut s = Session::connect(addr, Duration::from_secs(1), 10_000).await?;
    let h = s
        .call(
            &Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"failover")),
                version: -1,
            }),
            Duration::from_secs(3),
        )
        .await?;
    let _ = s
        .call(&Request::CloseSession, Duration::from_millis(200))
        .await;
    if h.err != 0 {
        bail!("setData {path}: error {}", h.err);
    }
    Ok(())
}

/// Creates `path` (if missing) through any server.
pub async fn ensure_node(servers: &[SocketAddr], path: &str) -> anyhow::Result<()> {
    let mut last = None;
    for &a in servers {
        let r = async {
            let mut s = Session::connect(a, Duration::from_secs(2), 10_000).await?;
            let h = s
                .call(
                    &Request::Create(CreateRequest {
                        path: path.into(),
                        data: None,
                        acl: ids::open_acl_unsafe(),
                        flags: 0,
                    }),
                    Duration::from_secs(5),
                )
                .await?;
            let _ = s
                .call(&Request::CloseSession, Duration::from_millis(500))
                .await;
            if h.err != 0 && h.err != -110 {
                bail!("create {path}: error {}", h.err);
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no server")))
}

/// Sends SIGKILL to `pid`, then tries to write `path` through every server in parallel (a
/// new session each attempt) until one write succeeds; returns the time from the signal.
pub async fn failover(
    servers: &[SocketAddr],
    pid: i32,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    ensure_node(servers, path)
        .await
        .context("creating the failover node")?;
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .with_context(|| format!("kill -9 {pid}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for &a in servers {
        let path = path.to_string();
        tasks.spawn(async move {
            loop {
                if write_once(a, &path).await.is_ok() {
                    return Some(t0.elapsed());
                }
                if t0.elapsed() > timeout {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(d)) = r {
            tasks.abort_all();
            return Ok(d);
        }
    }
    bail!("no write succeeded within {timeout:?} of kill -9 {pid}")
}
