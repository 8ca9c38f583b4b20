//! `thaw dev` commands (being written).
use clap::Subcommand;
/// Development commands.
#[derive(Subcommand)]
pub enum DevCommand {}
/// Run a dev command.
pub async fn run(_c: DevCommand) -> thaw_engine::Result<()> { Ok(()) }
