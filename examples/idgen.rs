//! Example: idgen (placeholder until its issue lands).
fn main() {}
