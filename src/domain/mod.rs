//! Plain data and the rules over it: identifiers, time, tiers and their policies, the user
//! profile with its settings, sessions and their binding to an origin, the login lockout
//! and decision, challenges, second factors, risk, consent and activity.
//!
//! Nothing here knows about actors, storage or HTTP. Every rule that depends on time takes
//! `now` as a parameter, so it is unit-tested without clocks.

pub mod activity;
pub mod audit;
pub(crate) mod binding;
pub mod catalog;
pub(crate) mod challenge;
pub mod companion;
pub mod consent;
pub mod custom_model;
pub mod dashboard;
pub mod denylist;
pub mod directory;
pub mod email;
pub mod engagement;
pub mod federated;
pub mod feedback;
pub mod hex;
pub mod history;
pub mod hold;
pub mod ids;
pub mod import_ledger;
pub mod integration;
pub mod job;
pub mod link;
pub(crate) mod lockout;
pub(crate) mod login;
pub mod mfa;
pub mod password;
pub mod profile;
pub(crate) mod rate;
pub mod revocation;
pub mod risk;
pub mod schedule;
pub mod security_log;
pub mod session;
pub mod settings;
pub mod share;
pub mod siem;
pub mod taste;
pub mod tier;
pub mod time;
pub mod validation;
