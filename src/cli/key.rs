//! `coffer key list|add|remove|passwd`

use super::Global;
use anyhow::Result;
use coffer::crypto::KdfParams;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// List the keys
    List,
    /// Add a key for another passphrase (COFFER_NEW_PASSWORD, --new-password-file, or asked)
    Add {
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key (not the last one)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the passphrase of the key in use (adds a new key, then removes the old one)
    Passwd {
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

pub fn run(g: &Global, cmd: KeyCommand) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    match cmd {
        KeyCommand::List => {
            let keys = vault.list_keys()?;
            if g.json {
                let arr: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({"id": k.id.to_hex(), "created": k.created, "host": k.host,
                            "user": k.user, "current": k.current})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&arr)?);
            } else {
                for k in keys {
                    let cur = if k.current { "*" } else { " " };
                    println!(
                        "{cur}{}  {}  {}@{}",
                        k.id.short(),
                        k.created.get(..19).unwrap_or(&k.created),
                        k.user,
                        k.host
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file } => {
            let pass = g.new_passphrase("COFFER_NEW_PASSWORD", new_password_file.as_ref())?;
            let id = vault.add_key(pass.as_bytes(), KdfParams::DEFAULT)?;
            println!("{}", id.short());
        }
        KeyCommand::Remove { id } => {
            let id = vault.find_key(&id)?;
            vault.remove_key(&id)?;
            if !g.quiet {
                eprintln!("removed key {}", id.short());
            }
        }
        KeyCommand::Passwd { new_password_file } => {
            let pass = g.new_passphrase("COFFER_NEW_PASSWORD", new_password_file.as_ref())?;
            let id = vault.add_key(pass.as_bytes(), KdfParams::DEFAULT)?;
            vault.remove_key(&vault.key_id())?;
            if !g.quiet {
                eprintln!(
                    "passphrase changed (key {} replaced by {})",
                    vault.key_id().short(),
                    id.short()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
