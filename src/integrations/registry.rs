//! The providers an operator configured, each with the client credentials it was
//! given (in config, or in the environment variables config names), and whether it can
//! be linked at all: a provider without credentials is listed as unavailable, not an
//! error.

use serde::Serialize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::apple::{self, DeveloperToken};
use super::discovery::{self, DiscoveryError, Endpoints};
use crate::config::{IntegrationsConfig, ProviderConfig, Secret};
use crate::domain::integration::{AuthMode, Category};
use crate::domain::time::Timestamp;

/// Whether a provider can be linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Ready to link.
    Available,
    /// Its client id (or API key) is not configured.
    MissingClientId,
    /// Its client secret (or signing key) is not configured, and its mechanism needs one.
    MissingClientSecret,
    /// Apple Music: the team id that signs developer tokens is not configured.
    MissingTeamId,
    /// Apple Music: the signing key is not a PKCS#8 PEM P-256 key.
    InvalidSigningKey,
}

/// A provider with its credentials.
#[derive(Clone, Debug)]
pub struct Provider {
    /// What config says of it.
    pub config: ProviderConfig,
    /// Its client id (OAuth 2.0), API key (Last.fm) or key id (Apple Music).
    pub client_id: Option<String>,
    /// Its client secret, shared secret (Last.fm) or signing key (Apple Music).
    pub client_secret: Option<Secret>,
}

impl Provider {
    /// Whether it can be linked, and if not, what is missing.
    pub fn availability(&self) -> Availability {
        let secret_needed = match self.config.auth {
            // A public client (PKCE) may have no secret.
            AuthMode::Oauth2 => !self.config.pkce,
            AuthMode::Lastfm | AuthMode::AppleMusic => true,
            // The companion's key is made per link: nothing to configure.
            AuthMode::ApiKey => return Availability::Available,
        };
        if self.client_id.is_none() {
            Availability::MissingClientId
        } else if secret_needed && self.client_secret.is_none() {
            Availability::MissingClientSecret
        } else if self.config.auth == AuthMode::AppleMusic {
            if self.config.team_id.is_none() {
                Availability::MissingTeamId
            } else if self.signing_key().is_none() {
                Availability::InvalidSigningKey
            } else {
                Availability::Available
            }
        } else {
            Availability::Available
        }
    }

    /// Apple Music: the key developer tokens are signed with (the client secret's PEM).
    pub fn signing_key(&self) -> Option<p256::ecdsa::SigningKey> {
        let pem = self.client_secret.as_ref()?;
        apple::signing_key(pem.expose()).ok()
    }

    /// What a client may know of it.
    pub fn info(&self) -> ProviderInfo {
        let c = &self.config;
        ProviderInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            category: c.category,
            auth: c.auth,
            pkce: c.pkce,
            scopes: c.scopes.clone(),
            syncs_history: c.history.is_some() && c.api_base_url.is_some(),
            availability: self.availability(),
            tier_allows: None,
        }
    }
}

/// A provider as the API lists it (never its credentials).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    /// Its stable id (`spotify`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What kind of service it is.
    pub category: Category,
    /// How it is linked.
    pub auth: AuthMode,
    /// Whether its authorization request carries a PKCE challenge.
    pub pkce: bool,
    /// The scopes a link asks for.
    pub scopes: Vec<String>,
    /// Whether a link's listening history is synced (`POST …/sync`).
    pub syncs_history: bool,
    /// Whether it can be linked.
    pub availability: Availability,
    /// Whether the asking user's tier may link it (absent for an operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_allows: Option<bool>,
}

/// Every configured provider, in id order, and the HTTP client that talks to them.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    providers: Vec<Provider>,
    /// The client for providers' token, revocation and API endpoints: the configured
    /// timeout, no redirects followed (a token endpoint that redirects is misconfigured,
    /// and following one would send credentials elsewhere).
    pub http: reqwest::Client,
    /// Developer tokens signed, by provider id (Apple Music), reused while they have
    /// more than half their life ahead.
    developer_tokens: Arc<Mutex<Vec<(String, DeveloperToken)>>>,
    /// What discovery found, by id of a provider with an issuer: behind a lock each,
    /// held across the fetch, so a provider has one discovery at a time and the
    /// callers waiting for it take its outcome.
    discovered: Arc<HashMap<String, Arc<tokio::sync::Mutex<Discovered>>>>,
}

/// How long discovered endpoints are used before the document is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(86_400);
/// How long a failed discovery answers for the issuer before it is asked again: an
/// outage costs one fetch per provider per this, not one per call.
const FAILURE_TTL: Duration = Duration::from_secs(30);

/// A provider's discoveries: the endpoints found last and when, and the failure
/// since, and when.
#[derive(Debug, Default)]
struct Discovered {
    endpoints: Option<(Endpoints, Timestamp)>,
    failed: Option<(DiscoveryError, Timestamp)>,
}

impl Discovered {
    /// What serves at `now` without asking the issuer: endpoints of the day, or
    /// during a failure's [`FAILURE_TTL`] the failure (or the endpoints found before
    /// it, past their day: they serve while the issuer fails).
    fn current(&self, now: Timestamp) -> Option<Result<Endpoints, DiscoveryError>> {
        let known = self.endpoints.as_ref();
        if let Some((e, _)) = known.filter(|(_, at)| now.since(*at) < DISCOVERY_TTL) {
            return Some(Ok(e.clone()));
        }
        let (err, _) = self
            .failed
            .as_ref()
            .filter(|(_, at)| now.since(*at) < FAILURE_TTL)?;
        Some(known.map(|(e, _)| e.clone()).ok_or_else(|| err.clone()))
    }

    /// Keeps the outcome of a discovery at `now`; what serves.
    fn keep(
        &mut self,
        outcome: Result<Endpoints, DiscoveryError>,
        now: Timestamp,
    ) -> Result<Endpoints, DiscoveryError> {
        match outcome {
            Ok(e) => {
                self.endpoints = Some((e.clone(), now));
                self.failed = None;
                Ok(e)
            }
            Err(err) => {
                self.failed = Some((err.clone(), now));
                self.endpoints.as_ref().map(|(e, _)| e.clone()).ok_or(err)
            }
        }
    }
}

impl Registry {
    /// The registry of `config`, reading credentials not given there through `env`
    /// (`std::env::var` in the server; empty values count as missing).
    pub fn new(config: &IntegrationsConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let providers = config
            .providers
            .iter()
            .map(|c| Provider {
                client_id: c.client_id.clone().or_else(|| read(&c.client_id_env)),
                client_secret: c
                    .client_secret
                    .clone()
                    .or_else(|| read(&c.client_secret_env).map(Secret::new)),
                config: c.clone(),
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the providers' HTTP client has no TLS: using the default client");
                reqwest::Client::new()
            });
        let discovered = config
            .providers
            .iter()
            .filter(|c| c.issuer.is_some())
            .map(|c| (c.id.clone(), Arc::default()))
            .collect();
        Self {
            providers,
            http,
            developer_tokens: Arc::default(),
            discovered: Arc::new(discovered),
        }
    }

    /// A developer token of provider `id` (Apple Music) good at `now` for at least half
    /// its configured life: the one signed last, or a new one. `None` unless the
    /// provider signs them and is available.
    pub fn developer_token(&self, id: &str, now: Timestamp) -> Option<DeveloperToken> {
        let p = self.get(id)?;
        let ttl = p.config.token_ttl;
        if p.config.auth != AuthMode::AppleMusic || p.availability() != Availability::Available {
            return None;
        }
        let mut cache = self
            .developer_tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, t)) = cache.iter().find(|(p, _)| p == id)
            && t.expires_at > now.plus(ttl / 2)
        {
            return Some(t.clone());
        }
        let key = p.signing_key()?;
        let token = apple::developer_token(
            &key,
            p.client_id.as_deref()?,
            p.config.team_id.as_deref()?,
            now,
            ttl,
        );
        cache.retain(|(p, _)| p != id);
        cache.push((id.to_owned(), token.clone()));
        Some(token)
    }

    /// The provider `id`.
    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.id == id)
    }

    /// The provider `id` with every endpoint at `now`: an operator's provider with an
    /// `issuer` gets those config leaves out from its discovery document, read on
    /// first use and again a day later (config's own endpoints win). A failed
    /// discovery answers for [`FAILURE_TTL`]; endpoints found before it still serve.
    pub async fn resolve(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Provider>, DiscoveryError> {
        let Some(p) = self.get(id) else {
            return Ok(None);
        };
        let c = &p.config;
        let (Some(issuer), Some(slot)) = (c.issuer.as_ref(), self.discovered.get(id)) else {
            return Ok(Some(p.clone()));
        };
        if c.authorization_url.is_some() && c.token_url.is_some() && c.revocation_url.is_some() {
            return Ok(Some(p.clone()));
        }
        let found = {
            let mut d = slot.lock().await;
            match d.current(now) {
                Some(current) => current,
                None => {
                    let outcome = discovery::discover(&self.http, issuer).await;
                    if let Err(err) = &outcome {
                        tracing::warn!(provider = id, error = %err, "endpoint discovery failed");
                    }
                    d.keep(outcome, now)
                }
            }
        }?;
        let mut p = p.clone();
        let c = &mut p.config;
        c.authorization_url.get_or_insert(found.authorization);
        c.token_url.get_or_insert(found.token);
        if c.revocation_url.is_none() {
            c.revocation_url = found.revocation;
        }
        Ok(Some(p))
    }

    /// Every provider as the API lists it.
    pub fn list(&self) -> Vec<ProviderInfo> {
        self.providers.iter().map(Provider::info).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_failed_discovery_answers_for_a_while_and_endpoints_found_before_keep_serving() {
        let at = |secs: u64| Timestamp::from_millis(1_000_000).plus(Duration::from_secs(secs));
        let url = |p: &str| url::Url::parse(&format!("https://id.example.com/{p}")).unwrap();
        let found = Endpoints {
            authorization: url("authorize"),
            token: url("token"),
            revocation: None,
        };
        let down = DiscoveryError::Unreachable("id.example.com".into());
        let mut d = Discovered::default();
        assert!(d.current(at(0)).is_none(), "nothing known: ask");
        assert!(d.keep(Err(down.clone()), at(0)).is_err());
        assert!(matches!(d.current(at(29)), Some(Err(_))), "remembered");
        assert!(d.current(at(30)).is_none(), "then asked again");
        assert_eq!(d.keep(Ok(found.clone()), at(30)).unwrap(), found);
        let day = DISCOVERY_TTL.as_secs();
        assert_eq!(d.current(at(30 + day - 1)).unwrap().unwrap(), found);
        assert!(d.current(at(30 + day)).is_none(), "a day old: read again");
        // The read a day later fails: the endpoints found before serve meanwhile.
        assert_eq!(d.keep(Err(down), at(30 + day)).unwrap(), found);
        assert_eq!(d.current(at(40 + day)).unwrap().unwrap(), found);
        assert!(d.current(at(60 + day)).is_none());
    }

    /// The defaults under `extra` (and the embedded profile templates).
    fn layers(extra: toml::Table) -> Vec<toml::Table> {
        use crate::config::{DEFAULT_TOML, parse_toml};
        vec![
            parse_toml("default", DEFAULT_TOML).unwrap(),
            extra,
            parse_toml("templates", "[profiles]\ndir = \"\"").unwrap(),
        ]
    }

    /// The configuration of the defaults under `extra` (tests of the hub).
    pub(crate) fn config(extra: &str) -> Config {
        let extra = crate::config::parse_toml("extra", extra).unwrap();
        Config::from_layers(layers(extra)).unwrap()
    }

    #[test]
    fn every_provider_of_the_seed_is_shipped_and_unavailable_without_credentials() {
        let c = config("");
        let r = Registry::new(&c.integrations, |_| None);
        let ids: Vec<String> = r.list().into_iter().map(|p| p.id).collect();
        for id in [
            "spotify",
            "apple_music",
            "youtube_music",
            "amazon_music",
            "lastfm",
            "discord",
            "twitter",
            "instagram",
            "google_calendar",
            "slack",
            "notion",
            "salesforce",
            "microsoft365",
            "jira",
            "ableton_live",
            "logic_pro",
            "fl_studio",
        ] {
            assert!(ids.iter().any(|x| x == id), "{id} is not shipped");
        }
        let spotify = r.get("spotify").unwrap();
        assert_eq!(spotify.availability(), Availability::MissingClientId);
        assert!(spotify.config.pkce);
        assert!(!r.get("slack").unwrap().config.pkce);
        // Nothing to configure for a desktop companion.
        assert_eq!(
            r.get("fl_studio").unwrap().availability(),
            Availability::Available
        );
    }

    #[test]
    fn credentials_come_from_config_or_the_named_variables() {
        let c = config("[integrations.providers.slack]\nclient_id = \"from-config\"\n");
        let env = |name: &str| match name {
            "ROSTER_INTEGRATION_SPOTIFY_CLIENT_ID" => Some("spotify-id".to_owned()),
            "ROSTER_INTEGRATION_SLACK_CLIENT_ID" => Some("ignored".to_owned()),
            "ROSTER_INTEGRATION_LASTFM_CLIENT_ID" => Some("key".to_owned()),
            "ROSTER_INTEGRATION_LASTFM_CLIENT_SECRET" => Some("  ".to_owned()),
            _ => None,
        };
        let r = Registry::new(&c.integrations, env);
        // PKCE: a public client needs no secret.
        assert_eq!(
            r.get("spotify").unwrap().availability(),
            Availability::Available
        );
        let slack = r.get("slack").unwrap();
        assert_eq!(slack.client_id.as_deref(), Some("from-config"));
        assert_eq!(slack.availability(), Availability::MissingClientSecret);
        // A blank secret is no secret.
        assert_eq!(
            r.get("lastfm").unwrap().availability(),
            Availability::MissingClientSecret
        );
        let listed = serde_json::to_string(&r.list()).unwrap();
        assert!(
            !listed.contains("spotify-id"),
            "credentials are never listed"
        );
    }

    #[test]
    fn urls_are_overridden_from_the_environment_and_checked() {
        let vars = [(
            "ROSTER_INTEGRATIONS__PROVIDERS__SPOTIFY__TOKEN_URL".to_owned(),
            "http://127.0.0.1:9/token".to_owned(),
        )];
        let env = crate::config::env_layer(vars.into_iter()).unwrap();
        let c = Config::from_layers(layers(env)).unwrap();
        let spotify = c.integrations.provider("spotify").unwrap();
        assert_eq!(
            spotify.token_url.as_ref().unwrap().as_str(),
            "http://127.0.0.1:9/token"
        );
        // Plain http only to loopback; a misspelt mechanism or tier provider names its key.
        for (extra, key) in [
            (
                "[integrations.providers.spotify]\ntoken_url = \"http://evil.example/token\"",
                "integrations.providers.spotify.token_url",
            ),
            (
                "[integrations.providers.spotify]\nauth = \"oauth3\"",
                "integrations.providers.spotify.auth",
            ),
            (
                "[integrations.providers.apple_music]\ntoken_ttl = \"200days\"",
                "integrations.providers.apple_music.token_ttl",
            ),
            (
                "[integrations.providers.lastfm]\napi_base_url = \"\"",
                "integrations.providers.lastfm.api_base_url",
            ),
            (
                "[integrations.tiers.free]\nproviders = [\"myspace\"]",
                "integrations.tiers.free.providers",
            ),
            (
                "[integrations]\nredirect_base_url = \"https://x.example/?next=y\"",
                "integrations.redirect_base_url",
            ),
            (
                "[integrations.providers.Bad]\nname = \"b\"\ncategory = \"custom\"\nauth = \"api_key\"",
                "integrations.providers.Bad",
            ),
            // An oauth2 provider names its endpoints or an issuer to discover them from;
            // only an oauth2 provider discovers.
            (
                "[integrations.providers.sso]\nname = \"s\"\ncategory = \"custom\"\nauth = \"oauth2\"",
                "integrations.providers.sso.authorization_url",
            ),
            (
                "[integrations.providers.lastfm]\nissuer = \"https://id.example.com\"",
                "integrations.providers.lastfm.issuer",
            ),
            (
                "[integrations.providers.sso]\nname = \"s\"\ncategory = \"custom\"\nauth = \"oauth2\"\nissuer = \"http://id.example.com\"",
                "integrations.providers.sso.issuer",
            ),
            // A browser returns to this server or an http(s) address, nowhere else.
            (
                "[integrations]\nreturn_url = \"//evil.example/account\"",
                "integrations.return_url",
            ),
            (
                "[integrations]\nreturn_url = \"javascript:alert(1)\"",
                "integrations.return_url",
            ),
            // An issuer has no query or fragment.
            (
                "[integrations.providers.sso]\nname = \"s\"\ncategory = \"custom\"\nauth = \"oauth2\"\nissuer = \"https://id.example.com/?tenant=a\"",
                "integrations.providers.sso.issuer",
            ),
            (
                "[integrations.providers.sso]\nname = \"s\"\ncategory = \"custom\"\nauth = \"oauth2\"\nissuer = \"https://id.example.com/a#b\"",
                "integrations.providers.sso.issuer",
            ),
        ] {
            let table = crate::config::parse_toml("extra", extra).unwrap();
            let e = Config::from_layers(layers(table)).unwrap_err();
            assert_eq!(e.key, key, "{extra}");
        }
    }

    #[test]
    fn tier_limits_follow_the_seed() {
        use crate::domain::tier::UserTier;
        let c = config("");
        let free = c.integrations.tier(UserTier::Free);
        assert_eq!(free.max_links, 1);
        assert!(free.allows("spotify") && !free.allows("lastfm"));
        let vip = c.integrations.tier(UserTier::Vip);
        assert!(vip.allows("jira") && vip.allows("an_operators_own"));
        assert_eq!(
            c.integrations.redirect_uri("spotify").as_str(),
            "http://127.0.0.1:8080/api/v1/integrations/spotify/callback"
        );
        // The browser's way back keeps the page's fragment after the outcome.
        let i = &c.integrations;
        assert_eq!(
            i.return_to("spotify", None),
            "/account?linked=spotify#integrations"
        );
        assert_eq!(
            i.return_to("lastfm", Some("access denied")),
            "/account?link_failed=lastfm&reason=access+denied#integrations"
        );
    }
}
