//! `coffer policy set|list|remove`, `coffer vault show|set`

use super::Global;
use super::forget::KeepArgs;
use anyhow::Result;
use coffer::format::admin::{Settings, StoredPolicy};
use coffer::maintain::settings::{check_change, with_policy, with_value, without_policy};
use coffer::vault::Vault;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Store a retention policy (replacing one of the same name); `coffer forget` with no rules applies it
    Set {
        name: String,
        #[command(flatten)]
        keep: KeepArgs,
        /// Apply to points of this host only
        #[arg(long)]
        host: Option<String>,
        /// Apply to points that backed up this path (repeatable)
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// Apply to points with this tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// List the stored policies
    List,
    /// Remove a stored policy
    Remove { name: String },
}

#[derive(clap::Subcommand)]
pub enum VaultCommand {
    /// Show the vault's settings
    Show,
    /// Change settings: immutable=off|on|locked, soft-delete=DURATION (e.g. 14d)
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
}

pub fn policy(g: &Global, cmd: PolicyCommand) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    let current = vault.settings()?;
    let next = match cmd {
        PolicyCommand::List => {
            print_policies(g, &current)?;
            return Ok(ExitCode::SUCCESS);
        }
        PolicyCommand::Set {
            name,
            keep,
            host,
            paths,
            tags,
        } => with_policy(
            &current,
            StoredPolicy {
                name,
                keep: keep.policy(),
                host,
                paths,
                tags,
            },
        )?,
        PolicyCommand::Remove { name } => without_policy(&current, &name)?,
    };
    save(g, &vault, &current, next)
}

pub fn vault_settings(g: &Global, cmd: VaultCommand) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    let current = vault.settings()?;
    match cmd {
        VaultCommand::Show => {
            show(g, &current)?;
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Set { assignments } => {
            let mut next = current.clone();
            for a in &assignments {
                next = with_value(&next, a)?;
            }
            save(g, &vault, &current, next)
        }
    }
}

/// Checks the change against the immutability rules, then records it.
fn save(g: &Global, vault: &Vault, current: &Settings, next: Settings) -> Result<ExitCode> {
    check_change(&vault.load_points()?, current, &next)?;
    let saved = vault.save_settings(current, next)?;
    if !g.quiet {
        eprintln!("vault settings changed (version {})", saved.seq);
    }
    Ok(ExitCode::SUCCESS)
}

fn show(g: &Global, s: &Settings) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("immutable     {}", s.immutable.as_str());
    println!("soft-delete   {}", s.soft_delete);
    println!("policies      {}", s.policies.len());
    if s.seq > 0 {
        println!(
            "changed       {} by {} (version {})",
            &s.changed[..19.min(s.changed.len())],
            s.by,
            s.seq
        );
    }
    Ok(())
}

fn print_policies(g: &Global, s: &Settings) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s.policies)?);
        return Ok(());
    }
    for p in &s.policies {
        let mut scope = Vec::new();
        scope.extend(p.host.iter().map(|h| format!("host {h}")));
        scope.extend(p.paths.iter().map(|x| format!("path {x}")));
        scope.extend(p.tags.iter().map(|t| format!("tag {t}")));
        let scope = if scope.is_empty() {
            "all points".to_string()
        } else {
            scope.join(", ")
        };
        println!("{}: {} ({scope})", p.name, describe(&p.keep));
    }
    if s.policies.is_empty() && !g.quiet {
        eprintln!("no policies stored");
    }
    Ok(())
}

/// The rules of a policy as the flags that set them.
fn describe(p: &coffer::retention::Policy) -> String {
    let counts = [
        ("last", p.last),
        ("hourly", p.hourly),
        ("daily", p.daily),
        ("weekly", p.weekly),
        ("monthly", p.monthly),
        ("yearly", p.yearly),
    ];
    let mut parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("--keep-{k} {n}"))
        .collect();
    parts.extend(p.within.map(|w| format!("--keep-within {w}")));
    parts.extend(p.tags.iter().map(|t| format!("--keep-tag {t}")));
    parts.join(" ")
}
