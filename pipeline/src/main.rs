//! The `sluice` command: parses the command line and hands each subcommand to its
//! module under `cli/`.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// jemalloc: on the whole legacy pipeline (W1 in BENCHMARKS.md) 9% fewer CPU-seconds
/// than glibc's allocator, which spends them on frees of events made on another thread
/// (mimalloc was slower than both).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Pages freed are given back after a second instead of ten, so memory follows the
/// work; threads allocate from the arena of the CPU they run on (one per CPU) instead
/// of jemalloc's default four arenas per CPU, each keeping its own free pages: a
/// pipeline runs a thread per stage, many more than there are cores (W1: peak RSS
/// 3 to 9 MiB lower, CPU unchanged). `_RJEM_MALLOC_CONF` in the environment overrides
/// these.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: ConfPtr = ConfPtr(c"dirty_decay_ms:1000,muzzy_decay_ms:0,percpu_arena:percpu".as_ptr());

#[repr(transparent)]
struct ConfPtr(*const std::ffi::c_char);
// SAFETY: a pointer to a static, immutable C string.
unsafe impl Sync for ConfPtr {}

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
    /// Print the pseudonym a `mask` stage in `hash` mode writes for a value (find one
    /// user's lines from the address a ticket gives).
    Pseudonym(cli::pseudonym::Args),
    /// Stream the events leaving a component of a running sluice as NDJSON.
    Tap(cli::tap::Args),
    /// A live view of a running sluice: throughput, drops, errors, lag, sampling.
    Top(cli::top::Args),
    /// Run the `[[tests]]` of a configuration: feed lines into a component and check the
    /// events that reach the sinks (exit 1 when a test fails).
    Test(cli::test::Args),
    /// Check a configuration: exit 0 with a one-line summary, or 2 with the errors.
    Validate(cli::validate::Args),
    /// Print a shell completion script: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `sluice man | man -l -`.
    Man,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => cli::run::main(args),
        Command::Sampling(args) => cli::sampling::main(args),
        Command::Templates { action } => cli::templates::main(action),
        Command::Pseudonym(args) => cli::pseudonym::main(args),
        Command::Tap(args) => cli::tap::main(args),
        Command::Top(args) => cli::top::main(args),
        Command::Test(args) => cli::test::main(args),
        Command::Validate(args) => cli::validate::main(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let mut out = Vec::new();
            let cmd = Cli::command();
            if let Err(e) = man_page(&cmd, &mut out) {
                eprintln!("sluice man: {e}");
                return ExitCode::from(1);
            }
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out);
            ExitCode::SUCCESS
        }
    }
}

/// The man page: the command, then a section per subcommand with its options.
fn man_page(cmd: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands() {
        let name = format!("sluice {}", sub.get_name());
        let m = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.extend_from_slice(format!("{about}\n").as_bytes());
        }
        m.render_synopsis_section(out)?;
        m.render_options_section(out)?;
    }
    out.extend_from_slice(MAN_TAIL.as_bytes());
    Ok(())
}

const MAN_TAIL: &str = r#".SH FILES
.TP
\fB/etc/sluice/sluice.toml\fR
The configuration (deploy/systemd/sluice.service uses it). The reference of every
component and option is docs/reference.md.
.TP
\fBdata_dir\fR
Checkpoints, sampling state and learned templates (one sluice process per directory).
.SH ENVIRONMENT
.TP
\fBSLUICE_LOG\fR
Log filter (tracing syntax: info, debug, sluice_sources=debug). Logs are JSON on stderr.
.TP
\fBSLUICE_API_URL\fR, \fBSLUICE_API_TOKEN\fR
The admin API for \fBsampling\fR, \fBtap\fR and \fBtop\fR.
.SH EXIT STATUS
0: success (a run drained and saved its checkpoints). 1: a component failed, the drain
timed out, or a test failed. 2: the configuration is invalid.
"#;
