//! The `roster` binary: parses the command line, loads the configuration, sets up
//! tracing and hands over to the library's command line ([`roster::cli`]).

use std::process::ExitCode;

use clap::Parser as _;
use roster::cli::Cli;
use roster::config::LogConfig;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: after a bulk import (or the start-up check of a
/// large store) glibc's heap is fragmented enough that `malloc` alone took 16% of the
/// CPU of `GET /users/me` at 1M stored users against 4% at 1k (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets up logging from config (`ROSTER_LOG` or `RUST_LOG` override the filter); a
/// command that only talks to a server logs warnings, as text.
fn init_tracing(log: Option<&LogConfig>) {
    let default = log.map_or("warn", |l| l.filter.as_str());
    let filter = EnvFilter::try_from_env("ROSTER_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.is_some_and(|l| l.json) {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roster: loading configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(config.as_ref().map(|c| &c.log));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("roster-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roster: starting the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(roster::cli::run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roster: {e}");
            ExitCode::FAILURE
        }
    }
}
