//! The `rheo` binary: `rheo serve` runs the server; the other subcommands are operator tools
//! (they talk to a running server over gRPC, except `verify`, which reads a data directory).

mod bench;
mod bench_fanout;
mod client;
mod config;
mod consumer;
mod disk_floor;
mod keys;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rheo_server::{Ops, ServeOptions};
use rheo_storage::{Clock, OffsetClock, SystemClock};
use rheo_streams::Store;

#[derive(Debug, Parser)]
#[command(
    name = "rheo",
    version,
    about = "A durable, self-hosted stream store with the Kinesis data model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(config::ServeArgs),
    /// Check every log in a data directory and report corruption (exit 1 if any). Encrypted
    /// segments are decrypted and checked with the keyring (`--keyring`, RHEO_KEYRING, or the
    /// data directory's default keyring); without one their checksums are checked and a
    /// warning says their records were not.
    Verify {
        /// The data directory (the server need not be stopped, but a live one may show torn tails).
        data_dir: std::path::PathBuf,
        /// The keyring file.
        #[arg(long, env = "RHEO_KEYRING_FILE")]
        keyring: Option<std::path::PathBuf>,
    },
    /// Create, list, describe or delete streams.
    Stream(client::StreamArgs),
    /// Put records read from stdin, one per line.
    Put(client::PutArgs),
    /// Read records from a stream.
    Read(client::ReadArgs),
    /// Register, list or deregister enhanced fan-out consumers.
    Consumer(consumer::ConsumerArgs),
    /// Manage the keyring of encrypted streams: create, list, rotate, alias, disable, retire.
    Keys(keys::KeysArgs),
    /// Move a testbed server's clock.
    Clock(client::ClockArgs),
    /// A live per-shard view of a server: rates, lag, disk (from its /metrics).
    Stats(stats::StatsArgs),
    /// Check a server's health endpoint (exit 0 on 200); for container health checks.
    Probe(stats::ProbeArgs),
    /// Load-test a running server (start it with --no-limits).
    Bench(bench::BenchArgs),
    /// Measure enhanced fan-out put-to-delivery latency and CPU (start the server with --no-limits).
    BenchFanout(bench_fanout::BenchFanoutArgs),
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RHEO_LOG").unwrap_or_else(|_| "info".into());
    let json = std::env::var("RHEO_LOG_FORMAT").is_ok_and(|format| format == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = terminate.recv() => tracing::info!("received SIGTERM"),
    }
}

/// Open files each shard keeps: its active segment, its active index and its lock file (sealed
/// segments are memory-mapped, and a map holds no descriptor).
const FILES_PER_SHARD: u64 = 3;
/// Descriptors kept for everything but shards: the journal, listeners, connections.
const FILES_RESERVED: u64 = 4096;

/// Raises the soft open-file limit to the hard limit, and returns the shard limit the server
/// can hold with it: `shard_limit` if it fits or was set explicitly (`explicit`, then with a
/// warning), else as many shards as the descriptors allow beside the reserve.
fn fit_shard_limit(shard_limit: u32, explicit: bool) -> u32 {
    let wanted = u64::from(shard_limit) * FILES_PER_SHARD + FILES_RESERVED;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            return shard_limit;
        }
    };
    if limit >= wanted {
        tracing::info!(open_file_limit = limit, shard_limit, "open-file limit");
        return shard_limit;
    }
    let fits = (limit.saturating_sub(FILES_RESERVED) / FILES_PER_SHARD).min(u64::from(u32::MAX));
    if explicit {
        tracing::warn!(
            open_file_limit = limit,
            shard_limit,
            needed = wanted,
            "the open-file limit cannot hold shard_limit shards ({FILES_PER_SHARD} files each plus {FILES_RESERVED} for connections): raise the hard limit (LimitNOFILE, ulimit -Hn) or lower shard_limit"
        );
        return shard_limit;
    }
    tracing::warn!(
        open_file_limit = limit,
        shard_limit = fits,
        "the open-file limit holds fewer shards than the default shard_limit: lowered to fit ({FILES_PER_SHARD} files each plus {FILES_RESERVED} for connections); raise the hard limit (LimitNOFILE, ulimit -Hn) for more"
    );
    fits as u32
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    let mut config = args.resolve()?;
    config.store.shard_limit = fit_shard_limit(config.store.shard_limit, config.shard_limit_set);
    let testbed = config.testbed_clock.then(OffsetClock::new);
    let clock: Arc<dyn Clock> = match &testbed {
        Some(clock) => {
            tracing::warn!("running on the testbed clock: `rheo clock advance` moves time forward");
            Arc::new(clock.clone())
        }
        None => Arc::new(SystemClock),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let kinesis_listener = match config.kinesis_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address}"))?,
        ),
        None => None,
    };
    if let Some(files) = &config.tls {
        // Refuse bad certificate files before anything starts.
        files
            .acceptor()
            .context("loading the TLS certificate and key")?;
    }
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding {}", config.metrics_listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        metrics = %metrics_listener.local_addr()?,
        data_dir = %config.store.data_dir.display(),
        durability = ?config.store.durability,
        limits = config.store.limits.enabled,
        "rheo starting"
    );
    // The operations endpoint comes up first: readiness and recovery progress are visible
    // while the data directory opens.
    let ops = Ops::new();
    let (stop_ops, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops_task = tokio::spawn(rheo_server::serve_ops(
        metrics_listener,
        ops.clone(),
        async {
            let _ = ops_stopped.await;
        },
    ));
    let progress = ops.progress();
    let data_dir = config.store.data_dir.clone();
    let opening = async move {
        Store::open_with_progress(config.store, clock, progress)
            .await
            .inspect_err(|error| {
                tracing::error!(data_dir = %data_dir.display(), %error, "opening the data directory failed");
            })
    };
    let options = ServeOptions {
        testbed_clock: testbed,
        ops,
        shutdown_delay: config.shutdown_delay,
        authentication: config.authentication.clone(),
        tls: config.tls.clone(),
        kinesis_listener,
        request_body_timeout: None,
        connections: config.connections,
    };
    let served = rheo_server::run(listener, opening, options, shutdown_signal()).await;
    let _ = stop_ops.send(());
    ops_task.await??;
    served.map_err(|error| anyhow::anyhow!(error))
}

fn verify(
    data_dir: &std::path::Path,
    keyring: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    use rheo_streams::keyring::{DEFAULT_KEYRING_FILE, KEYRING_ENV, Keyring, KeyringSource};
    let default = data_dir.join(DEFAULT_KEYRING_FILE);
    let source = match (keyring, std::env::var(KEYRING_ENV).ok()) {
        (Some(path), _) => Some(KeyringSource::File(path)),
        (None, Some(json)) => Some(KeyringSource::Inline(json)),
        (None, None) if default.exists() => Some(KeyringSource::File(default)),
        (None, None) => None,
    };
    let keys: Option<Arc<dyn rheo_storage::KeyProvider>> = match source {
        Some(source) => Some(Arc::new(Keyring::open(source, data_dir)?)),
        None => None,
    };
    let report = rheo_storage::verify_tree_with_keys(&rheo_storage::io::StdFs, data_dir, keys)?;
    println!("{report}");
    // Stream metadata is the streams layer's: a damaged file keeps its stream out of service.
    let metadata = rheo_streams::check_stream_metadata(data_dir);
    for (path, reason) in &metadata {
        println!("corruption: {}: {reason}", path.display());
    }
    if !metadata.is_empty() {
        println!("{} stream metadata file(s) damaged", metadata.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::from(report.exit_code()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Verify { data_dir, keyring } => verify(&data_dir, keyring),
        Command::Stream(args) => client::stream(args).await,
        Command::Put(args) => client::put(args).await,
        Command::Read(args) => client::read(args).await,
        Command::Consumer(args) => consumer::consumer(args).await,
        Command::Clock(args) => client::clock(args).await,
        Command::Keys(args) => keys::keys(args),
        Command::Stats(args) => stats::stats(args).await,
        Command::Probe(args) => stats::probe(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchFanout(args) => bench_fanout::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
