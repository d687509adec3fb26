//! End-to-end tests: they run the real `sluice` binary against real files, pipes,
//! signals and HTTP. Nothing here needs ../shared.

mod harness;

mod kafka;
mod loki;
mod s3;

mod api;
mod config_errors;
mod corpus;
mod docs;
mod files_scale;
mod guides;
mod mining;
mod observability;
mod sampling;
mod stages;
mod stdin;
mod syslog;
mod tail;
mod tools;
