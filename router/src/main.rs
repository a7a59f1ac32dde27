//! `switchyard`: parse the command line, validate config, build the service, serve, drain on SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use switchyard::cli::{BackendUrl, Cli, Command};
use switchyard::config::Config;
use switchyard::{client, engine, health, policy, server, telemetry};

/// mimalloc instead of glibc's malloc: the request path allocates small objects on several threads at once, and
/// glibc spent ~20 % of the gateway's CPU there under load (perf, `evals/bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("switchyard: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            admin_listen,
            backend_urls,
        } => {
            let mut config = Config::load(&config).map_err(|e| e.to_string())?;
            for BackendUrl { backend, url } in backend_urls {
                config.set_backend_url(&backend, &url).map_err(|e| e.to_string())?;
            }
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(admin_listen) = admin_listen {
                config.server.admin_listen = admin_listen;
            }
            let telemetry = telemetry::init(&config.telemetry, config.server.log_format, &config.server.log_level)
                .map_err(|e| e.to_string())?;
            let served = server::serve(config, &telemetry, shutdown_signal()).await;
            // Off the async workers: flushing waits for the last export.
            let flushed = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            served.map_err(|e| e.to_string())?;
            flushed.map_err(|e| e.to_string())
        }
        Command::Validate { config } => {
            telemetry::init_cli_logs("warn");
            let loaded = Config::load(&config).map_err(|e| e.to_string())?;
            let policy = tokio::task::spawn_blocking(move || engine::Engine::check_policy(&loaded))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            println!("{}: ok", config.display());
            println!("{}", policy.summary());
            Ok(())
        }
        Command::Schema => {
            print!("{}", policy::json_schema());
            Ok(())
        }
        Command::Route(args) => {
            telemetry::init_cli_logs("warn");
            client::route(args).await.map_err(|e| e.to_string())
        }
        Command::Explain(args) => {
            telemetry::init_cli_logs("warn");
            client::explain(args).await.map_err(|e| e.to_string())
        }
        Command::Health(args) => {
            telemetry::init_cli_logs("warn");
            health::check(&args).await.map_err(|e| e.to_string())?;
            println!("SERVING");
            Ok(())
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key).map_err(|e| e.to_string())?;
            if key.trim().is_empty() {
                return Err("no key on stdin".to_owned());
            }
            println!("{}", switchyard::auth::hash_key(&key));
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
