//! `rheo stats` (a live per-shard view of a server's /metrics, for humans) and `rheo probe` (a
//! health check for container images without curl).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fetches `url` (plain `http://host:port/path`) with HTTP/1.0; returns the status and body.
async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http:// URL"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((status, body.to_string()))
}

/// `rheo probe`
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// What to fetch; success is a 200 answer.
    #[arg(long, default_value = "http://127.0.0.1:4568/readyz")]
    url: String,
}

pub(crate) async fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), http_get(&args.url))
        .await
        .context("no answer within 5 s")??;
    print!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rheo stats`
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// The server's operations endpoint.
    #[arg(
        long,
        env = "RHEO_METRICS_ENDPOINT",
        default_value = "http://127.0.0.1:4568"
    )]
    metrics_endpoint: String,
    /// Time between two views, e.g. `2s`; rates are measured over it.
    #[arg(long, default_value = "2s")]
    interval: String,
    /// Views to print before exiting (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

/// One sample: a metric name, its labels, its value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the samples of an OpenMetrics text page (`name{k="v",...} value`).
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_string(), value.trim_matches('"').to_string()))
            .collect();
        samples.insert((name.to_string(), labels), value);
    }
    samples
}

/// Per-shard figures out of two samples `seconds` apart.
#[derive(Debug, Default, PartialEq)]
struct ShardRow {
    records_in_per_sec: f64,
    bytes_in_per_sec: f64,
    records_out_per_sec: f64,
    max_lag_ms: f64,
    disk_bytes: f64,
    segments: f64,
    open: bool,
}

fn rows(before: &Samples, after: &Samples, seconds: f64) -> BTreeMap<(String, String), ShardRow> {
    let mut rows: BTreeMap<(String, String), ShardRow> = BTreeMap::new();
    for ((name, labels), value) in after {
        let (Some(stream), Some(shard)) = (labels.get("stream"), labels.get("shard")) else {
            continue;
        };
        let rate = || {
            let previous = before
                .get(&(name.clone(), labels.clone()))
                .copied()
                .unwrap_or(*value);
            (value - previous).max(0.0) / seconds
        };
        let row = rows.entry((stream.clone(), shard.clone())).or_default();
        match name.as_str() {
            "rheo_records_in_total" => row.records_in_per_sec = rate(),
            "rheo_bytes_in_total" => row.bytes_in_per_sec = rate(),
            "rheo_records_out_total" => row.records_out_per_sec += rate(),
            "rheo_millis_behind_latest" => row.max_lag_ms = row.max_lag_ms.max(*value),
            "rheo_shard_disk_bytes" => row.disk_bytes = *value,
            "rheo_shard_segments" => row.segments = *value,
            "rheo_shard_open" => row.open = *value > 0.0,
            _ => {}
        }
    }
    rows
}

fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

pub(crate) async fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let interval = crate::config::parse_duration(&args.interval)?;
    if interval.is_zero() {
        bail!("--interval must be positive");
    }
    let url = format!("{}/metrics", args.metrics_endpoint.trim_end_matches('/'));
    let scrape = || async {
        let (status, body) = http_get(&url).await?;
        if status != 200 {
            bail!("{url} answered {status}");
        }
        Ok(parse(&body))
    };
    let mut before = scrape().await?;
    let mut taken = Instant::now();
    let mut printed = 0;
    loop {
        tokio::time::sleep(interval).await;
        let after = scrape().await?;
        let seconds = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        println!(
            "{:<24} {:<22} {:>6} {:>10} {:>11} {:>10} {:>9} {:>10} {:>5}",
            "STREAM", "SHARD", "STATE", "IN rec/s", "IN B/s", "OUT rec/s", "LAG ms", "DISK", "SEGS"
        );
        for ((stream, shard), row) in rows(&before, &after, seconds) {
            println!(
                "{:<24} {:<22} {:>6} {:>10.0} {:>11} {:>10.0} {:>9.0} {:>10} {:>5}",
                stream,
                shard,
                if row.open { "open" } else { "closed" },
                row.records_in_per_sec,
                human_bytes(row.bytes_in_per_sec),
                row.records_out_per_sec,
                row.max_lag_ms,
                human_bytes(row.disk_bytes),
                row.segments
            );
        }
        let subscriptions = after
            .get(&("rheo_active_subscriptions".to_string(), BTreeMap::new()))
            .copied()
            .unwrap_or(0.0);
        println!("active push subscriptions: {subscriptions}\n");
        before = after;
        printed += 1;
        if args.count > 0 && printed >= args.count {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_samples() {
        let page = |records: u64| {
            format!(
                "# TYPE rheo_records_in counter\nrheo_records_in_total{{stream=\"s\",shard=\"shardId-000000000000\"}} {records}\nrheo_shard_open{{stream=\"s\",shard=\"shardId-000000000000\"}} 1\nrheo_millis_behind_latest{{stream=\"s\",shard=\"shardId-000000000000\",consumer=\"\"}} 250\n# EOF\n"
            )
        };
        let rows = rows(&parse(&page(100)), &parse(&page(300)), 2.0);
        let row = &rows[&("s".to_string(), "shardId-000000000000".to_string())];
        assert_eq!(row.records_in_per_sec, 100.0);
        assert!(row.open);
        assert_eq!(row.max_lag_ms, 250.0);
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }
}
