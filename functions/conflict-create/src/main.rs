//! Lambda handler (being written).
fn main() {}
