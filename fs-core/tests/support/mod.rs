//! Shared test support.

pub mod model;
