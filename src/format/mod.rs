//! Encodings of everything stored in a vault. No I/O here: bytes in, values out (see docs/format.md).

pub mod admin;
pub mod config;
pub mod ids;
pub mod index;
pub mod job;
pub mod lock;
pub mod pack;
pub mod point;
pub mod sources;
pub mod tree;
