//! Integration tests, compiled into one binary (one link on two cores), one module per
//! area. `support` opens engines and servers on temporary data directories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod analytics;
mod analyze_tiers;
mod backup;
mod bad_input;
mod catalog;
mod churn;
mod companion;
mod concurrency;
mod console;
mod crash;
mod custom_models;
mod encryption;
mod fake_music;
mod fake_provider;
mod federated;
mod forecast;
mod generate_analytics;
mod holds;
mod http;
mod integrations;
mod jobs;
mod layers;
mod lifecycle;
mod link_jobs;
mod loadgen;
mod logs;
mod mfa;
mod music_links;
mod persistence;
mod personalization;
mod privacy;
mod provision_files;
mod provisioning;
mod recommendations;
mod recommender_report;
mod revocation;
mod run_all;
mod scim;
mod server;
mod support;
mod token_life;
mod webauthn;
mod ws;
