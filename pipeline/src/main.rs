//! The `sluice` command: parses the command line and hands each subcommand to its
//! module under `cli/`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Log-stream processing pipeline: tail, parse, enrich, mask, sample, ship.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its input ends or SIGTERM/SIGINT (then drain and exit 0).
    Run(cli::run::Args),
    /// Switch sampling off during an incident, back on, or show its state (through the
    /// admin API of a running sluice).
    Sampling(cli::sampling::Args),
    /// Learn printf templates from logs (see `sluice templates mine --help`).
    Templates {
        #[command(subcommand)]
        action: cli::templates::Action,
    },
    /// Stream the events leaving a component of a running sluice as NDJSON.
    Tap(cli::tap::Args),
    /// A live view of a running sluice: throughput, drops, errors, lag, sampling.
    Top(cli::top::Args),
    /// Run the `[[tests]]` of a configuration: feed lines into a component and check the
    /// events that reach the sinks (exit 1 when a test fails).
    Test(cli::test::Args),
    /// Check a configuration: exit 0 with a one-line summary, or 2 with the errors.
    Validate(cli::validate::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => cli::run::main(args),
        Command::Sampling(args) => cli::sampling::main(args),
        Command::Templates { action } => cli::templates::main(action),
        Command::Tap(args) => cli::tap::main(args),
        Command::Top(args) => cli::top::main(args),
        Command::Test(args) => cli::test::main(args),
        Command::Validate(args) => cli::validate::main(args),
    }
}
