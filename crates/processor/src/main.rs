use anyhow::Context;
use processor::{config::Settings, Application};

const USAGE: &str = "usage: processor [run | migrate | create-topics | adopt-topic | recompute | rebuild]
  run            consume DeviceSynced and write the health model (default)
  migrate        apply the database migrations and exit
  create-topics  create the event topic and its DLQ if missing (PROCESSOR_TOPIC_PARTITIONS, default 6;
                 PROCESSOR_TOPIC_REPLICATION and PROCESSOR_TOPIC_MIN_INSYNC_REPLICAS, default 1 and 1;
                 PROCESSOR_TOPIC_RETENTION_MS, default 604800000 = 7 days)
  recompute [--user U | --all] [--jobs N]
                 recompute the health model from the stored samples, beside running processors:
                 the users with rows of an older model version (default), one user, or everyone,
                 on N connections in parallel (default: the number of cores)
  rebuild --database URL --group G
                 build the whole model into a new, empty database from the topic's earliest offset,
                 with consumer group G, and stop at the end of the log as it was at the start
  adopt-topic    accept the live topic as the one the watermarks belong to, after it was recreated
                 or the cluster changed: clears the topic's watermarks, so its events apply from
                 its start (sync ids already processed stay deduplicated)";

#[actix_web::main]
async fn main() {
    service_kit::logging::init_from_env();
    let command = std::env::args().nth(1).unwrap_or_else(|| "run".into());
    let result = match command.as_str() {
        "run" => run().await,
        "migrate" => migrate().await,
        "create-topics" => create_topics().await,
        "adopt-topic" => adopt_topic().await,
        "rebuild" => rebuild(std::env::args().skip(2).collect()).await,
        "recompute" => recompute(std::env::args().skip(2).collect()).await,
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("processor: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(service_kit::shutdown::on_signal()).await
}

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let pool = processor::db::pool(&settings.database_url, 1);
    let applied = processor::migrate(&pool).await.context("is PostgreSQL up and DATABASE_URL right?")?;
    println!(
        "applied {} migration(s){}",
        applied.len(),
        if applied.is_empty() { String::new() } else { format!(": {}", applied.join(", ")) }
    );
    Ok(())
}

async fn create_topics() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    for (topic, created) in processor::topics::create_topics(&settings).await? {
        println!("{topic}: {}", if created { "created" } else { "exists" });
    }
    Ok(())
}

async fn adopt_topic() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let adopted = processor::adopt_live_topic(&settings).await?;
    println!("{}: watermarks cleared; now bound to {adopted}", settings.topic);
    Ok(())
}

async fn recompute(args: Vec<String>) -> anyhow::Result<()> {
    let mut scope = processor::RecomputeScope::Behind;
    let mut jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = args.iter().map(String::as_str);
    let usage = || anyhow::anyhow!("recompute takes --all or --user USER_ID, and --jobs N\n{USAGE}");
    while let Some(arg) = args.next() {
        match arg {
            "--all" => scope = processor::RecomputeScope::All,
            "--user" => match args.next() {
                Some(user) if !user.is_empty() => scope = processor::RecomputeScope::User(user.to_owned()),
                _ => return Err(usage()),
            },
            "--jobs" => match args.next().and_then(|n| n.parse::<usize>().ok()).filter(|n| (1..=64).contains(n)) {
                Some(n) => jobs = n,
                None => anyhow::bail!("--jobs takes a whole number from 1 to 64\n{USAGE}"),
            },
            _ => return Err(usage()),
        }
    }
    let settings = Settings::from_env()?;
    let summary = processor::recompute_users(&settings, scope, jobs).await?;
    println!(
        "recomputed {} user(s), {} user-day(s), at model version {}{}{}",
        summary.users - summary.already_current - summary.skipped,
        summary.user_days,
        health_model::MODEL_VERSION,
        if summary.already_current > 0 {
            format!("; {} were already current", summary.already_current)
        } else {
            String::new()
        },
        if summary.skipped > 0 { format!("; {} skipped (see above)", summary.skipped) } else { String::new() }
    );
    Ok(())
}

async fn rebuild(args: Vec<String>) -> anyhow::Result<()> {
    let (database, group) = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--database", url, "--group", group] | ["--group", group, "--database", url]
            if !url.is_empty() && !group.is_empty() =>
        {
            ((*url).to_owned(), (*group).to_owned())
        }
        _ => anyhow::bail!("rebuild takes --database URL --group GROUP (a new database and a new group)\n{USAGE}"),
    };
    let mut settings = Settings::from_env()?;
    settings.database_url = database;
    settings.group_id = group;
    settings.group_instance_id = None;
    // Beside a running processor: its own ops port.
    settings.ops_addr = "127.0.0.1:0".into();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} records, {per_sec}, eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let summary = processor::rebuild(settings, service_kit::shutdown::on_signal(), |done, total| {
        bar.set_length(total.max(0) as u64);
        bar.set_position(done.max(0) as u64);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "rebuilt the model from {} record(s) of {} partition(s) in {:.1} s ({:.0} records/s)",
        summary.records,
        summary.partitions.len(),
        summary.seconds,
        summary.records as f64 / summary.seconds.max(1e-9)
    );
    Ok(())
}
