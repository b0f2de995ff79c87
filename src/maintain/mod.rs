//! Vault maintenance: `check` (and later forget, prune, stats).

pub mod check;
