//! Server configuration: ZooKeeper's `zoo.cfg` keys (so an existing ensemble's configuration
//! works unchanged), overridden by command-line flags, validated with clear errors.
//!
//! Accepted `zoo.cfg` keys: `server.N=host:quorumPort:electionPort[:participant][;[host:]clientPort]`,
//! `dataDir`, `dataLogDir`, `clientPort`, `clientPortAddress`, `tickTime`, `initLimit`,
//! `syncLimit`, `maxClientCnxns`, `snapCount`, `commitLogCount` (also as ZooKeeper's system
//! property name `zookeeper.commitLogCount`), `autopurge.snapRetainCount`,
//! `4lw.commands.whitelist`, `jute.maxbuffer`, `extendedTypesEnabled`,
//! `metricsProvider.className`, `metricsProvider.httpPort`, `metricsProvider.httpHost`,
//! `admin.enableServer`, `admin.serverAddress`, `admin.serverPort`, `admin.commandURL`,
//! `minSessionTimeout`, `maxSessionTimeout`; quorum TLS: `sslQuorum`, `portUnification`,
//! `ssl.quorum.*` ([`crate::tls`] lists them); client TLS: `secureClientPort`,
//! `secureClientPortAddress`, `client.portUnification`, the `ssl.*` keys and
//! `X509AuthenticationProvider.superUser` (`serverCnxnFactory` and an `authProvider.N` naming
//! ZooKeeper's `X509AuthenticationProvider` are accepted: zabd's client port always has what
//! they enable); the queue bounds of [`crate::bounds`] (`globalOutstandingLimit`, ...).
//! Others are ignored with a warning. The server id comes from `dataDir/myid`,
//! as in ZooKeeper.

use crate::tls::{CLIENT_PREFIX, QUORUM_PREFIX, TlsError, TlsSettings};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use zab_spec::ServerId;

/// A configuration problem, with enough context to fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A line that is not `key=value`.
    #[error("{file}:{line}: expected key=value, got {text:?}")]
    Syntax {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value of the wrong shape.
    #[error("{key}: {message} (got {value:?})")]
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What was expected.
        message: String,
    },
    /// An inconsistent whole.
    #[error("{0}")]
    Invalid(String),
    /// A file that could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        message: String,
    },
}

/// One ensemble member (`server.N=host:quorumPort:electionPort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `N`.
    pub id: ServerId,
    /// The host as written in `server.N` (a name or an IP literal): quorum TLS checks the
    /// member's certificate against it.
    pub host: String,
    /// Where followers connect to it when it leads.
    pub quorum_addr: SocketAddr,
    /// Where election notifications reach it.
    pub election_addr: SocketAddr,
    /// Its client address, when the `;clientPort` suffix gives it.
    pub client_addr: Option<SocketAddr>,
    /// Listed as `:observer` (`spec/PROTOCOL.md` §10.2): a learner that never votes.
    pub observer: bool,
}

impl Member {
    /// The role as ZooKeeper writes it in `server.N` (`participant` or `observer`).
    #[must_use]
    pub fn role(&self) -> &'static str {
        if self.observer {
            "observer"
        } else {
            "participant"
        }
    }
}

/// Everything a server needs to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This server's id (`myid`).
    pub myid: ServerId,
    /// The ensemble; a single member (or none, standalone) is its own quorum.
    pub members: Vec<Member>,
    /// Snapshots, epoch files, `myid`.
    pub data_dir: PathBuf,
    /// Transaction log segments (defaults to `data_dir`).
    pub data_log_dir: PathBuf,
    /// The client port address.
    pub client_addr: SocketAddr,
    /// Whether the plaintext client port listens: off when `zoo.cfg` gives `secureClientPort`
    /// and no `clientPort` (ZooKeeper then has no plaintext port).
    pub client_port_plaintext: bool,
    /// `secureClientPortAddress:secureClientPort`: the TLS client port, if any.
    pub secure_client_addr: Option<SocketAddr>,
    /// `client.portUnification`: the plaintext client port also accepts TLS connections.
    pub client_port_unification: bool,
    /// The client port's TLS settings (`ssl.*`).
    pub client_tls: TlsSettings,
    /// `X509AuthenticationProvider.superUser`: the certificate subject (RFC 2253, as Java
    /// writes it) that is the super user.
    pub x509_super_user: Option<String>,
    /// ZooKeeper's `tickTime`, ms.
    pub tick_ms: u64,
    /// `initLimit`, ticks.
    pub init_limit: u32,
    /// `syncLimit`, ticks.
    pub sync_limit: u32,
    /// Client connections per IP (0 = unlimited).
    pub max_client_cnxns: u32,
    /// Delivered transactions between snapshots.
    pub snap_count: u64,
    /// Snapshots kept on disk.
    pub snap_retain_count: usize,
    /// `commitLogCount`: committed transactions whose payloads stay in memory for DIFFs;
    /// older ones are read back from the log on disk.
    pub commit_log_count: usize,
    /// Four-letter words allowed on the client port.
    pub four_letter_words: Vec<String>,
    /// `jute.maxbuffer`: the largest client frame.
    pub jute_max_buffer: usize,
    /// Whether TTL nodes are enabled (`extendedTypesEnabled`).
    pub extended_types: bool,
    /// Prometheus metrics endpoint, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether `/metrics` also exports ZooKeeper's metric names (`metricsProvider.className`
    /// is ZooKeeper's [`PROMETHEUS_PROVIDER`]).
    pub zookeeper_metrics: bool,
    /// ZooKeeper's AdminServer (`admin.*`), if enabled.
    pub admin: Option<AdminConfig>,
    /// Session timeout bounds, ms (ZooKeeper: 2 and 20 ticks by default).
    pub min_session_timeout_ms: u64,
    /// Upper session timeout bound, ms.
    pub max_session_timeout_ms: u64,
    /// `sslQuorum`: peer links over TLS with mutual authentication.
    pub ssl_quorum: bool,
    /// `portUnification`: the peer ports also accept plaintext peers (a rolling switch).
    pub port_unification: bool,
    /// The `ssl.quorum.*` keys.
    pub quorum_tls: TlsSettings,
    /// The bounds on client and peer queues (issue 12).
    pub bounds: crate::bounds::Bounds,
    /// `peerType` as written (`Some(true)` for `observer`). The `server.N` list decides, as
    /// in ZooKeeper; a mismatch is warned about when the file is loaded.
    pub peer_type_observer: Option<bool>,
    /// `reconfigEnabled` (ZooKeeper's default `false`). The `reconfig` request itself is not
    /// built yet (`spec/PROTOCOL.md` §10.3): it is answered with `ReconfigDisabled` either way.
    pub reconfig_enabled: bool,
    /// The configuration's version (§10.1): the hexadecimal suffix of `dynamicConfigFile`'s
    /// name (`zoo.cfg.dynamic.100000000`), 0 for a `zoo.cfg` that lists its servers itself.
    /// `/zookeeper/config` ends with it (`version=100000000`).
    pub config_version: u64,
}

/// `metricsProvider.className` of ZooKeeper's Prometheus provider.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// ZooKeeper's AdminServer settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// `admin.serverAddress:admin.serverPort` (ZooKeeper: `0.0.0.0:8080`).
    pub addr: SocketAddr,
    /// `admin.commandURL` (ZooKeeper: `/commands`).
    pub command_url: String,
}

/// The four-letter words enabled when `4lw.commands.whitelist` is not set: ZooKeeper 3.8's
/// default, `srvr` only (the others tell an anonymous client about sessions, addresses,
/// configuration and the host's environment).
pub const DEFAULT_4LW: &[&str] = &["srvr"];

/// Every word this server answers: what `4lw.commands.whitelist=*` enables.
pub const ALL_4LW: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "wchs", "envi", "dirs", "isro",
];

impl ServerConfig {
    /// The embedded default: a standalone server on `127.0.0.1:2181` with data in `./zab-data`.
    #[must_use]
    pub fn standalone_default() -> ServerConfig {
        ServerConfig {
            myid: ServerId(1),
            members: Vec::new(),
            data_dir: PathBuf::from("zab-data"),
            data_log_dir: PathBuf::from("zab-data"),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 2181)),
            client_port_plaintext: true,
            secure_client_addr: None,
            client_port_unification: false,
            client_tls: TlsSettings::new(CLIENT_PREFIX),
            x509_super_user: None,
            tick_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            max_client_cnxns: 60,
            snap_count: 100_000,
            snap_retain_count: 3,
            commit_log_count: crate::core::DEFAULT_COMMIT_LOG_COUNT,
            four_letter_words: DEFAULT_4LW.iter().map(|s| s.to_string()).collect(),
            jute_max_buffer: 0xfffff,
            extended_types: false,
            metrics_addr: None,
            zookeeper_metrics: false,
            admin: None,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40_000,
            ssl_quorum: false,
            port_unification: false,
            quorum_tls: TlsSettings::new(QUORUM_PREFIX),
            bounds: crate::bounds::Bounds::default(),
            peer_type_observer: None,
            reconfig_enabled: false,
            config_version: 0,
        }
    }

    /// The ensemble's voting server ids (`[myid]` when standalone); observers are not
    /// among them (`observer_ids`).
    #[must_use]
    pub fn server_ids(&self) -> Vec<ServerId> {
        if self.members.is_empty() {
            vec![self.myid]
        } else {
            self.members
                .iter()
                .filter(|m| !m.observer)
                .map(|m| m.id)
                .collect()
        }
    }

    /// The ensemble's observers (`server.N=...:observer`, §10.2).
    #[must_use]
    pub fn observer_ids(&self) -> Vec<ServerId> {
        self.members
            .iter()
            .filter(|m| m.observer)
            .map(|m| m.id)
            .collect()
    }

    /// Whether this server is an observer.
    #[must_use]
    pub fn is_observer(&self) -> bool {
        self.me().is_some_and(|m| m.observer)
    }

    /// The membership in ZooKeeper's text form (`QuorumMaj.toString`), as `/zookeeper/config`
    /// holds it and `conf` prints it: one `server.N=ip:quorumPort:electionPort:role[;client]`
    /// line per member, then `version=<hex>`, with no final newline.
    #[must_use]
    pub fn membership_text(&self) -> String {
        let mut text = String::new();
        for m in &self.members {
            text.push_str(&format!(
                "server.{}={}:{}:{}:{}",
                m.id.0,
                m.quorum_addr.ip(),
                m.quorum_addr.port(),
                m.election_addr.port(),
                m.role()
            ));
            if let Some(c) = m.client_addr {
                text.push_str(&format!(";{c}"));
            }
            text.push('\n');
        }
        text.push_str(&format!("version={:x}", self.config_version));
        text
    }

    /// This server's member entry.
    #[must_use]
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.myid)
    }

    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_ms == 0 || self.init_limit == 0 || self.sync_limit == 0 {
            return Err(ConfigError::Invalid(
                "tickTime, initLimit and syncLimit must be positive".into(),
            ));
        }
        if !self.members.is_empty() {
            let mut ids: Vec<u64> = self.members.iter().map(|m| m.id.0).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return Err(ConfigError::Invalid("duplicate server.N ids".into()));
            }
            if self.me().is_none() {
                return Err(ConfigError::Invalid(format!(
                    "myid {} is not one of the configured servers {ids:?}",
                    self.myid.0
                )));
            }
            if self.members.iter().all(|m| m.observer) {
                return Err(ConfigError::Invalid(
                    "every server.N is an observer: an ensemble needs at least one voter \
                     (participant)"
                        .into(),
                ));
            }
        }
        self.bounds
            .validate(self.jute_max_buffer)
            .map_err(bounds_err)?;
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(ConfigError::Invalid(
                "minSessionTimeout exceeds maxSessionTimeout".into(),
            ));
        }
        Ok(())
    }
}

impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> ConfigError {
        match e {
            TlsError::Value {
                key,
                value,
                message,
            } => ConfigError::Value {
                key,
                value,
                message,
            },
            other => ConfigError::Invalid(other.to_string()),
        }
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(value_err(key, value, "expected true or false")),
    }
}

fn bounds_err(e: crate::bounds::BoundsError) -> ConfigError {
    match e {
        crate::bounds::BoundsError::Value { key, value } => {
            value_err(&key, &value, "expected a non-negative integer")
        }
        crate::bounds::BoundsError::Invalid(message) => ConfigError::Invalid(message),
    }
}

fn value_err(key: &str, value: &str, message: &str) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        value: value.into(),
        message: message.into(),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| value_err(key, value, "expected a non-negative integer"))
}

fn resolve(key: &str, host: &str, port: &str) -> Result<SocketAddr, ConfigError> {
    let port: u16 = parse_num(key, port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| value_err(key, host, &format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| value_err(key, host, "resolves to no address"))
}

/// Parses `host:quorumPort:electionPort[:participant|:observer][;[host:]clientPort]`.
pub fn parse_member(key: &str, id: u64, value: &str) -> Result<Member, ConfigError> {
    let (addrs, client) = match value.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (value, None),
    };
    let parts: Vec<&str> = addrs.split(':').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return Err(value_err(
            key,
            value,
            "expected host:quorumPort:electionPort",
        ));
    }
    let observer = match parts.get(3).map(|r| r.trim()) {
        None | Some("participant") => false,
        Some("observer") => true,
        Some(_) => {
            return Err(value_err(
                key,
                value,
                "the role after the election port must be participant or observer",
            ));
        }
    };
    let quorum_addr = resolve(key, parts[0], parts[1])?;
    let election_addr = resolve(key, parts[0], parts[2])?;
    let client_addr = match client {
        None => None,
        Some(c) => Some(match c.rsplit_once(':') {
            Some((h, p)) => resolve(key, h, p)?,
            None => resolve(key, "0.0.0.0", c)?,
        }),
    };
    Ok(Member {
        id: ServerId(id),
        host: parts[0]
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        quorum_addr,
        election_addr,
        client_addr,
        observer,
    })
}

/// Reads `key=value` lines (ZooKeeper's `zoo.cfg`), `#` comments, blank lines.
pub fn parse_properties(file: &str, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                file: file.into(),
                line: k + 1,
                text: raw.into(),
            });
        };
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// The `metricsProvider.*` and `admin.*` keys, applied once every key is read.
struct Monitoring {
    metrics_port: Option<u16>,
    metrics_host: Option<String>,
    class_name: Option<String>,
    admin_enabled: bool,
    admin_host: String,
    admin_port: u16,
    admin_url: String,
}

impl Default for Monitoring {
    /// ZooKeeper's AdminServer defaults: enabled, 0.0.0.0:8080, `/commands`.
    fn default() -> Monitoring {
        Monitoring {
            metrics_port: None,
            metrics_host: None,
            class_name: None,
            admin_enabled: true,
            admin_host: "0.0.0.0".into(),
            admin_port: 8080,
            admin_url: "/commands".into(),
        }
    }
}

impl Monitoring {
    /// Takes `key` if it is one of these; `Ok(false)` for any other key.
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "metricsProvider.httpPort" => self.metrics_port = Some(parse_num(key, value)?),
            "metricsProvider.httpHost" => self.metrics_host = Some(value.into()),
            "metricsProvider.className" => self.class_name = Some(value.into()),
            "admin.enableServer" => self.admin_enabled = value.eq_ignore_ascii_case("true"),
            "admin.serverAddress" => self.admin_host = value.into(),
            "admin.serverPort" => self.admin_port = parse_num(key, value)?,
            "admin.commandURL" => {
                if !value.starts_with('/') {
                    return Err(value_err(key, value, "expected a path starting with /"));
                }
                self.admin_url = value.trim_end_matches('/').to_string();
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self, base: &mut ServerConfig) -> Result<(), ConfigError> {
        base.zookeeper_metrics = self.class_name.as_deref() == Some(PROMETHEUS_PROVIDER);
        if let Some(port) = self.metrics_port {
            // zabd's default host is loopback (ZooKeeper's is 0.0.0.0): httpHost widens it.
            let host = self.metrics_host.as_deref().unwrap_or("127.0.0.1");
            let addr = resolve("metricsProvider.httpHost", host, &port.to_string())?;
            base.metrics_addr = Some(addr);
        }
        base.admin = if self.admin_enabled {
            let port = self.admin_port.to_string();
            Some(AdminConfig {
                addr: resolve("admin.serverAddress", &self.admin_host, &port)?,
                command_url: if self.admin_url.is_empty() {
                    "/".into()
                } else {
                    self.admin_url
                },
            })
        } else {
            None
        };
        Ok(())
    }
}

/// The client-TLS keys (`secureClientPort*`, `client.portUnification`, `ssl.*`, the x509
/// super user), applied once every key is read.
#[derive(Default)]
struct SecureClient {
    port: Option<u16>,
    host: Option<String>,
}

/// `authProvider.N` / `ssl.authProvider` values that name what zabd's client port does.
const X509_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

impl SecureClient {
    /// Takes `key` if it is one of these; `Ok(false)` for any other key.
    fn apply(
        &mut self,
        base: &mut ServerConfig,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        match key {
            "secureClientPort" => self.port = Some(parse_num(key, value)?),
            "secureClientPortAddress" => self.host = Some(value.into()),
            "client.portUnification" => {
                base.client_port_unification = value.eq_ignore_ascii_case("true");
            }
            "X509AuthenticationProvider.superUser"
            | "zookeeper.X509AuthenticationProvider.superUser" => {
                if !zab_zk::x509::is_valid_dn(value) {
                    return Err(value_err(
                        key,
                        value,
                        "expected a distinguished name such as CN=admin,O=Example",
                    ));
                }
                base.x509_super_user = Some(value.into());
            }
            // ZooKeeper needs Netty for TLS; zabd's client port is one implementation.
            "serverCnxnFactory" => {}
            k if k.starts_with("authProvider.") && value.trim() == X509_PROVIDER => {}
            _ => {
                return base.client_tls.apply(key, value).map_err(ConfigError::from);
            }
        }
        Ok(true)
    }

    /// `secureClientPortAddress` defaults to every interface, as in ZooKeeper.
    fn finish(self, base: &mut ServerConfig, client_port_given: bool) -> Result<(), ConfigError> {
        if let Some(port) = self.port {
            let host = self.host.as_deref().unwrap_or("0.0.0.0");
            base.secure_client_addr = Some(resolve("secureClientPort", host, &port.to_string())?);
            // Only a secure port: no plaintext one (`--client-addr` still adds one).
            base.client_port_plaintext = client_port_given;
        }
        Ok(())
    }
}

/// Applies `zoo.cfg` properties on top of `base`. `dataDir` is taken relative to `dir` (the
/// directory of the file). Returns the unknown keys, for a warning.
pub fn apply_properties(
    base: &mut ServerConfig,
    props: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<Vec<String>, ConfigError> {
    let mut unknown = Vec::new();
    let mut client_port: Option<u16> = None;
    let mut client_host: Option<String> = None;
    let mut log_dir_set = false;
    let mut members = Vec::new();
    let mut min_timeout = None;
    let mut max_timeout = None;
    let mut monitoring = Monitoring::default();
    let mut secure = SecureClient::default();
    for (key, value) in props {
        if monitoring.apply(key, value)?
            || secure.apply(base, key, value)?
            || base.bounds.apply(key, value).map_err(bounds_err)?
        {
            continue;
        }
        if base
            .quorum_tls
            .apply(key, value)
            .map_err(ConfigError::from)?
        {
            continue;
        }
        match key.as_str() {
            "dataDir" => base.data_dir = dir.join(value),
            "dataLogDir" => {
                base.data_log_dir = dir.join(value);
                log_dir_set = true;
            }
            "clientPort" => client_port = Some(parse_num(key, value)?),
            "clientPortAddress" => client_host = Some(value.clone()),
            "tickTime" => base.tick_ms = parse_num(key, value)?,
            "initLimit" => base.init_limit = parse_num(key, value)?,
            "syncLimit" => base.sync_limit = parse_num(key, value)?,
            "maxClientCnxns" => base.max_client_cnxns = parse_num(key, value)?,
            "snapCount" => base.snap_count = parse_num(key, value)?,
            "commitLogCount" | "zookeeper.commitLogCount" => {
                base.commit_log_count = parse_num(key, value)?
            }
            "autopurge.snapRetainCount" => {
                base.snap_retain_count = parse_num::<usize>(key, value)?.max(3)
            }
            "jute.maxbuffer" => base.jute_max_buffer = parse_num(key, value)?,
            "sslQuorum" => base.ssl_quorum = parse_bool(key, value)?,
            "portUnification" => base.port_unification = parse_bool(key, value)?,
            "minSessionTimeout" => min_timeout = Some(parse_num(key, value)?),
            "maxSessionTimeout" => max_timeout = Some(parse_num(key, value)?),
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                base.extended_types = value.eq_ignore_ascii_case("true");
            }
            "4lw.commands.whitelist" => {
                base.four_letter_words = if value.trim() == "*" {
                    ALL_4LW.iter().map(|s| s.to_string()).collect()
                } else {
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                };
            }
            "dynamicConfigFile" => {
                let (dynamic, version) = read_dynamic_config(&dir.join(value))?;
                members.extend(dynamic);
                base.config_version = version;
            }
            k if k.starts_with("server.") && props.contains_key("dynamicConfigFile") => {
                // ZooKeeper: "parameter: server.N must be in a separate dynamic config file".
                return Err(value_err(
                    key,
                    value,
                    "with dynamicConfigFile, the server.N lines belong in that file",
                ));
            }
            k if k.starts_with("server.") => {
                let id: u64 = parse_num(key, &k["server.".len()..])?;
                members.push(parse_member(key, id, value)?);
            }
            "peerType" => {
                base.peer_type_observer = Some(match value.trim() {
                    "observer" => true,
                    "participant" => false,
                    _ => return Err(value_err(key, value, "expected observer or participant")),
                });
            }
            "reconfigEnabled" => base.reconfig_enabled = parse_bool(key, value)?,
            "standaloneEnabled"
            | "autopurge.purgeInterval"
            | "quorumListenOnAllIPs"
            | "electionAlg" => {}
            _ => unknown.push(key.clone()),
        }
    }
    if !log_dir_set {
        base.data_log_dir = base.data_dir.clone();
    }
    monitoring.finish(base)?;
    let client_port_given = client_port.is_some();
    secure.finish(base, client_port_given)?;
    if let Some(port) = client_port {
        let host = client_host.as_deref().unwrap_or("0.0.0.0");
        base.client_addr = resolve("clientPort", host, &port.to_string())?;
    }
    if !members.is_empty() {
        members.sort_by_key(|m| m.id);
        base.members = members;
    }
    base.min_session_timeout_ms = min_timeout.unwrap_or(2 * base.tick_ms);
    base.max_session_timeout_ms = max_timeout.unwrap_or(20 * base.tick_ms);
    Ok(unknown)
}

/// Reads a dynamic configuration file (`dynamicConfigFile`, ZooKeeper 3.5+): `server.N` lines
/// only; the version is the hexadecimal suffix of the file's name (`zoo.cfg.dynamic.100000000`),
/// 0 without one, never a `version` line (ZooKeeper refuses one too).
pub fn read_dynamic_config(path: &Path) -> Result<(Vec<Member>, u64), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: name.clone(),
        message: e.to_string(),
    })?;
    let props = parse_properties(&name, &text)?;
    let mut members = Vec::new();
    for (key, value) in &props {
        let Some(id) = key.strip_prefix("server.") else {
            return Err(ConfigError::Invalid(format!(
                "{name}: {key} does not belong in a dynamic config file (server.N lines only{})",
                if key == "version" {
                    "; the version is the file name's suffix"
                } else {
                    ""
                }
            )));
        };
        members.push(parse_member(key, parse_num(key, id)?, value)?);
    }
    let version = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(|e| u64::from_str_radix(e, 16).ok())
        .unwrap_or(0);
    Ok((members, version))
}

/// Reads `dataDir/myid` (a decimal id, as ZooKeeper writes it).
pub fn read_myid(data_dir: &Path) -> Result<Option<ServerId>, ConfigError> {
    let path = data_dir.join("myid");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id: u64 = text.trim().parse().map_err(|_| ConfigError::Value {
                key: path.display().to_string(),
                value: text.trim().into(),
                message: "expected the server id as a decimal number".into(),
            })?;
            Ok(Some(ServerId(id)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Loads a `zoo.cfg` file on top of the defaults and reads `myid`. Returns the configuration
/// and the keys it did not know.
pub fn load_zoo_cfg(path: &Path) -> Result<(ServerConfig, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let props = parse_properties(&path.display().to_string(), &text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut cfg = ServerConfig::standalone_default();
    cfg.client_addr = SocketAddr::from(([0, 0, 0, 0], 2181));
    let unknown = apply_properties(&mut cfg, &props, dir)?;
    if let Some(id) = read_myid(&cfg.data_dir)? {
        cfg.myid = id;
    } else if cfg.members.len() > 1 {
        return Err(ConfigError::Invalid(format!(
            "{} has no myid file: write this server's id into it (as for ZooKeeper)",
            cfg.data_dir.display()
        )));
    } else if let Some(m) = cfg.members.first() {
        cfg.myid = m.id;
    }
    if let (Some(wanted), Some(me)) = (cfg.peer_type_observer, cfg.me()) {
        if wanted != me.observer {
            // ZooKeeper's `QuorumPeerConfig.setupPeerType`: the servers list wins.
            tracing::warn!(
                peer_type = if wanted { "observer" } else { "participant" },
                server_list = me.role(),
                "peerType does not match this server's server.{} entry; using the server list",
                me.id.0
            );
        }
    }
    Ok((cfg, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zookeeper_ensemble_config_is_accepted() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("myid"), "2\n").expect("myid");
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg_path,
            "# a ZooKeeper 3.8 ensemble\ntickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=data\n\
             clientPort=2182\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889;2182\n\
             server.3=127.0.0.1:2890:3890:participant\n4lw.commands.whitelist=srvr, ruok\n\
             autopurge.purgeInterval=1\nsomething.unknown=1\n",
        )
        .expect("write");
        let (cfg, unknown) = load_zoo_cfg(&cfg_path).expect("parses");
        assert_eq!(cfg.myid, ServerId(2));
        assert_eq!(cfg.members.len(), 3);
        assert_eq!(cfg.members[1].quorum_addr.port(), 2889);
        assert_eq!(cfg.members[1].client_addr.map(|a| a.port()), Some(2182));
        assert_eq!(cfg.client_addr.port(), 2182);
        assert_eq!(cfg.data_log_dir, cfg.data_dir);
        assert_eq!(
            cfg.four_letter_words,
            vec!["srvr".to_string(), "ruok".to_string()]
        );
        assert_eq!(
            (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms),
            (4000, 40_000)
        );
        assert_eq!(unknown, vec!["something.unknown".to_string()]);
        cfg.validate().expect("valid");
        // ZooKeeper's AdminServer defaults; no metrics endpoint unless a port is given.
        let admin = cfg
            .admin
            .as_ref()
            .expect("enabled by default, as in ZooKeeper");
        assert_eq!(admin.addr, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(admin.command_url, "/commands");
        assert_eq!((cfg.metrics_addr, cfg.zookeeper_metrics), (None, false));
    }

    #[test]
    fn metrics_and_admin_keys_are_read() {
        let mut cfg = ServerConfig::standalone_default();
        let props = parse_properties(
            "zoo.cfg",
            &format!(
                "metricsProvider.className={PROMETHEUS_PROVIDER}
metricsProvider.httpPort=7001
                 metricsProvider.httpHost=127.0.0.2
admin.serverAddress=127.0.0.1
                 admin.serverPort=9099
admin.commandURL=/cmds/
"
            ),
        )
        .expect("props");
        let unknown = apply_properties(&mut cfg, &props, Path::new(".")).expect("applies");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(cfg.zookeeper_metrics);
        assert_eq!(
            cfg.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 2], 7001)))
        );
        let admin = cfg.admin.clone().expect("admin");
        assert_eq!(admin.addr, SocketAddr::from(([127, 0, 0, 1], 9099)));
        assert_eq!(admin.command_url, "/cmds");
        let props = parse_properties(
            "zoo.cfg",
            "admin.enableServer=false
",
        )
        .expect("props");
        apply_properties(&mut cfg, &props, Path::new(".")).expect("applies");
        assert_eq!(cfg.admin, None);
        let props = parse_properties(
            "zoo.cfg",
            "admin.commandURL=cmds
",
        )
        .expect("props");
        assert!(apply_properties(&mut cfg, &props, Path::new(".")).is_err());
    }

    #[test]
    fn bad_configs_get_clear_errors() {
        assert_eq!(
            parse_properties("zoo.cfg", "tickTime 2000")
                .unwrap_err()
                .to_string(),
            "zoo.cfg:1: expected key=value, got \"tickTime 2000\""
        );
        let e = parse_member("server.1", 1, "127.0.0.1:2888").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected host:quorumPort:electionPort"),
            "{e}"
        );
        let e = parse_member("server.1", 1, "127.0.0.1:x:3888").unwrap_err();
        assert!(e.to_string().contains("non-negative integer"), "{e}");
        let mut cfg = ServerConfig::standalone_default();
        cfg.members = vec![parse_member("server.2", 2, "127.0.0.1:2888:3888").expect("ok")];
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("myid 1 is not one of")
        );
    }

    #[test]
    fn observers_are_read_from_the_server_list() {
        let mut cfg = ServerConfig::standalone_default();
        let props = parse_properties(
            "zoo.cfg",
            "server.1=127.0.0.1:2888:3888
server.2=127.0.0.1:2889:3889:participant
server.3=127.0.0.1:2890:3890
server.4=127.0.0.1:2891:3891:observer;2184
peerType=observer
",
        )
        .expect("props");
        let unknown = apply_properties(&mut cfg, &props, Path::new(".")).expect("applies");
        assert!(unknown.is_empty(), "{unknown:?}");
        cfg.myid = ServerId(4);
        cfg.validate().expect("valid");
        assert_eq!(
            cfg.server_ids(),
            vec![ServerId(1), ServerId(2), ServerId(3)]
        );
        assert_eq!(cfg.observer_ids(), vec![ServerId(4)]);
        assert!(cfg.is_observer());
        assert_eq!(cfg.peer_type_observer, Some(true));
        assert_eq!(cfg.members[3].role(), "observer");
        assert_eq!(cfg.members[3].client_addr.map(|a| a.port()), Some(2184));
        cfg.myid = ServerId(1);
        assert!(!cfg.is_observer());
        let e = parse_member("server.5", 5, "127.0.0.1:2892:3892:witness").unwrap_err();
        assert!(e.to_string().contains("participant or observer"), "{e}");
        let e = apply_properties(
            &mut cfg,
            &parse_properties("zoo.cfg", "peerType=voter").expect("props"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("observer or participant"), "{e}");
        cfg.members = vec![
            parse_member("server.1", 1, "127.0.0.1:2888:3888:observer").expect("ok"),
            parse_member("server.2", 2, "127.0.0.1:2889:3889:observer").expect("ok"),
        ];
        let e = cfg.validate().unwrap_err();
        assert!(e.to_string().contains("at least one voter"), "{e}");
    }

    #[test]
    fn a_dynamic_config_file_gives_the_members_and_the_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
        std::fs::write(
            &dynamic,
            "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
             server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
             server.3=127.0.0.1:2890:3890:observer;127.0.0.1:2183\n",
        )
        .expect("write");
        let mut cfg = ServerConfig::standalone_default();
        let props = parse_properties(
            "zoo.cfg",
            "dynamicConfigFile=zoo.cfg.dynamic.100000000\nreconfigEnabled=true\n",
        )
        .expect("props");
        let unknown = apply_properties(&mut cfg, &props, dir.path()).expect("applies");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(cfg.reconfig_enabled);
        assert_eq!(cfg.config_version, 0x1_0000_0000);
        assert_eq!(cfg.server_ids(), vec![ServerId(1), ServerId(2)]);
        assert_eq!(cfg.observer_ids(), vec![ServerId(3)]);
        assert_eq!(
            cfg.membership_text(),
            "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
             server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
             server.3=127.0.0.1:2890:3890:observer;127.0.0.1:2183\n\
             version=100000000"
        );
        // server.N lines in both files, a version line, a missing file: clear errors.
        let both = parse_properties(
            "zoo.cfg",
            "dynamicConfigFile=zoo.cfg.dynamic.100000000\nserver.4=127.0.0.1:2891:3891\n",
        )
        .expect("props");
        let e = apply_properties(&mut ServerConfig::standalone_default(), &both, dir.path())
            .unwrap_err();
        assert!(e.to_string().contains("belong in that file"), "{e}");
        std::fs::write(dir.path().join("zoo.cfg.dynamic.2"), "version=2\n").expect("write");
        let e = read_dynamic_config(&dir.path().join("zoo.cfg.dynamic.2")).unwrap_err();
        assert!(e.to_string().contains("file name's suffix"), "{e}");
        let e = read_dynamic_config(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        // Without a hexadecimal suffix the version is 0, as in ZooKeeper.
        std::fs::write(dir.path().join("dyn.cfg"), "server.1=127.0.0.1:2888:3888\n")
            .expect("write");
        let (members, version) = read_dynamic_config(&dir.path().join("dyn.cfg")).expect("ok");
        assert_eq!((members.len(), version), (1, 0));
    }

    #[test]
    fn the_4lw_whitelist_defaults_to_srvr_only_like_zookeeper_3_8() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("zoo.cfg");
        std::fs::write(&p, "dataDir=d\nclientPort=2181\n").expect("write");
        let (cfg, _) = load_zoo_cfg(&p).expect("parses");
        assert_eq!(cfg.four_letter_words, vec!["srvr".to_string()]);
        std::fs::write(&p, "dataDir=d\n4lw.commands.whitelist=*\n").expect("write");
        let (cfg, _) = load_zoo_cfg(&p).expect("parses");
        assert_eq!(cfg.four_letter_words.len(), ALL_4LW.len());
        assert!(cfg.four_letter_words.iter().any(|w| w == "mntr"));
    }

    #[test]
    fn client_tls_keys_are_read_as_zookeeper_names_them() {
        let mut cfg = ServerConfig::standalone_default();
        let props = parse_properties(
            "zoo.cfg",
            "secureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n\
             ssl.keyStore.location=/etc/zk/server.p12\nssl.keyStore.password=pw\n\
             ssl.trustStore.location=/etc/zk/ca.pem\nssl.clientAuth=want\n\
             X509AuthenticationProvider.superUser=CN=admin,O=Example\n",
        )
        .expect("props");
        let unknown = apply_properties(&mut cfg, &props, Path::new(".")).expect("applies");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            cfg.secure_client_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 2281)))
        );
        // Only a secure port: no plaintext one, as in ZooKeeper.
        assert!(!cfg.client_port_plaintext);
        assert_eq!(cfg.client_tls.client_auth, crate::tls::ClientAuth::Want);
        assert_eq!(
            cfg.client_tls.key_store.location,
            Some(PathBuf::from("/etc/zk/server.p12"))
        );
        assert_eq!(cfg.x509_super_user.as_deref(), Some("CN=admin,O=Example"));
        // Both ports; the secure one on every interface by default.
        let mut cfg = ServerConfig::standalone_default();
        let props = parse_properties(
            "zoo.cfg",
            "clientPort=2181\nsecureClientPort=2281\nclient.portUnification=true\n",
        )
        .expect("props");
        apply_properties(&mut cfg, &props, Path::new(".")).expect("applies");
        assert!(cfg.client_port_plaintext && cfg.client_port_unification);
        assert_eq!(
            cfg.secure_client_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 2281)))
        );
        assert_eq!(cfg.client_tls.client_auth, crate::tls::ClientAuth::Need);
        // Bad values are named.
        for (line, wanted) in [
            ("ssl.clientAuth=sometimes", "ssl.clientAuth"),
            ("X509AuthenticationProvider.superUser=admin", "superUser"),
            ("secureClientPort=x", "secureClientPort"),
        ] {
            let props = parse_properties("zoo.cfg", line).expect("props");
            let e = apply_properties(
                &mut ServerConfig::standalone_default(),
                &props,
                Path::new("."),
            )
            .unwrap_err();
            assert!(e.to_string().contains(wanted), "{line}: {e}");
        }
    }

    #[test]
    fn missing_myid_in_an_ensemble_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("zoo.cfg");
        std::fs::write(
            &p,
            "dataDir=d\nserver.1=127.0.0.1:1:2\nserver.2=127.0.0.1:3:4\n",
        )
        .expect("write");
        let e = load_zoo_cfg(&p).unwrap_err();
        assert!(e.to_string().contains("has no myid file"), "{e}");
    }
}
