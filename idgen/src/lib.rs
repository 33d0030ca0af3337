//! ringleader idgen (work in progress).
#![forbid(unsafe_code)]
