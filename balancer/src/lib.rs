//! ringleader balancer (work in progress).
#![forbid(unsafe_code)]
