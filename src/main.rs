//! The `sessionstorm` binary: parse the command line, wire signals to the shutdown
//! tokens, run, and turn the result into an exit code. Everything else is in the
//! library, where tests can reach it.

use clap::Parser;
use sessionstorm::cli::Cli;
use sessionstorm::error::ExitCode;
use sessionstorm::run::Shutdown;

fn main() {
    let cli = Cli::parse();
    // Structured logs on stderr: -q errors only, default warnings, -v the run's steps,
    // -vv debugging; SESSIONSTORM_LOG (an EnvFilter) wins over the flags.
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,sessionstorm=info",
        (false, 2) => "info,sessionstorm=debug",
        (false, _) => "debug,sessionstorm=trace",
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && sessionstorm::progress::color_allowed();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SESSIONSTORM_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_ansi(ansi)
        .with_writer(|| sessionstorm::progress::LogWriter)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            std::process::exit(ExitCode::Infrastructure.code());
        }
    };
    let code = runtime.block_on(async {
        let shutdown = Shutdown::default();
        tokio::spawn(watch_signals(shutdown.clone()));
        match sessionstorm::commands::run(cli, shutdown).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("Error: {err:#}");
                err.exit_code()
            }
        }
    });
    std::process::exit(code.code());
}

/// First SIGINT/SIGTERM: graceful stop. Second: abort (tear down at once).
async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let mut next = async || {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    next().await;
    eprintln!("\ninterrupt: stopping load and chaos, then checking and tearing down (interrupt again to skip the checks)");
    shutdown.graceful.cancel();
    next().await;
    eprintln!("\nsecond interrupt: tearing down now");
    shutdown.abort.cancel();
}
