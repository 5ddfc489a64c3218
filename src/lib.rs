//! Roster: a user-management engine and server.
//!
//! The crate is layered; each module depends only on those above it in this list:
//!
//! - [`domain`]: plain data and rules — ids, time, tiers and policies, profiles,
//!   settings, sessions, lockout. No actors, storage or I/O.
//! - [`security`]: password policy and argon2id hashing on a bounded worker pool;
//!   self-routing session tokens.
//! - [`store`]: the snapshot codec (format version + checksum + bincode), the `Store`
//!   trait with its sled implementation, and group commit.
//! - [`config`]: layered settings (embedded default, file, `ROSTER_*` environment),
//!   validated once into a typed [`config::Config`].
//! - [`api`]: the axum HTTP facade (REST under `/api/v1`, problem+json errors, the
//!   OpenAPI document), a client of [`UserManager`] like the CLI.
//! - [`engine`]: one actix actor per live user, tier-sharded registries that activate,
//!   passivate and restart them, the directory that routes to them, and
//!   [`UserManager`], the front door the server, CLI, tests and benches all use;
//!   and the per-user event streams the actors publish to WebSocket clients.
//! - [`loadgen`]: `roster loadgen`, an open-model load generator for any Roster server
//!   (HTTP and socket scenarios, HDR histograms, JSON reports).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use roster::{Config, UserManager, UserTier, domain::profile::ProfilePatch};
//! let manager = UserManager::open(Config::load(None, &Default::default())?)?;
//! let profile = manager
//!     .create_user("user@example.com", "correct horse battery staple", UserTier::Premium,
//!                  ProfilePatch { display_name: Some("John Doe".into()), ..Default::default() })
//!     .await?;
//! let insights = manager.get_user_insights(profile.id).await?;
//! # let _ = insights; Ok(()) }
//! ```

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod loadgen;
pub mod metrics;
pub mod notify;
pub mod security;
pub mod server;
pub mod store;

pub use config::Config;
pub use domain::tier::UserTier;
pub use engine::{EngineError, LoginOutcome, UserManager};
