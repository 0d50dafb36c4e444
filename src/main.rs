//! The `promrelay` binary: parse the configuration, set up logging, bind, and run the server until
//! SIGTERM or SIGINT. Everything else lives in the library (`promrelay::server::run`).
//! `promrelay queue verify|inspect PATH...` runs the read-only queue tools
//! (`promrelay::queue::offline`) instead, and loads no configuration.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use promrelay::config::{Config, Invocation, LogFormat, QueueCommand};
use promrelay::queue::offline;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cfg = match Invocation::from_args(std::env::args_os()) {
        Ok(Invocation::Run(cfg)) => *cfg,
        Ok(Invocation::Queue(command)) => return queue_command(command),
        Err(e) => return e.report(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cfg.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("promrelay")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", cfg.listen))?;
        // The address bound, not the one asked for: with port 0 the system picked it.
        let listen = listener.local_addr().unwrap_or(cfg.listen);
        tracing::info!(%listen, data_dir = %cfg.data_dir.display(), storages = cfg.storages.len(), "promrelay starting");
        promrelay::server::run(cfg, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// `promrelay queue verify|inspect`: reports on stdout, problems with a path on stderr. Exit
/// status: 2 when a path is not a queue (or cannot be listed), else 1 when verify found damage,
/// else 0.
fn queue_command(command: QueueCommand) -> ExitCode {
    let (paths, verify, json) = match command {
        QueueCommand::Verify { paths } => (paths, true, false),
        QueueCommand::Inspect { paths, json } => (paths, false, json),
    };
    let (reports, not_queues) = examine_all(&paths);
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &reports)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        reports.iter().try_for_each(|r| {
            let text = if verify {
                r.verify_text()
            } else {
                r.inspect_text()
            };
            out.write_all(text.as_bytes())
        })
    };
    if let Err(e) = written {
        eprintln!("promrelay: writing the report: {e}");
        return ExitCode::from(2);
    }
    if not_queues {
        ExitCode::from(2)
    } else if verify && !reports.iter().all(offline::QueueReport::is_intact) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reports for every queue under `paths`, and whether any path was not a queue (said on stderr).
fn examine_all(paths: &[PathBuf]) -> (Vec<offline::QueueReport>, bool) {
    let mut reports = Vec::new();
    let mut not_queues = false;
    for path in paths {
        let dirs = match offline::queue_dirs(path) {
            Ok(dirs) if dirs.is_empty() => {
                eprintln!(
                    "promrelay: {}: a data directory with no queues",
                    path.display()
                );
                continue;
            }
            Ok(dirs) => dirs,
            Err(e) => {
                eprintln!("promrelay: {e}");
                not_queues = true;
                continue;
            }
        };
        for dir in dirs {
            match offline::examine(&dir) {
                Ok(report) => reports.push(report),
                Err(e) => {
                    eprintln!("promrelay: {e}");
                    not_queues = true;
                }
            }
        }
    }
    (reports, not_queues)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
