//! Example: route keys with the consistent-hash ring, take 3 replicas, then
//! add a node and print exactly which keys moved (all of them to the new node).
//!
//! Run with `cargo run -p ringleader --example sharding`.
use ringleader::ring::{HashRing, SlotMap, DEFAULT_SLOTS, DEFAULT_VNODES};

fn main() -> Result<(), ringleader::ring::Error> {
    let nodes = vec![
        ("cache-a:6379".to_string(), 1),
        ("cache-b:6379".to_string(), 1),
        ("cache-c:6379".to_string(), 2), // twice the memory, twice the keys
    ];
    let ring = HashRing::from_nodes(nodes.clone(), DEFAULT_VNODES)?;
    let keys: Vec<String> = (1..=12).map(|i| format!("user:{i}")).collect();

    println!(
        "placement on {} nodes ({} points):",
        ring.len(),
        ring.points()
    );
    for key in &keys {
        let replicas = ring.replicas(key.as_bytes(), 3);
        let names: Vec<&str> = replicas.iter().map(|n| n.as_str()).collect();
        println!("  {key:<8} -> {}", names.join(", "));
    }

    // A new node joins: the new ring shares every unchanged point with the old one.
    let grown = ring.with_node("cache-d:6379".to_string(), 1)?;
    println!("\nafter adding cache-d:6379:");
    let mut moved = 0;
    for key in &keys {
        let (before, after) = (ring.get(key.as_bytes()), grown.get(key.as_bytes()));
        if before != after {
            moved += 1;
            println!(
                "  {key:<8} moved {} -> {}",
                before.map_or("-", String::as_str),
                after.map_or("-", String::as_str)
            );
        }
    }
    println!(
        "  {moved} of {} keys moved (ideal share for the new node: 1/5 of the weight)",
        keys.len()
    );

    // The same question with hash slots: a migration plan of whole slots.
    let slots = SlotMap::new(nodes.clone(), DEFAULT_SLOTS)?;
    let mut more = nodes;
    more.push(("cache-d:6379".to_string(), 1));
    let plan = slots.rebalance(more)?;
    println!(
        "\nslots: {} of {} slots migrate, all to cache-d:6379: {}",
        plan.moves.len(),
        slots.slot_count(),
        plan.moves.iter().all(|m| m.to == "cache-d:6379")
    );
    Ok(())
}
