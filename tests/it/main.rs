//! revlake's integration tests: one binary, a module per feature.

mod alerts;
mod cli;
mod common;
mod connectors;
mod files;
mod forecast;
mod gong;
mod hubspot;
mod lake;
mod mining;
mod models;
mod pipedrive;
mod quality;
mod s3;
mod scoring;
mod salesforce;
mod simulate;
mod singer;
mod sql;
mod staging;
mod stripe;
mod zendesk;
