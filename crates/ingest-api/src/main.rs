use ingest_api::{config::Settings, Application};

#[actix_web::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run().await {
        eprintln!("ingest-api: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    log::info!("listening on port {}", app.port());
    app.run_until_stopped().await?;
    Ok(())
}
