//! The command line: `devsim run`, `devsim load`, `devsim preview`. Bad input is a message and
//! a non-zero exit status, never a panic.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::fleet::FleetConfig;
use crate::load::{LoadConfig, Rate};
use crate::phone::{Imperfections, SimConfig};
use crate::run::RunConfig;
use crate::timeline::{DAY_MS, MINUTE_MS};

#[derive(Debug, Parser)]
#[command(
    name = "devsim",
    version,
    about = "Simulated fitness trackers syncing through ingest-api, and a load generator for it",
    after_help = "Both `run` and `load` mint device tokens with AUTH_TOKEN_SECRET (required), the secret ingest-api verifies them with."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a seeded fleet of users and their trackers syncing through ingest-api.
    Run(RunArgs),
    /// Send standard syncs at a fixed rate (or as fast as possible) and report latency.
    Load(LoadArgs),
    /// Print the first commands a `run` with these options would send, as JSON lines; sends nothing.
    Preview(PreviewArgs),
    /// Hold live event streams open for the users of `devsim load` and report how fast their
    /// syncs' events arrive (delivery from the processor's commit).
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// ingest-api's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Streams for the users load-user-0 … load-user-(N-1), those of `devsim load --devices N`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub load_users: u32,
    /// How long to hold them (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What the simulated fleet is and does.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Number of simulated users (each has a wrist band; some also a chest strap).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: u32,
    /// Seed of everything random: the same seed gives the same fleet and the same syncs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history to send first, as fast as the server takes them (fractions allowed).
    #[arg(long, default_value_t = 0.0, value_parser = parse_days)]
    pub backfill_days: f64,
    /// How much wear one sync covers: the phone syncs this often in simulated time.
    #[arg(long, default_value = "15m", value_parser = parse_window)]
    pub sync_interval: Duration,
    /// The same for the history (longer windows make a big backfill cheaper) [default: --sync-interval].
    #[arg(long, value_parser = parse_window)]
    pub backfill_interval: Option<Duration>,
    /// Share of users who also own a chest strap, worn for workouts.
    #[arg(long, default_value_t = 0.3, value_parser = parse_probability)]
    pub strap_share: f64,
    /// User ids are PREFIX-0, PREFIX-1, …; device ids add -band and -strap.
    #[arg(long, default_value = "sim-user", value_parser = parse_prefix)]
    pub user_prefix: String,
    /// Chance per sync that the phone sends the same batch (same sync id) again.
    #[arg(long, default_value_t = 0.02, value_parser = parse_probability)]
    pub p_resend: f64,
    /// Chance per sync of re-syncing from a few minutes back (new sync id, overlapping samples).
    #[arg(long, default_value_t = 0.03, value_parser = parse_probability)]
    pub p_overlap: f64,
    /// Chance per sync that the batch is held back and sent 6 to 72 hours late.
    #[arg(long, default_value_t = 0.01, value_parser = parse_probability)]
    pub p_late: f64,
    /// Chance per sync that the device clock is off by 5 s to 10 min.
    #[arg(long, default_value_t = 0.05, value_parser = parse_probability)]
    pub p_clock_skew: f64,
    /// Chance per user and day of flying to another time zone.
    #[arg(long, default_value_t = 0.02, value_parser = parse_probability)]
    pub p_travel: f64,
    /// Chance per sample of an impossible value or a "no reading" sentinel (bpm 300, RR 3000, 255, -1).
    #[arg(long, default_value_t = 0.001, value_parser = parse_probability)]
    pub p_impossible: f64,
}

impl SimArgs {
    pub fn config(&self, start_ms: i64) -> SimConfig {
        SimConfig {
            fleet: FleetConfig {
                seed: self.seed,
                users: self.users as usize,
                strap_share: self.strap_share,
                user_prefix: self.user_prefix.clone(),
            },
            imperfections: Imperfections {
                resend: self.p_resend,
                overlap: self.p_overlap,
                late: self.p_late,
                clock_skew: self.p_clock_skew,
                travel: self.p_travel,
                impossible: self.p_impossible,
            },
            sync_interval_ms: self.sync_interval.as_millis() as i64,
            backfill_interval_ms: self.backfill_interval.unwrap_or(self.sync_interval).as_millis() as i64,
            start_ms,
            backfill_ms: (self.backfill_days * DAY_MS as f64) as i64,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// ingest-api's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[command(flatten)]
    pub sim: SimArgs,
    /// Simulated time per real time once the history is sent (60: a 15-minute sync every 15 s).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Most requests in flight over all devices.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Retries of a sync answered 503 (after Retry-After) or not answered at all. A 429 is not
    /// a failure: the sync is sent again after its Retry-After (at most 60 s), without limit.
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
    /// Timeout of one request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print a progress line this often (0 for none).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub progress_every: Duration,
    /// Stop after this much real time (e.g. 90s, 10m) [default: until Ctrl-C].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop once the history (--backfill-days) is sent.
    #[arg(long)]
    pub backfill_only: bool,
    /// Send bodies gzip-compressed.
    #[arg(long)]
    pub gzip: bool,
    /// Follow each user's live event stream and print each sync's processing as it happens.
    #[arg(long)]
    pub watch: bool,
    /// Also write the final summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// ingest-api's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests per second (100 or 100/s), or max for as fast as --concurrency connections allow.
    #[arg(long, default_value = "100/s", value_parser = parse_rate)]
    pub rate: Rate,
    /// Workers with --rate max [default: 16]; most requests in flight at a fixed rate [default: 512].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Option<u32>,
    /// How long to send (e.g. 30s, 2m) [default: 10s unless --count is given].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many requests to send.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Distinct devices (and users) the syncs come from.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub devices: u32,
    /// One sync in this many carries a night's sleep (0: none).
    #[arg(long, default_value_t = 8)]
    pub sleep_every: u64,
    /// Send bodies gzip-compressed.
    #[arg(long)]
    pub gzip: bool,
    /// Timeout of one request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print a progress line this often (0 for none).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub progress_every: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seed of the standard syncs' sample values.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Send a request again (same body, same sync id) after a 5xx or no answer, at most this
    /// many times, waiting 200 ms doubling to 2 s; latency counts to the last answer. A 429 is
    /// always sent again after its Retry-After (at most 60 s), and is not counted here.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub retries: u32,
    /// Write one JSON line per attempt to this file: sync id, user, device, attempt, status
    /// (null: no answer), sent and answered times (Unix seconds).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// How many commands to print.
    #[arg(long, default_value_t = 3)]
    pub count: usize,
    /// Simulated start time, UTC epoch ms [default: now].
    #[arg(long)]
    pub start_ms: Option<i64>,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches(['x', 'X']);
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!("{s:?} is not a speed: give a positive factor such as 1, 60 or 3600")),
    }
}

fn parse_days(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=3650.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of days between 0 and 3650")),
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?}: use 1 to 64 letters, digits, '-' or '_'"))
    }
}

/// A sync window: whole minutes, from 1 minute to 6 hours.
fn parse_window(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.as_millis() % MINUTE_MS as u128 != 0 || d < Duration::from_secs(60) || d > Duration::from_secs(6 * 3600) {
        return Err(format!("{s:?}: a sync window is whole minutes, from 1m to 6h"));
    }
    Ok(d)
}

/// `500ms`, `30s`, `5m`, `2h`, `1d`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 500ms, 30s, 5m or 2h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1_000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3_600.0,
        "d" => value * 86_400.0,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use ms, s, m, h or d")),
    };
    if !seconds.is_finite() || !(0.0..=10.0 * 365.0 * 86_400.0).contains(&seconds) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `max`, `250`, `250/s`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match t.strip_suffix("/s").unwrap_or(t).trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(Rate::PerSecond(r)),
        _ => Err(format!("{s:?} is not a rate: give requests per second (e.g. 200 or 200/s) or max")),
    }
}

fn optional(d: Duration) -> Option<Duration> {
    (d > Duration::ZERO).then_some(d)
}

/// A token cancelled by Ctrl-C or SIGTERM; a second Ctrl-C exits at once.
fn stop_on_signals() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(unix)]
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => eprintln!("devsim: stopping (Ctrl-C again to quit at once)"),
            _ = terminated => eprintln!("devsim: stopping (SIGTERM)"),
        }
        token.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    stop
}

/// Runs the parsed command.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let secret = ingest_api::config::auth_secret_from_env()?;
            crate::client::base_url(&args.url)?;
            let start_ms = chrono::Utc::now().timestamp_millis();
            let config = RunConfig {
                url: args.url.clone(),
                secret,
                sim: args.sim.config(start_ms),
                speed: args.speed,
                concurrency: args.concurrency as usize,
                max_retries: args.max_retries,
                timeout: args.timeout,
                progress_every: optional(args.progress_every),
                duration: args.duration,
                backfill_only: args.backfill_only,
                gzip: args.gzip,
                watch: args.watch,
            };
            let report = crate::run::run(config, stop_on_signals()).await?;
            println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&report).expect("the report serializes");
                std::fs::write(path, json + "\n")
                    .map_err(|e| anyhow::anyhow!("writing the summary to {}: {e}", path.display()))?;
            }
            Ok(())
        }
        Command::Load(args) => {
            let secret = ingest_api::config::auth_secret_from_env()?;
            crate::client::base_url(&args.url)?;
            let duration = match (args.duration, args.count) {
                (None, None) => Some(Duration::from_secs(10)),
                (d, _) => d,
            };
            let concurrency = args.concurrency.map_or(
                match args.rate {
                    Rate::Max => 16,
                    Rate::PerSecond(_) => 512,
                },
                |c| c as usize,
            );
            let config = LoadConfig {
                url: args.url.clone(),
                secret,
                rate: args.rate,
                concurrency,
                duration,
                count: args.count,
                devices: args.devices as usize,
                sleep_every: args.sleep_every,
                gzip: args.gzip,
                timeout: args.timeout,
                progress_every: optional(args.progress_every),
                seed: args.seed,
                retries: args.retries,
                ledger: args.ledger.clone(),
            };
            let report = crate::load::run(config, stop_on_signals()).await?;
            print!("{}", report.render());
            if let Some(path) = &args.json {
                crate::load::write_json(&report, path)?;
            }
            anyhow::ensure!(
                report.accepted > 0 || report.requests == 0,
                "no request was accepted by {}: is ingest-api running there, with the same AUTH_TOKEN_SECRET?",
                args.url
            );
            Ok(())
        }
        Command::Watch(args) => {
            let secret = ingest_api::config::auth_secret_from_env()?;
            let client = crate::client::Client::new(&args.url, &secret, Duration::from_secs(30), 1, false)?;
            let users: Vec<String> = (0..args.load_users).map(|d| format!("load-user-{d}")).collect();
            let report = crate::watch::hold(&client, &users, args.duration, stop_on_signals()).await?;
            let json = serde_json::to_string_pretty(&report).expect("the report serializes");
            println!("{json}");
            if let Some(path) = &args.json {
                std::fs::write(path, json + "\n")
                    .map_err(|e| anyhow::anyhow!("writing the report to {}: {e}", path.display()))?;
            }
            anyhow::ensure!(
                report.sync_events > 0,
                "no sync event arrived on {} streams: is the processor running, and ingest-api's DATABASE_URL its database?",
                report.streams
            );
            Ok(())
        }
        Command::Preview(args) => {
            let start_ms = args.start_ms.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
            let config = args.sim.config(start_ms);
            for o in crate::phone::commands(&config, args.count) {
                println!("{}", serde_json::to_string(&o.body).expect("JSON serializes"));
            }
            Ok(())
        }
    }
}

/// The whole program: parse, run, report. Exit status 0 on success, 1 on errors, 2 on bad usage.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    // `devsim load` runs on one thread: one thread sends tens of thousands of requests a second
    // (see crate::wire), and a second one would only add wake-ups between threads, CPU taken
    // from the service it measures on the same machine. `devsim run` builds its commands on
    // every core.
    let mut builder = match cli.command {
        Command::Load(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devsim: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devsim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_rates_and_probabilities_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("250/s"), Ok(Rate::PerSecond(250.0)));
        assert_eq!(parse_rate("12.5"), Ok(Rate::PerSecond(12.5)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("NaN").is_err());
        assert_eq!(parse_speed("60x"), Ok(60.0));
        assert!(parse_speed("0").is_err());
        assert!(parse_window("90s").is_err());
        assert_eq!(parse_window("1h"), Ok(Duration::from_secs(3600)));
    }
}
