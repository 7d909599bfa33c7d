//! `rheo serve` settings: flags, then environment variables, then an optional TOML file, then
//! defaults. Every setting and its default is listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use rheo_storage::Durability;
use rheo_streams::{FanOutConfig, LimitsOverride, ShardLimits, StoreConfig};
use serde::Deserialize;

/// Flags of `rheo serve` (each also readable from the environment).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "RHEO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory [default: ./rheo-data].
    #[arg(long, env = "RHEO_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address to serve gRPC on [default: 127.0.0.1:4567].
    #[arg(long, env = "RHEO_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// When a put is acknowledged: `sync` (on disk), `interval:<ms>` or `none` [default: sync].
    #[arg(long, env = "RHEO_DURABILITY")]
    pub(crate) durability: Option<String>,
    /// Switch the per-shard throughput limits and enhanced fan-out push shaping off (load tests).
    #[arg(long, env = "RHEO_NO_LIMITS")]
    pub(crate) no_limits: bool,
    /// Run on a clock that `rheo clock advance` can move forward (retention testbed).
    #[arg(long, env = "RHEO_TESTBED_CLOCK")]
    pub(crate) testbed_clock: bool,
    /// Shortest retention accepted, in hours [default: 24; 1 allows testbed retention].
    #[arg(long, env = "RHEO_MIN_RETENTION_HOURS")]
    pub(crate) min_retention_hours: Option<u32>,
    /// Shard iterator lifetime in seconds [default: 300].
    #[arg(long, env = "RHEO_ITERATOR_TTL_SECS")]
    pub(crate) iterator_ttl_secs: Option<u64>,
    /// Address of /metrics, /healthz and /readyz [default: 127.0.0.1:4568].
    #[arg(long, env = "RHEO_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// After SIGTERM, how long to keep serving while reporting not ready, e.g. `5s`
    /// [default: 0s].
    #[arg(long, env = "RHEO_SHUTDOWN_DELAY")]
    pub(crate) shutdown_delay: Option<String>,
    /// Kinesis HTTP authentication: `any` (any well-formed SigV4 signature) or `sigv4`
    /// (verify against the `[auth.access_keys]` of the configuration file) [default: any].
    #[arg(long, env = "RHEO_AUTH")]
    pub(crate) auth: Option<String>,
    /// Serve the Kinesis HTTP API on this address instead of the gRPC port (which then serves
    /// gRPC only) [default: unset: both on --listen].
    #[arg(long, env = "RHEO_KINESIS_LISTEN")]
    pub(crate) kinesis_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve TLS (ALPN h2, http/1.1) on every API port; needs
    /// --tls-key [default: unset: clear text].
    #[arg(long, env = "RHEO_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RHEO_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Keyring of encrypted streams' keys (a JSON file only its owner may read; `rheo keys`
    /// manages it). The environment variable RHEO_KEYRING may hold the keyring's JSON
    /// instead [default: <data_dir>/keyring.json, created at first start].
    #[arg(long, env = "RHEO_KEYRING_FILE")]
    pub(crate) keyring: Option<PathBuf>,
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    durability: Option<String>,
    testbed_clock: Option<bool>,
    min_retention_hours: Option<u32>,
    iterator_ttl_secs: Option<u64>,
    segment_max_bytes: Option<u64>,
    region: Option<String>,
    account_id: Option<String>,
    shard_limit: Option<u32>,
    limits: Option<LimitsOverride>,
    fan_out: Option<FanOutFile>,
    reshard_delay: Option<String>,
    metrics_listen: Option<SocketAddr>,
    shutdown_delay: Option<String>,
    auth: Option<AuthFile>,
    kinesis_listen: Option<SocketAddr>,
    tls: Option<TlsFile>,
    journal: Option<JournalFile>,
    encryption: Option<EncryptionFile>,
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
}

/// The `[encryption]` table: where the keyring is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionFile {
    keyring: Option<PathBuf>,
}

/// The keyring source: a file from the flag or the `[encryption]` table, or the JSON in
/// RHEO_KEYRING, or the default under the data directory.
fn keyring_source(
    flag: Option<PathBuf>,
    file: Option<EncryptionFile>,
    inline: Option<String>,
) -> anyhow::Result<rheo_streams::keyring::KeyringSource> {
    use rheo_streams::keyring::KeyringSource;
    let path = flag.or(file.and_then(|table| table.keyring));
    Ok(match (path, inline) {
        (Some(_), Some(_)) => bail!(
            "the keyring is given twice: as a file and in {}; choose one",
            rheo_streams::keyring::KEYRING_ENV
        ),
        (Some(path), None) => KeyringSource::File(path),
        (None, Some(json)) => KeyringSource::Inline(json),
        (None, None) => KeyringSource::Default,
    })
}

/// The `[journal]` table: when the node journal is checkpointed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    checkpoint_bytes: Option<u64>,
    checkpoint_interval: Option<String>,
}

impl JournalFile {
    fn apply(self, config: &mut rheo_storage::JournalConfig) -> anyhow::Result<()> {
        if let Some(bytes) = self.checkpoint_bytes {
            if bytes < 1024 * 1024 {
                bail!("journal.checkpoint_bytes must be at least 1048576, got {bytes}");
            }
            config.checkpoint_bytes = bytes;
        }
        if let Some(text) = &self.checkpoint_interval {
            let interval = parse_duration(text).context("journal.checkpoint_interval")?;
            if interval.is_zero() {
                bail!("journal.checkpoint_interval must be positive");
            }
            config.checkpoint_interval = interval;
        }
        Ok(())
    }
}

/// The `[tls]` table: certificate chain and key, PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
}

/// The `[auth]` table: how Kinesis HTTP requests are authenticated.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    /// `any` or `sigv4`.
    mode: Option<String>,
    /// Access key id -> secret access key, for `sigv4`.
    #[serde(default)]
    access_keys: std::collections::BTreeMap<String, String>,
}

/// The `[fan_out]` table: enhanced fan-out settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FanOutFile {
    max_consumers_per_stream: Option<u32>,
    max_creating_consumers: Option<u32>,
    activation_delay: Option<String>,
    heartbeat: Option<String>,
    session_lifetime: Option<String>,
    takeover_after: Option<String>,
    /// 0 switches shaping off.
    rate_bytes_per_sec: Option<u64>,
    event_max_bytes: Option<usize>,
}

impl FanOutFile {
    fn apply(self, config: &mut FanOutConfig) -> anyhow::Result<()> {
        let positive = |name: &str, text: &str| -> anyhow::Result<Duration> {
            let duration = parse_duration(text).with_context(|| format!("fan_out.{name}"))?;
            if duration.is_zero() {
                bail!("fan_out.{name} must be positive");
            }
            Ok(duration)
        };
        if let Some(max) = self.max_consumers_per_stream {
            config.max_consumers_per_stream = max;
        }
        if let Some(max) = self.max_creating_consumers {
            config.max_creating_consumers = max.max(1);
        }
        if let Some(text) = self.activation_delay {
            config.activation_delay = parse_duration(&text).context("fan_out.activation_delay")?;
        }
        if let Some(text) = self.heartbeat {
            config.heartbeat = positive("heartbeat", &text)?;
        }
        if let Some(text) = self.session_lifetime {
            config.session_lifetime = positive("session_lifetime", &text)?;
        }
        if let Some(text) = self.takeover_after {
            config.takeover_after = parse_duration(&text).context("fan_out.takeover_after")?;
        }
        if let Some(rate) = self.rate_bytes_per_sec {
            config.rate_bytes_per_sec = (rate > 0).then_some(rate);
        }
        if let Some(bytes) = self.event_max_bytes {
            if bytes == 0 {
                bail!("fan_out.event_max_bytes must be positive");
            }
            config.event_max_bytes = bytes;
        }
        if config.session_lifetime < config.takeover_after {
            // Every resubscription would be refused by the 5-second rule until the earlier
            // session is `takeover_after` old.
            bail!(
                "fan_out.session_lifetime ({:?}) must be at least fan_out.takeover_after ({:?})",
                config.session_lifetime,
                config.takeover_after
            );
        }
        Ok(())
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) metrics_listen: SocketAddr,
    pub(crate) shutdown_delay: Duration,
    pub(crate) testbed_clock: bool,
    pub(crate) authentication: rheo_server::Authentication,
    pub(crate) kinesis_listen: Option<SocketAddr>,
    pub(crate) tls: Option<rheo_server::TlsFiles>,
    /// True when the file sets `shard_limit`: it is then kept even above what the open-file
    /// limit can hold (with a warning); the default is lowered to fit instead.
    pub(crate) shard_limit_set: bool,
    pub(crate) connections: rheo_server::ConnectionLimits,
    pub(crate) store: StoreConfig,
}

fn authentication(
    mode: Option<&str>,
    file: AuthFile,
) -> anyhow::Result<rheo_server::Authentication> {
    match mode.or(file.mode.as_deref()).unwrap_or("any") {
        "any" => Ok(rheo_server::Authentication::accept_any()),
        "sigv4" => {
            if file.access_keys.is_empty() {
                bail!("auth mode sigv4 needs at least one key in [auth.access_keys]");
            }
            Ok(rheo_server::Authentication::verify(file.access_keys))
        }
        other => bail!("auth must be `any` or `sigv4`, got {other:?}"),
    }
}

fn parse_durability(text: &str) -> anyhow::Result<Durability> {
    match text {
        "sync" => Ok(Durability::Sync),
        "none" => Ok(Durability::None),
        other => match other.strip_prefix("interval:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms > 0 => Ok(Durability::Interval(Duration::from_millis(ms))),
            _ => bail!("durability must be `sync`, `none` or `interval:<ms>`, got {other:?}"),
        },
    }
}

impl ServeArgs {
    /// Merges flags, environment, file and defaults.
    pub(crate) fn resolve(&self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
        };
        let mut store = StoreConfig::default();
        if let Some(dir) = self.data_dir.clone().or(file.data_dir) {
            store.data_dir = dir;
        }
        if let Some(text) = self.durability.as_deref().or(file.durability.as_deref()) {
            store.durability = parse_durability(text)?;
        }
        if let Some(hours) = self.min_retention_hours.or(file.min_retention_hours) {
            if !(1..=8760).contains(&hours) {
                bail!("min_retention_hours must be between 1 and 8760, got {hours}");
            }
            store.min_retention_hours = hours;
        }
        if let Some(secs) = self.iterator_ttl_secs.or(file.iterator_ttl_secs) {
            if secs == 0 {
                bail!("iterator_ttl_secs must be positive");
            }
            store.iterator_ttl = Duration::from_secs(secs);
        }
        if let Some(bytes) = file.segment_max_bytes {
            store.segment_max_bytes = bytes;
        }
        file.journal.unwrap_or_default().apply(&mut store.journal)?;
        store.keyring = keyring_source(
            self.keyring.clone(),
            file.encryption,
            std::env::var(rheo_streams::keyring::KEYRING_ENV).ok(),
        )?;
        if let Some(region) = file.region {
            store.region = region;
        }
        if let Some(account) = file.account_id {
            store.account_id = account;
        }
        if let Some(text) = &file.reshard_delay {
            store.reshard_delay = parse_duration(text).context("reshard_delay")?;
        }
        let shard_limit_set = file.shard_limit.is_some();
        if let Some(limit) = file.shard_limit {
            store.shard_limit = limit;
        }
        store.limits = file
            .limits
            .unwrap_or_default()
            .apply(&ShardLimits::default());
        store.limits.enabled &= !self.no_limits;
        file.fan_out.unwrap_or_default().apply(&mut store.fan_out)?;
        if self.no_limits {
            store.fan_out.rate_bytes_per_sec = None;
        }
        let shutdown_delay = match self
            .shutdown_delay
            .as_deref()
            .or(file.shutdown_delay.as_deref())
        {
            Some(text) => parse_duration(text).context("shutdown_delay")?,
            None => Duration::ZERO,
        };
        let mut connections = rheo_server::ConnectionLimits::default();
        if let Some(max) = file.max_connections {
            if max == 0 {
                bail!("max_connections must be at least 1");
            }
            connections.max_connections = max;
        }
        if let Some(text) = &file.idle_timeout {
            let idle = parse_duration(text).context("idle_timeout")?;
            if idle < Duration::from_secs(1) {
                bail!("idle_timeout must be at least 1s, got {text}");
            }
            connections.idle_timeout = idle;
        }
        let authentication = authentication(self.auth.as_deref(), file.auth.unwrap_or_default())?;
        let tls = match (self.tls_cert.clone(), self.tls_key.clone(), file.tls) {
            (Some(cert), Some(key), _) => Some(rheo_server::TlsFiles { cert, key }),
            (_, _, Some(table)) => Some(rheo_server::TlsFiles {
                cert: table.cert,
                key: table.key,
            }),
            _ => None,
        };
        Ok(ServeConfig {
            authentication,
            kinesis_listen: self.kinesis_listen.or(file.kinesis_listen),
            tls,
            metrics_listen: self
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| "127.0.0.1:4568".parse().expect("valid address")),
            shutdown_delay,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:4567".parse().expect("valid address")),
            testbed_clock: self.testbed_clock || file.testbed_clock.unwrap_or(false),
            shard_limit_set,
            connections,
            store,
        })
    }
}

/// Parses `36h`, `90m`, `15s`, `500ms`, `2d`.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("no number in duration {text:?}"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("duration {text:?} needs a unit: ms, s, m, h or d"),
    };
    Ok(Duration::from_millis(number * ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_policies_parse() {
        assert_eq!(
            parse_duration("36h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("36").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(
            parse_durability("interval:10").unwrap(),
            Durability::Interval(Duration::from_millis(10))
        );
        assert!(parse_durability("fast").is_err());
    }

    #[test]
    fn the_fan_out_table_sets_every_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rheo.toml");
        std::fs::write(
            &path,
            "reshard_delay = \"500ms\"\nmax_connections = 100\nidle_timeout = \"90s\"\n[journal]\ncheckpoint_bytes = 2097152\ncheckpoint_interval = \"5s\"\n[fan_out]\nmax_consumers_per_stream = 50\nheartbeat = \"2s\"\nsession_lifetime = \"1h\"\ntakeover_after = \"0s\"\nrate_bytes_per_sec = 0\nevent_max_bytes = 65536\nactivation_delay = \"3s\"\n[encryption]\nkeyring = \"/etc/rheo/keyring.json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            data_dir: None,
            listen: None,
            durability: None,
            no_limits: false,
            testbed_clock: false,
            min_retention_hours: None,
            iterator_ttl_secs: None,
            metrics_listen: None,
            shutdown_delay: None,
            auth: None,
            kinesis_listen: None,
            tls_cert: None,
            tls_key: None,
            keyring: None,
        };
        let resolved = args.resolve().unwrap();
        assert_eq!(
            resolved.connections,
            rheo_server::ConnectionLimits {
                max_connections: 100,
                idle_timeout: Duration::from_secs(90),
            }
        );
        let store = resolved.store;
        assert_eq!(
            store.keyring,
            rheo_streams::keyring::KeyringSource::File("/etc/rheo/keyring.json".into())
        );
        assert_eq!(store.reshard_delay, Duration::from_millis(500));
        assert_eq!(store.journal.checkpoint_bytes, 2 * 1024 * 1024);
        assert_eq!(store.journal.checkpoint_interval, Duration::from_secs(5));
        let fan_out = store.fan_out;
        assert_eq!(fan_out.max_consumers_per_stream, 50);
        assert_eq!(fan_out.heartbeat, Duration::from_secs(2));
        assert_eq!(fan_out.session_lifetime, Duration::from_secs(3600));
        assert_eq!(fan_out.takeover_after, Duration::ZERO);
        assert_eq!(fan_out.rate_bytes_per_sec, None);
        assert_eq!(fan_out.event_max_bytes, 65536);
        assert_eq!(fan_out.activation_delay, Duration::from_secs(3));
        std::fs::write(&path, "[journal]\ncheckpoint_bytes = 10\n").unwrap();
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.contains("checkpoint_bytes"), "{error}");
        std::fs::write(&path, "[fan_out]\nheartbeat = \"0s\"\n").unwrap();
        assert!(args.resolve().is_err(), "a zero heartbeat is refused");
        std::fs::write(&path, "[fan_out]\nsession_lifetime = \"3s\"\n").unwrap();
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.contains("takeover_after"), "{error}");
    }
}
