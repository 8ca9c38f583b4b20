//! Rebuild the engine when a migration in `schema/` is added or changed
//! (`refinery::embed_migrations!` reads the directory at compile time).
fn main() {
    println!("cargo:rerun-if-changed=../../schema");
}
