//! Vault maintenance: `check`, `forget`, the settings rules and `stats` (later prune).

pub mod check;
pub mod forget;
pub mod prune;
pub mod settings;
pub mod stats;
pub mod usage;
