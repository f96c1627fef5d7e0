//! Pure rules, no I/O: parsing, validation, signing, timestamps.

pub mod backoff;
pub mod boolean;
pub mod config;
pub mod delivery;
pub mod duration;
pub mod endpoint;
pub mod event;
pub mod json;
pub mod secret;
pub mod signature;
pub mod ssrf;
pub mod text;
pub mod time;
