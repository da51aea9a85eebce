use anyhow::Context;
use processor::{config::Settings, Application};

const USAGE: &str = "usage: processor [run | migrate | create-topics]
  run            consume DeviceSynced and write the health model (default)
  migrate        apply the database migrations and exit
  create-topics  create the event topic and its DLQ if missing (PROCESSOR_TOPIC_PARTITIONS, default 6;
                 PROCESSOR_TOPIC_REPLICATION and PROCESSOR_TOPIC_MIN_INSYNC_REPLICAS, default 1 and 1;
                 PROCESSOR_TOPIC_RETENTION_MS, default 604800000 = 7 days)
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
