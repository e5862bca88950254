//! Integration tests: one binary, one module per area under tests/suite/.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod suite;
