use clap::{Parser, Subcommand};
use schema_registry::passwd::{self, PasswdArgs};
use schema_registry::{Application, Settings};

/// A Confluent-compatible schema registry. Without a subcommand it serves, configured by the
/// environment (SCHEMA_REGISTRY_LISTEN_ADDR, SCHEMA_REGISTRY_DATABASE_URL,
/// SCHEMA_REGISTRY_AUTH_FILE, ...).
#[derive(Parser)]
#[command(name = "schema-registry", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Add a user to a credentials file, or replace a user's password and role.
    Passwd(PasswdArgs),
}

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    service_kit::logging::init_from_env();
    let result = match cli.command {
        Some(Command::Passwd(args)) => passwd::run(&args),
        None => serve().await,
    };
    if let Err(e) = result {
        eprintln!("schema-registry: {e:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    log::info!("Confluent-compatible schema registry listening on port {}", app.port());
    app.run_until_stopped(service_kit::shutdown::on_signal()).await
}
