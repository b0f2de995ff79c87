//! coffer: encrypted, deduplicating backups of Linux machines into a vault, browsable without a full restore.
//!
//! Data flows one way: sources -> chunker -> vault -> store on the way in; store -> vault -> view -> restore on the
//! way out. See docs/architecture.md for the map and the invariants.

pub mod backup;
pub mod chunker;
pub mod crypto;
pub mod format;
pub mod fsmeta;
pub mod fuse;
pub mod jobconf;
pub mod maintain;
pub mod mountfs;
pub mod partition;
pub mod restore;
pub mod retention;
pub mod span;
pub mod store;
pub mod util;
pub mod vault;
pub mod view;
