//! Logging: human-readable on a terminal, JSON lines otherwise (CI, Lambda, cron).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber; returns true when stderr is a terminal.
/// The level comes from `RUST_LOG` (default `info` for thaw, `warn` for libraries).
pub fn init() -> bool {
    let interactive = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,thaw=info,thaw_engine=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if interactive {
        builder.with_target(false).compact().init();
    } else {
        builder.json().with_current_span(false).init();
    }
    interactive
}
