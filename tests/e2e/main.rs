//! End-to-end tests: they run the real `sluice` binary against real files, pipes,
//! signals, HTTP and real servers (moto, tansu, syslog senders, Prometheus). The corpus,
//! Loghub-accuracy and Prometheus-replay tests need `../shared`; like the tests that
//! need a tool, they skip with a message on a user's machine and fail when
//! SLUICE_REQUIRE_TOOLS is set (CI sets it).

mod harness;

mod kafka;
mod loki;
mod s3;

mod api;
mod config_errors;
mod corpus;
mod delivery;
mod docs;
mod faults;
mod files_scale;
mod guides;
mod mining;
mod observability;
mod reload;
mod sampling;
mod stages;
mod stdin;
mod syslog;
mod tail;
mod tools;
