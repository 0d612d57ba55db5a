//! sea-orm entities of the Tether tables.
//!
//! Column conventions, the same on every backend:
//! - ids are UUID strings (36 characters);
//! - times are BIGINT unix milliseconds (no database time zones involved);
//! - lists (scopes) and extras are TEXT holding JSON;
//! - secrets are TEXT holding [`SealedSecret`](tether_core::SealedSecret)s
//!   (`v1.<key id>.<base64url>`), sealed for their table, row id and column.

pub mod auth_flow;
pub mod client_registration;
pub mod connection;
pub mod event;
pub mod webhook_delivery;
