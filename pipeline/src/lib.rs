//! The sluice runtime: sources, topology, acknowledgements, admin API.
//!
//! * [`registry`]: one line per component type.
//! * [`sources`]: `file` (tail with rotation and checkpoints) and `stdin`.
//! * [`topology`]: channels, threads, sink runners, shutdown.
//! * [`api`]: `/health/live`, `/health/ready`, `/metrics`, `/api/v1/status`.

pub mod api;
pub mod lines;
pub mod multiline;
pub mod registry;
pub mod sampling;
pub mod sources;
pub mod stats;
pub mod topology;
