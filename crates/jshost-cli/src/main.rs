//! The `jshost` command (placeholder).
fn main() {}
