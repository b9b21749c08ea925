//! revlake's integration tests: one binary, a module per feature.

mod cli;
mod common;
mod lake;
mod s3;
mod sql;
