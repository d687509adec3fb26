//! `sluice pseudonym NAME VALUE`: the pseudonym a `mask` stage in `hash` mode writes for
//! a value (an e-mail address from a support ticket), with the same key, so on-call can
//! search the logs for one user without sluice ever storing the address.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The detector (`email`, `phone`, `credit_card`, …) or the sensitive field
    /// (`user_id`) that masked the value.
    name: String,
    /// The value as the user or a ticket gives it.
    value: String,
    /// Environment variable holding the key (as the stage's `hash_key_env`).
    #[arg(long, default_value = "SLUICE_MASK_KEY", conflicts_with = "key_file")]
    key_env: String,
    /// File holding the key (as the stage's `hash_key_file`).
    #[arg(long, value_name = "FILE")]
    key_file: Option<String>,
}

pub fn main(args: Args) -> ExitCode {
    let key = match &args.key_file {
        Some(f) => match std::fs::read(f) {
            Ok(k) => k.trim_ascii().to_vec(),
            Err(e) => {
                eprintln!("sluice pseudonym: cannot read {f}: {e}");
                return ExitCode::from(1);
            }
        },
        None => std::env::var(&args.key_env).unwrap_or_default().into_bytes(),
    };
    if key.is_empty() {
        eprintln!(
            "sluice pseudonym: no key: set {} (or --key-file) to the key of the mask stage",
            args.key_file.as_deref().unwrap_or(&args.key_env)
        );
        return ExitCode::from(1);
    }
    println!("{}", sluice_transforms::mask::pseudonym_for(&key, &args.name, &args.value));
    ExitCode::SUCCESS
}
