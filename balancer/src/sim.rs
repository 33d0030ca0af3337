//! Deterministic discrete-event simulator (in progress).
