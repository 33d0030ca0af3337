//! Example: sharding (placeholder until its issue lands).
fn main() {}
