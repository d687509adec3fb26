//! The sluice runtime: wires sources, transforms and sinks into a running pipeline.
//!
//! * [`registry`]: one line per component type (sources from `sluice-sources`,
//!   transforms from `sluice-transforms`, sinks from `sluice-sinks`).
//! * [`topology`]: channels, threads, sink runners, shutdown.
//! * [`controls`]: the handles stages expose (the sampling switch), owned by the
//!   running pipeline and used by the admin API, flags and saved state.
//! * [`api`]: `/health/live`, `/health/ready`, `/metrics`, `/api/v1/status`.

pub mod api;
pub mod controls;
pub mod reference;
pub mod registry;
pub mod topology;
