//! The `tether` server as a library: configuration, wiring and the serve loop. The binary
//! (`src/main.rs`) only parses the command line; a custom server with extra provider crates
//! links them and calls [`start`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
mod demo;
mod listing;
mod serve;

pub use config::Config;
pub use listing::providers_listing;
pub use serve::{RunningServer, ServeOptions, build_engine, open_store, start};
