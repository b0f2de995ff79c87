//! Vault maintenance: `check`, `forget` and the settings rules (later prune and stats).

pub mod check;
pub mod forget;
pub mod prune;
pub mod settings;
pub mod usage;
