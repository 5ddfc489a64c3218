//! The `[integrations]` section: the integration hub's provider registry and its tier
//! limits (issue 21), in Nango's declarative shape — each provider with its mechanism,
//! endpoints, default scopes and where its client credentials come from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{ConfigError, Secret};
use crate::domain::integration::{AuthMode, Category, HistoryApi, is_provider_id};
use crate::domain::tier::UserTier;

/// The integration hub (`[integrations]`).
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationsConfig {
    /// Where providers send the browser back: `{base}/api/v1/integrations/{id}/callback`
    /// (fixed here, never taken from a request: no open redirect).
    pub redirect_base_url: Url,
    /// Where a browser lands after a callback: a path on this server or an http(s)
    /// address, with `linked=<id>` or `link_failed=<id>&reason=<why>` added to its
    /// query (fixed here, never taken from a request).
    pub return_url: String,
    /// Tokens are refreshed this long before they expire.
    pub refresh_margin: Duration,
    /// How long a link begun may wait for its callback.
    pub state_ttl: Duration,
    /// The longest a call to a provider may take.
    pub http_timeout: Duration,
    /// The `integrations` job syncs a link's history when its last sync is older.
    pub sync_interval: Duration,
    /// The `integrations` job refreshes a link's tokens when they have not been for
    /// this long (providers expire refresh tokens left unused: Jira and Salesforce
    /// after 90 days, some after 30).
    pub idle_refresh_after: Duration,
    /// What each tier may link, indexed by [`UserTier::index`].
    pub tiers: [TierLinks; 4],
    /// The providers, by id.
    pub providers: Vec<ProviderConfig>,
}

impl IntegrationsConfig {
    /// The provider `id`.
    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// What `tier` may link.
    pub fn tier(&self, tier: UserTier) -> &TierLinks {
        &self.tiers[tier.index()]
    }

    /// How long before expiry provider `id`'s tokens are refreshed: its own margin, or
    /// the section's.
    pub fn refresh_margin_of(&self, id: &str) -> Duration {
        self.provider(id)
            .and_then(|p| p.refresh_margin)
            .unwrap_or(self.refresh_margin)
    }

    /// Where a browser goes after the callback of a link to `provider`: `failed` is
    /// why it was not made (`None`: it was).
    pub fn return_to(&self, provider: &str, failed: Option<&str>) -> String {
        let (page, fragment) = match self.return_url.split_once('#') {
            Some((page, f)) => (page, Some(f)),
            None => (self.return_url.as_str(), None),
        };
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        match failed {
            None => query.append_pair("linked", provider),
            Some(why) => query
                .append_pair("link_failed", provider)
                .append_pair("reason", why),
        };
        let join = if page.contains('?') { '&' } else { '?' };
        let mut to = format!("{page}{join}{}", query.finish());
        if let Some(f) = fragment {
            to.push('#');
            to.push_str(f);
        }
        to
    }

    /// The callback address of provider `id`.
    pub fn redirect_uri(&self, id: &str) -> Url {
        let mut url = self.redirect_base_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/api/v1/integrations/{id}/callback"));
        url
    }
}

/// What one tier may link (`[integrations.tiers.<tier>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierLinks {
    /// Most linked accounts at once.
    pub max_links: usize,
    /// The providers it may use; `None`: every one.
    pub providers: Option<Vec<String>>,
}

impl TierLinks {
    /// Whether the tier may use provider `id`.
    pub fn allows(&self, id: &str) -> bool {
        self.providers
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == id))
    }
}

/// One provider (`[integrations.providers.<id>]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Its stable lowercase id (`spotify`).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// What kind of service it is.
    pub category: Category,
    /// How an account there is linked.
    pub auth: AuthMode,
    /// Whether the authorization request carries a PKCE challenge (S256).
    pub pkce: bool,
    /// Where the user authorizes the link (OAuth 2.0, Last.fm).
    pub authorization_url: Option<Url>,
    /// Where codes and refresh tokens are exchanged.
    pub token_url: Option<Url>,
    /// Where a token is revoked at unlink (RFC 7009), if the provider has one.
    pub revocation_url: Option<Url>,
    /// The API synced from.
    pub api_base_url: Option<Url>,
    /// An operator's OAuth 2.0 / OpenID Connect provider: the issuer whose discovery
    /// document gives the endpoints config leaves out.
    pub issuer: Option<Issuer>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request (`access_type = "offline"`).
    pub authorization_params: Vec<(String, String)>,
    /// The client id given in config, if any (else read from [`client_id_env`](Self::client_id_env)).
    pub client_id: Option<String>,
    /// The client secret given in config, if any.
    pub client_secret: Option<Secret>,
    /// How long before expiry its tokens are refreshed, if not the section's margin.
    pub refresh_margin: Option<Duration>,
    /// Where it serves recent listening for the sync, if it does.
    pub history: Option<HistoryApi>,
    /// Apple Music: the developer team that signs the developer token (its `iss`).
    pub team_id: Option<String>,
    /// Apple Music: how long a developer token is good for (Apple takes 6 months at
    /// most).
    pub token_ttl: Duration,
    /// The variable holding the client id (`ROSTER_INTEGRATION_SPOTIFY_CLIENT_ID`).
    pub client_id_env: String,
    /// The variable holding the client secret.
    pub client_secret_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntegrations {
    redirect_base_url: String,
    return_url: String,
    refresh_margin: String,
    state_ttl: String,
    http_timeout: String,
    sync_interval: String,
    idle_refresh_after: String,
    tiers: BTreeMap<String, RawTierLinks>,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierLinks {
    max_links: usize,
    providers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    category: String,
    auth: String,
    #[serde(default)]
    pkce: bool,
    #[serde(default)]
    authorization_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    revocation_url: String,
    #[serde(default)]
    api_base_url: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    authorization_params: BTreeMap<String, String>,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    client_id_env: String,
    #[serde(default)]
    client_secret_env: String,
    #[serde(default)]
    refresh_margin: String,
    #[serde(default)]
    history: String,
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    token_ttl: String,
}

/// The longest a developer token may be good for: Apple refuses longer than 6 months
/// (15,777,000 s).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(15_777_000);
/// A developer token's life when config does not say.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// `v` as an endpoint: empty is none; otherwise https, or http to a loopback host (a
/// local fake in tests and staging).
/// An issuer identifier as configured: an https URL (http only to a loopback host)
/// with no query or fragment (OpenID Connect Discovery 1.0 §2, RFC 8414 §2), kept as
/// written, since a discovery document must name it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    text: String,
    url: Url,
}

impl Issuer {
    /// `v` as the issuer at config `key`, or why it is not one.
    pub(crate) fn parse(key: &str, v: &str) -> Result<Option<Issuer>, ConfigError> {
        let Some(url) = endpoint(key, v)? else {
            return Ok(None);
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                key,
                format!("{v:?}: an issuer has no query or fragment"),
            ));
        }
        Ok(Some(Issuer {
            text: v.to_owned(),
            url,
        }))
    }

    /// As configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// As a URL (normalised: its text may differ from [`as_str`](Self::as_str)).
    pub fn url(&self) -> &Url {
        &self.url
    }
}

pub(crate) fn endpoint(key: &str, v: &str) -> Result<Option<Url>, ConfigError> {
    if v.is_empty() {
        return Ok(None);
    }
    let url =
        Url::parse(v).map_err(|e| ConfigError::new(key, format!("{v:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(Some(url)),
        "http" if loopback => Ok(Some(url)),
        _ => Err(ConfigError::new(
            key,
            format!("{v:?} must be https (http only to a loopback host)"),
        )),
    }
}

impl RawProvider {
    fn validate(&self, id: &str) -> Result<ProviderConfig, ConfigError> {
        let key = |f: &str| format!("integrations.providers.{id}.{f}");
        if !is_provider_id(id) {
            return Err(ConfigError::new(
                format!("integrations.providers.{id}"),
                "a provider id is 1-32 of a-z, 0-9 and _, starting with a letter",
            ));
        }
        let category = Category::parse(&self.category).ok_or_else(|| {
            let all: Vec<_> = Category::ALL.iter().map(|c| c.as_str()).collect();
            ConfigError::new(
                key("category"),
                format!("must be one of {}", all.join(", ")),
            )
        })?;
        let auth = AuthMode::parse(&self.auth).ok_or_else(|| {
            let all: Vec<_> = AuthMode::ALL.iter().map(|m| m.as_str()).collect();
            ConfigError::new(key("auth"), format!("must be one of {}", all.join(", ")))
        })?;
        let authorization_url = endpoint(&key("authorization_url"), &self.authorization_url)?;
        let token_url = endpoint(&key("token_url"), &self.token_url)?;
        let issuer = Issuer::parse(&key("issuer"), &self.issuer)?;
        if issuer.is_some() && auth != AuthMode::Oauth2 {
            return Err(ConfigError::new(
                key("issuer"),
                "only an oauth2 provider discovers its endpoints",
            ));
        }
        if auth == AuthMode::Oauth2 && issuer.is_none() {
            for (field, v) in [
                ("authorization_url", &authorization_url),
                ("token_url", &token_url),
            ] {
                if v.is_none() {
                    return Err(ConfigError::new(
                        key(field),
                        "an oauth2 provider needs it, or an issuer to discover it from",
                    ));
                }
            }
        }
        if auth == AuthMode::Lastfm && authorization_url.is_none() {
            return Err(ConfigError::new(
                key("authorization_url"),
                "a lastfm provider needs it",
            ));
        }
        let api_base_url = endpoint(&key("api_base_url"), &self.api_base_url)?;
        if matches!(auth, AuthMode::Lastfm | AuthMode::AppleMusic) && api_base_url.is_none() {
            return Err(ConfigError::new(
                key("api_base_url"),
                format!("a {} provider needs it", auth.as_str()),
            ));
        }
        let token_ttl = match self.token_ttl.as_str() {
            "" => DEFAULT_TOKEN_TTL,
            v => super::automation::duration(&key("token_ttl"), v)?,
        };
        if token_ttl.is_zero() || token_ttl > MAX_TOKEN_TTL {
            return Err(ConfigError::new(
                key("token_ttl"),
                "must be more than 0 and at most 6 months (15777000 s)",
            ));
        }
        let team_id = self.team_id.trim();
        if !team_id.bytes().all(|b| b.is_ascii_alphanumeric()) || team_id.len() > 32 {
            return Err(ConfigError::new(
                key("team_id"),
                "must be the team id Apple shows (letters and digits)",
            ));
        }
        for s in &self.scopes {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    key("scopes"),
                    format!("{s:?} is not a scope"),
                ));
            }
        }
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ConfigError::new(key("name"), "must be 1-64 characters"));
        }
        let upper = id.to_ascii_uppercase();
        let or_default = |v: &str, suffix: &str| match v {
            "" => format!("ROSTER_INTEGRATION_{upper}_{suffix}"),
            v => v.to_owned(),
        };
        let refresh_margin = match self.refresh_margin.as_str() {
            "" => None,
            v => Some(super::automation::duration(&key("refresh_margin"), v)?),
        };
        let history = match self.history.as_str() {
            "" => None,
            v => Some(HistoryApi::parse(v).ok_or_else(|| {
                let all: Vec<_> = HistoryApi::ALL.iter().map(|h| h.as_str()).collect();
                ConfigError::new(key("history"), format!("must be one of {}", all.join(", ")))
            })?),
        };
        Ok(ProviderConfig {
            id: id.to_owned(),
            refresh_margin,
            history,
            name,
            category,
            auth,
            pkce: self.pkce,
            authorization_url,
            token_url,
            revocation_url: endpoint(&key("revocation_url"), &self.revocation_url)?,
            api_base_url,
            issuer,
            team_id: (!team_id.is_empty()).then(|| team_id.to_owned()),
            token_ttl,
            scopes: self.scopes.clone(),
            authorization_params: self
                .authorization_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            client_id: (!self.client_id.is_empty()).then(|| self.client_id.clone()),
            client_secret: (!self.client_secret.is_empty())
                .then(|| Secret(self.client_secret.clone())),
            client_id_env: or_default(&self.client_id_env, "CLIENT_ID"),
            client_secret_env: or_default(&self.client_secret_env, "CLIENT_SECRET"),
        })
    }
}

impl RawIntegrations {
    /// The section, checked: every provider well formed, every tier present and naming
    /// providers that exist, the redirect base a plain origin.
    pub(super) fn validate(&self) -> Result<IntegrationsConfig, ConfigError> {
        use super::automation::duration;
        let base_key = "integrations.redirect_base_url";
        let base = Url::parse(&self.redirect_base_url).map_err(|e| {
            ConfigError::new(
                base_key,
                format!("{:?} is not a URL: {e}", self.redirect_base_url),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https")
            || base.query().is_some()
            || base.fragment().is_some()
            || base.cannot_be_a_base()
        {
            return Err(ConfigError::new(
                base_key,
                "must be an http(s) address without query or fragment",
            ));
        }
        let page = self.return_url.as_str();
        let on_this_server = page.starts_with('/') && !page.starts_with("//");
        let elsewhere = Url::parse(page)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base());
        if !(on_this_server || elsewhere) || page.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "integrations.return_url",
                format!("{page:?} must be a path on this server (/account) or an http(s) address"),
            ));
        }
        let providers = self
            .providers
            .iter()
            .map(|(id, p)| p.validate(id))
            .collect::<Result<Vec<_>, _>>()?;
        let tier = |t: UserTier| -> Result<TierLinks, ConfigError> {
            let name = t.as_str();
            let key = format!("integrations.tiers.{name}");
            let raw = self
                .tiers
                .get(name)
                .ok_or_else(|| ConfigError::new(&key, "missing"))?;
            let all = raw.providers.iter().any(|p| p == "*");
            for p in raw.providers.iter().filter(|p| *p != "*") {
                if !providers.iter().any(|x| &x.id == p) {
                    return Err(ConfigError::new(
                        format!("{key}.providers"),
                        format!("{p:?} is not a provider in [integrations.providers]"),
                    ));
                }
            }
            Ok(TierLinks {
                max_links: raw.max_links,
                providers: (!all).then(|| raw.providers.clone()),
            })
        };
        if let Some(t) = self
            .tiers
            .keys()
            .find(|t| !UserTier::ALL.iter().any(|x| x.as_str() == t.as_str()))
        {
            return Err(ConfigError::new(
                format!("integrations.tiers.{t}"),
                "not a tier",
            ));
        }
        Ok(IntegrationsConfig {
            redirect_base_url: base,
            return_url: self.return_url.clone(),
            refresh_margin: duration("integrations.refresh_margin", &self.refresh_margin)?,
            state_ttl: duration("integrations.state_ttl", &self.state_ttl)?,
            http_timeout: duration("integrations.http_timeout", &self.http_timeout)?,
            sync_interval: duration("integrations.sync_interval", &self.sync_interval)?,
            idle_refresh_after: duration(
                "integrations.idle_refresh_after",
                &self.idle_refresh_after,
            )?,
            tiers: [
                tier(UserTier::Free)?,
                tier(UserTier::Premium)?,
                tier(UserTier::Enterprise)?,
                tier(UserTier::Vip)?,
            ],
            providers,
        })
    }
}
