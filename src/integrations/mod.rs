//! The integration hub's provider side (issue 21): the registry of providers from
//! config with their credentials, the OAuth 2.0 authorization request with PKCE, and
//! Last.fm's signed calls, Apple Music's developer token, an operator's provider's
//! endpoints discovered from its issuer, the token endpoint and the
//! providers' listening history. Plain computation and provider protocol: the links
//! themselves live in each user's actor.

pub mod apple;
pub mod discovery;
pub mod history;
pub mod lastfm;
pub mod oauth;
pub mod registry;
pub mod tokens;

pub use registry::{Availability, Provider, ProviderInfo, Registry};
