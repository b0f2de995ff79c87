//! Restore: build a plan from a point (what to create, which blobs to read from which pack), then execute it.
//!
//! Planning first gives a free dry run, exact totals for progress, and the grouping that lets execution read each
//! pack with as few ranged reads as possible (blobs sorted by offset, neighbours merged into one read).

pub mod disk;
mod execute;
mod plan;
mod verify;

pub use execute::{Report, execute};
pub use plan::{Action, Plan, PlanEntry, plan};
pub use verify::verify;

use crate::backup::exclude::Patterns;
use crate::vault::VaultError;

/// What to restore and how.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Only entries matching one of these (or below a match) are restored, with the directories leading to them.
    pub includes: Patterns,
    /// Entries matching one of these are skipped with everything below them.
    pub excludes: Patterns,
    /// Set ownership (as root).
    pub owner: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("restore target {path}: {source}")]
    Target { path: String, source: std::io::Error },
}
