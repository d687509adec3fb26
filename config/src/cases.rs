//! `[[tests]]`: unit tests of a pipeline, run by `sluice test`.
//!
//! ```toml
//! [[tests]]
//! name = "a failed payment becomes payment_failed"
//! input = { component = "payments_parse", lines = ["2026-01-01 10:00:00,000 ERROR [pay] [t1] Payment failed for user 42: Card declined"] }
//! expect = [{ event = "payment_failed", error = "Card declined", absent = ["parse_error"] }]
//! ```
//! The lines are fed into `component` (a source's lines go to its consumers; a
//! transform processes them), and the pipeline runs as configured from there up to, not
//! including, the sinks. `expect` lists the events that reach the sinks, in order: in
//! each table the listed fields must be equal, the fields named in `absent` must not
//! exist, and `matches = { field = "regex" }` must match. `expect_none = true` expects
//! no event at all.

use serde::Deserialize;

/// One `[[tests]]` entry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the test checks (shown in the report).
    pub name: String,
    /// `{ component = "parse_app", lines = ["…"] }`: the lines, fed into that source or
    /// transform.
    pub input: TestInput,
    /// The events expected to reach the sinks, in order: per event, fields that must be
    /// equal (`{ event = "login", user = "bob" }`), `absent = ["email"]` and
    /// `matches = { message = "regex" }`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<AnyTable>>")]
    pub expect: Option<Vec<toml::Table>>,
    /// True: no event may reach a sink.
    #[serde(default)]
    pub expect_none: bool,
    /// The test's position in its file (`FILE:LINE`), for the report.
    #[serde(skip)]
    pub location: String,
}

/// `input = { component = "…", lines = ["…"] }`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// A source or transform of the configuration.
    pub component: String,
    /// Lines as a source would read them (without line terminators).
    pub lines: Vec<String>,
}

/// For the reference: a table of any keys.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct AnyTable {}
