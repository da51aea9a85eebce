use std::time::Duration;

use anyhow::Context;
use ingest_api::auth::{IdentitySettings, TokenSigner};
use ingest_api::config::{auth_secret_from_env, Settings};
use ingest_api::Application;

/// mimalloc: measured faster than glibc's allocator on the request path (docs/ingest-api.md,
/// "Allocator"), where a sync allocates and frees a few dozen buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  ingest-api [serve]                                     run the HTTP API (default)
  ingest-api token --device D --user U [--ttl-hours H]   mint a device token (AUTH_TOKEN_SECRETS or AUTH_TOKEN_SECRET)
  ingest-api token --user U [--ttl-hours H]              mint a user token for the read routes
  ingest-api example-sync                                print a standard sync command as JSON";

#[actix_web::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("token") => token(&args[1..]),
        Some("example-sync") => {
            let now = chrono::Utc::now().timestamp_millis();
            println!("{:#}", ingest_api::example::standard_sync(uuid::Uuid::new_v4(), now, 1, false));
            Ok(())
        }
        // For `make openapi`: the OpenAPI document the service serves, generated from the code.
        Some("openapi") => {
            println!("{}", ingest_api::openapi::json());
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("ingest-api: {e:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    service_kit::logging::init_from_env();
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    log::info!("listening on port {}", app.port());
    app.run_until_stopped(service_kit::shutdown::on_signal()).await
}

fn token(args: &[String]) -> anyhow::Result<()> {
    let (mut device, mut user, mut ttl_hours) = (None, None, 24u64);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--device" => device = Some(value()?),
            "--user" => user = Some(value()?),
            "--ttl-hours" => ttl_hours = value()?.parse().context("--ttl-hours takes a whole number of hours")?,
            other => anyhow::bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let user = user.with_context(|| format!("--user is required\n{USAGE}"))?;
    // The current secret of AUTH_TOKEN_SECRETS (else AUTH_TOKEN_SECRET), and the server's bound.
    let identity = IdentitySettings::from_env()?;
    let signer = TokenSigner::with_keys(&auth_secret_from_env()?, &[], identity.max_token_lifetime);
    let ttl = Duration::from_secs(ttl_hours.saturating_mul(3600));
    if ttl > signer.max_lifetime() {
        anyhow::bail!(
            "--ttl-hours {ttl_hours} is longer than AUTH_MAX_TOKEN_LIFETIME_SECONDS ({} s): ingest-api would refuse the token",
            signer.max_lifetime().as_secs()
        );
    }
    println!("{}", signer.mint(&user, device.as_deref(), ttl));
    Ok(())
}
