//! Roster: a user-management engine and server.
//!
//! The crate is layered; each module uses only the ones it lists (the test
//! `tests/it/layers.rs` holds the code to this map):
//!
//! | module | what it is | uses |
//! |---|---|---|
//! | [`domain`] | plain data and pure rules taking `now`: ids, tiers, profiles, sessions and their binding, lockout, the login decision, challenges, risk, consent, audit vocabulary, activity history and taste | — |
//! | [`security`] | crypto only: argon2id on a bounded pool, tokens, TOTP and one-time codes, keys, passkeys | domain |
//! | [`config`] | raw layers (file, environment, flags) → validated, typed sections → tiers | domain |
//! | `metrics` | the Prometheus registry | domain |
//! | [`store`] | the storage traits split by concern, one atomic write door, the codec, the audit record format, the single writer (group commit); the sled backend | domain, security, config |
//! | `notify` | emails and texts, sent from a thread of their own | domain, config, metrics |
//! | [`analytics`] | batch work over the stored population, one member at a time: cohorts, the overview, the churn model, segments, the population simulator | domain |
//! | [`personalization`] | the recommender as pure computation: the serving index, the collaborative model and its training, the blend with its reasons, bias mitigation, quality measures, the planted-taste simulator | domain |
//! | [`integrations`] | the integration hub's provider side: the provider registry with its credentials, OAuth 2.0 authorization with PKCE, Last.fm's signatures | domain, config |
//! | [`engine`] | one actix actor per live user, tier-sharded registries, the directory, event streams, the keyring; and [`UserManager`], the one front door, a facade per capability, every call taking a [`Principal`](engine::Principal) | domain, security, store, config, metrics, notify, analytics, personalization, integrations |
//! | [`jobs`] | the scheduler inside `roster serve` and one file per job, each a client of the front door acting as its own system principal | domain, config, the engine's front door |
//! | [`api`] | the axum facade: `/api/v1` routes a file per area, extractors, problem+json, OpenAPI, sockets | domain, config, metrics, the engine's front door |
//! | [`server`] | the engine behind the API and the scheduler: listeners, drain, shutdown snapshot | config, api, jobs, the engine's front door |
//! | [`loadgen`] | `roster loadgen`, a client of the HTTP API | domain, security, personalization (the planted catalog and listeners of `recommend`) |
//! | [`cli`] | the `roster` commands, each a client of the front door (or of a server) | domain, config, server, jobs, loadgen, the engine's front door; analytics and personalization (the simulators) and security (hashing the passwords `simulate` imports) |
//!
//! "The front door" is what `crate::engine` exports at its top ([`UserManager`], the
//! facades, [`Principal`](engine::Principal), the outcome types); the layers above the
//! engine never name its modules, so the rules the engine applies (access, step-up, tier
//! gates, audit) are the only way in.
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

pub mod analytics;
pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod integrations;
pub mod jobs;
pub mod loadgen;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod personalization;
pub mod security;
pub mod server;
pub mod store;

pub use config::Config;
pub use domain::tier::UserTier;
pub use engine::{EngineError, LoginOutcome, UserManager};
