//! Seed the Snowflake emulator with the generated dataset (stand-in for
//! `thaw dev seed` until the CLI exposes it; tests/sfn_local/run.py uses
//! whichever exists).
//!
//! `cargo run -p thaw-lambda --example seed-emulator -- <config.json> <visits> <seed>`
use std::path::Path;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, visits, seed] = args.as_slice() else {
        return Err("usage: seed-emulator <config.json> <visits> <seed>".into());
    };
    let config = thaw_engine::config::Config::load(Path::new(config))?;
    let source = thaw_engine::source::connect(&config.snowflake, None, None).await?;
    let today = chrono::Utc::now().date_naive();
    let out_dir = std::env::temp_dir().join(format!("thaw-seed-{}", std::process::id()));
    let opts = thaw_engine::dev::SeedOptions::new(seed.parse()?, visits.parse()?, today, out_dir);
    let report = thaw_engine::dev::seed(Some(&source), &opts).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
