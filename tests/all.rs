//! Integration tests: one binary, one module per area under tests/suite/.
mod suite;
