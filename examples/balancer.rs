//! Example: balancer (placeholder until its issue lands).
fn main() {}
