//! Forwarding: per storage, its queue and its sender (being written).

pub mod status;

pub use status::{SenderState, StorageStatus};
