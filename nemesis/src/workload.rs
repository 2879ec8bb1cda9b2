//! Client workloads through the Rust `zookeeper-client` crate: a versioned register over
//! rotating keys, unique creates, and sessions owning ephemeral nodes. Every operation is
//! logged before it is sent and when it completes; timeouts and lost connections are
//! indeterminate.

use crate::check::linear::{RegCall, RegRet};
use crate::check::sets::EphExpect;
use crate::cluster::{CLIENT_PORT, SESSION_TIMEOUT};
use crate::history::{Call, History, Reply, Status};
use crate::topology::Topology;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, timeout};
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, Error};

/// Persistent nodes open to all.
pub const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

/// What the workloads share.
pub struct Ctx {
    /// The history.
    pub hist: Arc<History>,
    /// Connect string of every server.
    pub hosts: String,
    /// Set when the workloads must stop.
    pub stop: AtomicBool,
    /// How long a client waits for a reply before calling the operation indeterminate.
    pub op_timeout: Duration,
    /// How long each register key is in use.
    pub rotate_ms: u64,
    values: AtomicU64,
    /// Ephemeral nodes and what must be true of them at the end.
    pub eph_expect: Mutex<BTreeMap<String, EphExpect>>,
    /// Ephemeral nodes seen missing while their session was alive.
    pub eph_violations: Mutex<Vec<String>>,
}

impl Ctx {
    /// A context for `servers` servers.
    #[must_use]
    pub fn new(hist: Arc<History>, servers: u64, op_timeout: Duration, rotate_ms: u64) -> Ctx {
        Ctx {
            hist,
            hosts: hosts(1..=servers),
            stop: AtomicBool::new(false),
            op_timeout,
            rotate_ms,
            values: AtomicU64::new(1),
            eph_expect: Mutex::new(BTreeMap::new()),
            eph_violations: Mutex::new(Vec::new()),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn current_key(&self) -> String {
        format!("/reg/k{}", self.hist.now_us() / 1000 / self.rotate_ms)
    }

    fn expect(&self, path: &str, e: EphExpect) {
        if let Ok(mut m) = self.eph_expect.lock() {
            m.insert(path.to_string(), e);
        }
    }
}

/// The connect string of the given servers.
pub fn hosts(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter()
        .map(|id| format!("{}:{CLIENT_PORT}", Topology::server_addr(id)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A session on `hosts`, or `None` if none could be made within a few seconds.
pub async fn connect(hosts: &str, session_timeout: Duration) -> Option<Client> {
    let c = Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_millis(1500))
        .connect(hosts);
    match timeout(Duration::from_secs(6), c).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

fn classify(e: &Error) -> (Status, Option<RegRet>) {
    match e {
        Error::NoNode => (Status::Fail, Some(RegRet::NoNode)),
        Error::NodeExists => (Status::Fail, Some(RegRet::Exists)),
        Error::BadVersion => (Status::Fail, Some(RegRet::BadVersion)),
        _ => (Status::Info, None),
    }
}

fn value_of(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

async fn reg_call(client: &Client, key: &str, call: RegCall) -> Result<RegRet, Error> {
    match call {
        RegCall::Create => client
            .create(key, b"0", &PERSISTENT)
            .await
            .map(|_| RegRet::Created),
        RegCall::Read => {
            client.sync(key).await?;
            let (data, stat) = client.get_data(key).await?;
            Ok(RegRet::Value(value_of(&data), stat.version))
        }
        RegCall::Write(v) => client
            .set_data(key, v.to_string().as_bytes(), None)
            .await
            .map(|s| RegRet::Written(s.version)),
        RegCall::Cas(v, want) => client
            .set_data(key, v.to_string().as_bytes(), Some(want))
            .await
            .map(|s| RegRet::Written(s.version)),
    }
}

/// Runs one logged operation with the context's timeout; `Err(None)` is indeterminate.
async fn logged<T>(
    ctx: &Ctx,
    client: &str,
    key: &str,
    call: Call,
    fut: impl Future<Output = Result<T, Error>>,
    ok: impl FnOnce(&T) -> Reply,
) -> Result<T, Option<Error>> {
    let id = ctx.hist.invoke(client, key, call);
    match timeout(ctx.op_timeout, fut).await {
        Ok(Ok(v)) => {
            ctx.hist
                .complete(id, Status::Ok, Some(ok(&v)), String::new());
            Ok(v)
        }
        Ok(Err(e)) => {
            let (status, reg) = classify(&e);
            let reply = match (&status, reg) {
                (Status::Fail, Some(r)) => Some(Reply::Reg(r)),
                _ => None,
            };
            ctx.hist.complete(id, status, reply, e.to_string());
            Err(Some(e))
        }
        Err(_) => {
            ctx.hist
                .complete(id, Status::Info, None, "client timeout".into());
            Err(None)
        }
    }
}

/// A register client: create the current key, then reads (`sync` + `getData`), blind writes
/// and conditional writes on the version last seen.
pub async fn register_worker(ctx: Arc<Ctx>, idx: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let name = format!("reg{idx}");
    while !ctx.stopped() {
        let Some(client) = connect(&ctx.hosts, SESSION_TIMEOUT).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut created: HashSet<String> = HashSet::new();
        let mut versions: HashMap<String, i32> = HashMap::new();
        while !ctx.stopped() && !client.state().is_terminated() {
            let key = ctx.current_key();
            let call = if !created.contains(&key) {
                RegCall::Create
            } else {
                match rng.random_range(0..10) {
                    0..4 => RegCall::Read,
                    4..7 => RegCall::Write(ctx.values.fetch_add(1, Ordering::Relaxed)),
                    _ => RegCall::Cas(
                        ctx.values.fetch_add(1, Ordering::Relaxed),
                        versions.get(&key).copied().unwrap_or(0),
                    ),
                }
            };
            let r = logged(
                &ctx,
                &name,
                &key,
                Call::Reg(call),
                reg_call(&client, &key, call),
                |r| Reply::Reg(*r),
            )
            .await;
            let ret = match r {
                Ok(r) => Some(r),
                Err(Some(e)) => classify(&e).1,
                Err(None) => None,
            };
            match ret {
                Some(RegRet::Created | RegRet::Exists) => {
                    created.insert(key);
                }
                Some(RegRet::Value(_, v) | RegRet::Written(v)) => {
                    versions.insert(key, v);
                }
                _ => {}
            }
            sleep(Duration::from_millis(rng.random_range(5..25))).await;
        }
    }
}

/// A unique-create client: `/set/<client>-<n>`, never retried under the same name.
pub async fn set_worker(ctx: Arc<Ctx>, idx: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let name = format!("set{idx}");
    let mut n = 0u64;
    while !ctx.stopped() {
        let Some(client) = connect(&ctx.hosts, SESSION_TIMEOUT).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        while !ctx.stopped() && !client.state().is_terminated() {
            let child = format!("{name}-{n}");
            n += 1;
            let path = format!("/set/{child}");
            let _ = logged(
                &ctx,
                &name,
                &path,
                Call::Add(child),
                client.create(&path, b"", &PERSISTENT),
                |_| Reply::Done,
            )
            .await;
            sleep(Duration::from_millis(rng.random_range(10..40))).await;
        }
    }
}

/// A session owning one ephemeral node: checks (`sync` + `exists`) that it is there while the
/// session lives; now and then closes the session (the node must go at once). Returns the
/// client and node still alive when the run stops.
pub async fn ephemeral_worker(ctx: Arc<Ctx>, idx: usize, seed: u64) -> Option<(Client, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let name = format!("eph{idx}");
    let mut generation = 0u64;
    while !ctx.stopped() {
        let Some(client) = connect(&ctx.hosts, SESSION_TIMEOUT).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        generation += 1;
        let path = format!("/eph/{name}-{generation}");
        let created = logged(
            &ctx,
            &name,
            &path,
            Call::EphCreate(path.clone()),
            client.create(&path, b"", &EPHEMERAL),
            |_| Reply::Done,
        )
        .await;
        // Whatever happened, the node must be gone once this session ends.
        ctx.expect(&path, EphExpect::Gone);
        if created.is_err() {
            continue;
        }
        ctx.expect(&path, EphExpect::Alive);
        loop {
            if ctx.stopped() {
                return Some((client, path));
            }
            sleep(Duration::from_millis(300)).await;
            if rng.random_range(0..40) == 0 {
                break; // dropping the only client closes the session
            }
            let check = logged(
                &ctx,
                &name,
                &path,
                Call::EphCheck(path.clone()),
                async {
                    client.sync("/eph").await?;
                    client.check_stat(&path).await
                },
                |s| {
                    if s.is_some() {
                        Reply::Done
                    } else {
                        Reply::Absent
                    }
                },
            )
            .await;
            match check {
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Gone: fine only if the session is in fact over (the reply may have raced
                    // its expiry). Ask again after twice the session timeout.
                    sleep(SESSION_TIMEOUT * 2).await;
                    if let Ok(Ok(_)) = timeout(ctx.op_timeout, client.check_stat("/")).await {
                        if let Ok(mut v) = ctx.eph_violations.lock() {
                            v.push(format!(
                                "{path} absent at {:.1}s while its session stayed alive",
                                ctx.hist.now_us() as f64 / 1e6
                            ));
                        }
                    }
                    break;
                }
                Err(_) if client.state().is_terminated() => break,
                Err(_) => {}
            }
        }
        ctx.expect(&path, EphExpect::Gone);
        drop(client);
    }
    None
}
