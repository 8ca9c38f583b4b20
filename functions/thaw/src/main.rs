//! thaw CLI (being written).
fn main() {}
