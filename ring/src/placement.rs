//! The [`Placement`] trait: where does a key live.

/// A key-to-node placement. Every algorithm in this crate implements it, so
/// the simulator and callers can swap them.
///
/// ```
/// use ringleader_ring::{HashRing, Jump, Placement};
/// fn owner<'a, P: Placement>(p: &'a P, key: &[u8]) -> Option<&'a P::Node> { p.locate(key) }
/// let nodes = vec![("a".to_string(), 1), ("b".to_string(), 1)];
/// let ring = HashRing::from_nodes(nodes.clone(), 160).unwrap();
/// let jump = Jump::new(nodes.into_iter().map(|(n, _)| n).collect());
/// assert!(owner(&ring, b"k").is_some());
/// assert!(owner(&jump, b"k").is_some());
/// ```
pub trait Placement {
    /// The node type the placement returns.
    type Node;

    /// Short, stable algorithm name (`"ring"`, `"jump"`, ...).
    fn algorithm(&self) -> &'static str;

    /// The node owning `key`, or `None` when there are no nodes.
    fn locate(&self, key: &[u8]) -> Option<&Self::Node>;

    /// Number of physical nodes.
    fn node_count(&self) -> usize;

    /// Approximate heap bytes held by the lookup structure (for comparisons).
    fn heap_bytes(&self) -> usize;
}

/// Error if two nodes share the same bytes.
pub(crate) fn check_unique<'a, I>(names: I) -> Result<(), crate::Error>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut names: Vec<&[u8]> = names.into_iter().collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(crate::Error::DuplicateNode {
            node: crate::error::node_name(w[0]),
        }),
        None => Ok(()),
    }
}

/// Append `node` to a plain node list unless a node with the same bytes is there.
pub(crate) fn push_unique<N: AsRef<[u8]>>(nodes: &mut Vec<N>, node: N) -> Result<(), crate::Error> {
    if nodes.iter().any(|n| n.as_ref() == node.as_ref()) {
        return Err(crate::Error::DuplicateNode {
            node: crate::error::node_name(node.as_ref()),
        });
    }
    nodes.push(node);
    Ok(())
}

/// Index of the node with these bytes in a plain node list.
pub(crate) fn position_of<N: AsRef<[u8]>>(nodes: &[N], node: &[u8]) -> Result<usize, crate::Error> {
    nodes
        .iter()
        .position(|n| n.as_ref() == node)
        .ok_or_else(|| crate::Error::UnknownNode {
            node: crate::error::node_name(node),
        })
}

/// Error if any weight is 0.
pub(crate) fn check_weights<N: AsRef<[u8]>>(nodes: &[(N, u32)]) -> Result<(), crate::Error> {
    match nodes.iter().find(|(_, w)| *w == 0) {
        Some((n, _)) => Err(crate::Error::ZeroWeight {
            node: crate::error::node_name(n.as_ref()),
        }),
        None => Ok(()),
    }
}
