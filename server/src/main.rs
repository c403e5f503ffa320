//! The `rounds-server` binary: parses the command line and runs one command.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rounds_server::cli::{AuditCommand, Cli, ClinicianCommand, Command, KeysCommand};
use rounds_server::config::{Config, LogFormat};
use rounds_server::{AppState, audit, demo, store::Store};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rounds-server: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The self-test reads no server configuration: it may run on any computer.
    if let Some(Command::Check { url, json, timeout }) = &cli.command {
        return runtime.block_on(check(url, *json, *timeout));
    }
    let config = match Config::load(&cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rounds-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.server.log_format);
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "rounds-server failed");
            eprintln!("rounds-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `rounds-server check`: no configuration and no logging (it prints what it finds).
async fn check(url: &str, json: bool, timeout: u64) -> ExitCode {
    let proxy_var = |name: &str| std::env::var(name).ok();
    let timeout = std::time::Duration::from_secs(timeout);
    rounds_server::check::run(url, json, timeout, proxy_var).await
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ROUNDS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let state = AppState::open(config).await?;
            rounds_server::serve(state).await?;
        }
        Command::Demo {
            time_zone,
            desktop_link,
        } => {
            if !config.server.listen.ip().is_loopback() {
                anyhow::bail!(
                    "demo mode speaks plain HTTP, so it only listens on this machine (127.0.0.1); \
                     use `serve` with TLS in front for anything else"
                );
            }
            let state = AppState::open(config).await?;
            let d = demo::seed(&state, &time_zone).await?;
            let url = state.config.public_url().to_owned();
            println!(
                "\nRounds demo is ready (data in {}).\n",
                state.config.storage.data_dir.display()
            );
            println!("  Clinician login:  {url}/api/v1/auth/login");
            println!("      email:        {}", d.email);
            println!("      password:     {}", d.password);
            println!("  Patient link:     {}", d.patient_link);
            println!("  Visit id:         {}", d.visit_id);
            println!("  API reference:    {url}/api/v1/openapi.json");
            if let Some(path) = desktop_link {
                let ticket = state.tickets.issue(&d.clinician_id);
                let link = demo::desktop_link(&url, &ticket);
                demo::write_private(&path, &link).with_context(|| {
                    format!("writing the desktop sign-in link to {}", path.display())
                })?;
                println!(
                    "  Desktop sign-in:  a one-time link is in {}",
                    path.display()
                );
            }
            println!("\nPress Ctrl-C to stop.\n");
            rounds_server::serve(state).await?;
        }
        Command::Migrate => {
            let dir = &config.storage.data_dir;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let store = Store::open(dir, config.storage.synchronous).await?;
            let applied = store.migrate().await.context("migrating the database")?;
            println!(
                "{applied} migration(s) applied; the database in {} is up to date.",
                dir.display()
            );
        }
        Command::Token {
            room,
            role,
            name,
            ttl,
        } => {
            let state = AppState::open(config).await?;
            let token =
                rounds_server::visits::admin_token(&state, &room, &role, &name, ttl).await?;
            println!("{token}");
        }
        Command::Firewall { json } => {
            let rules = rounds_server::firewall::rules(&config);
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                print!("{}", rounds_server::firewall::table(&rules));
            }
        }
        // Normally run before the configuration is read (see `main`).
        Command::Check { url, json, timeout } => return Ok(check(&url, json, timeout).await),
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let store = Store::open(&config.storage.data_dir, config.storage.synchronous).await?;
            match audit::verify(&store.pool).await? {
                audit::Verdict::Intact { rows, head } => {
                    println!("The audit log is intact: {rows} rows, head {head}.");
                }
                audit::Verdict::Broken { seq, reason } => {
                    println!("The audit log is BROKEN at row {seq}: {reason}.");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let t = &config.tokens;
            let max_ttl = i64::from(
                t.provider_ttl_secs
                    .max(t.participant_ttl_secs)
                    .max(t.access_ttl_secs),
            ) + i64::from(t.leeway_secs);
            std::fs::create_dir_all(&config.storage.data_dir)?;
            let kid = rounds_server::tokens::rotate_file(&config.storage.data_dir, max_ttl)?;
            println!(
                "New signing key {kid} is current. Restart the server to use it; tokens signed with the old key keep working until they expire."
            );
        }
        Command::Clinician {
            command:
                ClinicianCommand::Add {
                    clinic,
                    time_zone,
                    email,
                    name,
                    password_file,
                    fhir_user,
                },
        } => {
            let password = match password_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => match std::env::var("ROUNDS_NEW_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut s = String::new();
                        std::io::stdin()
                            .read_to_string(&mut s)
                            .context("reading the password from standard input")?;
                        s
                    }
                },
            };
            let password = password.trim_end_matches(['\r', '\n']);
            if password.chars().count() < 12 {
                anyhow::bail!("the password must be at least 12 characters long");
            }
            let state = AppState::open(config).await?;
            let id = rounds_server::visits::add_clinician(
                &state, &clinic, &time_zone, &email, &name, password,
            )
            .await?;
            if let Some(fhir_user) = fhir_user {
                state.store.set_fhir_user(&id, fhir_user.trim()).await?;
            }
            println!("Clinician {id} added to {clinic}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
