//! The one error type of `ringleader-ring`.
use thiserror::Error;

/// Everything that can go wrong when building or changing a placement.
///
/// Lookups never fail: an empty placement answers `None`.
///
/// ```
/// use ringleader_ring::{Error, HashRing};
/// let err = HashRing::from_nodes(vec![("a".to_string(), 0u32)], 160).unwrap_err();
/// assert!(matches!(err, Error::ZeroWeight { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A node was given weight 0; remove it instead.
    #[error("node {node:?} has weight 0 (remove the node instead)")]
    ZeroWeight {
        /// The node, rendered lossily from its bytes.
        node: String,
    },
    /// The same node (same bytes) was added twice.
    #[error("node {node:?} is already present")]
    DuplicateNode {
        /// The node, rendered lossily from its bytes.
        node: String,
    },
    /// A node that is not part of the placement was named.
    #[error("unknown node {node:?}")]
    UnknownNode {
        /// The node, rendered lossily from its bytes.
        node: String,
    },
    /// The number of virtual nodes per unit of weight was 0.
    #[error("vnodes per unit of weight must be at least 1")]
    ZeroVnodes,
    /// Weight x vnodes does not fit the ring's point counter.
    #[error("too many ring points: weight {weight} x {vnodes} vnodes exceeds {max}")]
    TooManyPoints {
        /// The offending weight.
        weight: u32,
        /// Vnodes per unit of weight.
        vnodes: u32,
        /// The maximum number of points per node.
        max: u64,
    },
    /// A placement needs at least one node for this operation.
    #[error("at least one node is required")]
    NoNodes,
    /// Too many nodes for the structure (e.g. more nodes than slots).
    #[error("too many nodes: {nodes} (at most {max})")]
    TooManyNodes {
        /// Nodes requested.
        nodes: usize,
        /// The limit.
        max: usize,
    },
    /// A Maglev table too small for the node count: the Maglev paper asks
    /// for `M >= 100 x nodes` (NSDI 2016, section 3.4). `M` never grows by
    /// itself, since a new `M` moves almost every key.
    #[error(
        "maglev table size {table_size} is too small for {nodes} nodes \
         (Maglev needs M >= 100 x nodes; the smallest prime that fits is {smallest_fit}, \
         choose one that leaves room to grow and keep it)"
    )]
    TableTooSmall {
        /// Nodes requested.
        nodes: usize,
        /// The table size given.
        table_size: usize,
        /// The smallest prime `>= 100 x nodes`.
        smallest_fit: usize,
    },
    /// A slot count of 0 or above the supported maximum.
    #[error("slot count must be within 1..={max}, got {slots}")]
    InvalidSlotCount {
        /// Slots requested.
        slots: usize,
        /// The limit.
        max: usize,
    },
    /// A split key that is not strictly inside a range, or a bad range.
    #[error("invalid split key: {reason}")]
    InvalidSplit {
        /// Why the key was rejected.
        reason: String,
    },
    /// Two ranges that cannot be merged (not adjacent, or unknown).
    #[error("cannot merge ranges: {reason}")]
    InvalidMerge {
        /// Why the merge was rejected.
        reason: String,
    },
    /// A malformed parameter (e.g. a distribution or algorithm name).
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// Render node bytes for an error message.
pub(crate) fn node_name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
