//! The life of a linked account's tokens. The actor is the single flight of its user's
//! refreshes: however many calls need a fresh token at once, one of them is handed the
//! refresh token (a [`Lease`]) and the others wait for its outcome, so a rotating
//! refresh token is never sent twice (two refreshes milliseconds apart would revoke the
//! whole token family at providers that detect reuse).
//!
//! The refresh itself runs on the lease holder's task, never on an actor thread; its
//! outcome comes back as [`Refreshed`]: new tokens are kept (the old refresh token when
//! the answer carried none), a refused grant marks the link `reauth_required` and tells
//! the user's sockets, and a rate limit or outage holds further refreshes back for the
//! provider's `Retry-After`. A lease whose holder went quiet for longer than a provider
//! call can take is taken over by the next caller.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::*;
use crate::domain::link::LinkStatus;
use crate::integrations::tokens::{Grant, TokenError};

/// An access token to call the provider's API with.
#[derive(Clone)]
pub(crate) struct Access {
    pub token: String,
    /// Who the account is at the provider, when the link told.
    pub account: Option<String>,
    /// When the link was synced last.
    pub synced_at: Option<Timestamp>,
    /// Whether the link has a refresh token (a refused access token may be renewed).
    pub refreshable: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

/// The right, and duty, to refresh a link's tokens: answer with [`Refreshed`].
pub(crate) struct Lease {
    pub id: u64,
    pub refresh_token: String,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How a waiting caller learns the outcome of the refresh in flight.
pub(crate) type Waiter = oneshot::Receiver<Result<Access, EngineError>>;

/// What a caller needing a token gets.
#[derive(Debug)]
pub(crate) enum AccessAnswer {
    /// A token good for the margin.
    Ready(Access),
    /// Another caller is refreshing: its outcome.
    Wait(Waiter),
    /// Refresh it: this caller holds the lease.
    Refresh(Lease),
}

/// A token for the user's link to `provider`, good for the provider's margin.
#[derive(Message, Clone)]
#[rtype(result = "Result<AccessAnswer, EngineError>")]
pub(crate) struct AccessFor {
    pub provider: String,
    /// To read the user's listening history: only with the consent to analytics.
    pub history: bool,
    /// Whether a token good for the margin is refreshed all the same.
    pub renew: Renew,
}

/// When a token good for the provider's margin is refreshed all the same.
#[derive(Clone)]
pub(crate) enum Renew {
    /// Never: only a token within the margin of its expiry is.
    WhenDue,
    /// Now: an idle link's refresh token, used before the provider expires it.
    Now,
    /// The provider's API refused this access token: refreshed unless the link holds
    /// another by now. Then another caller refreshed since the refused call, and the
    /// token it brought is the one to try: two callers refused the same token make
    /// one refresh, not two.
    Refused(String),
}

/// The outcome of the refresh of lease `lease` (durable when it replies with tokens).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Access>, EngineError>")]
pub(crate) struct Refreshed {
    pub provider: String,
    pub lease: u64,
    pub outcome: Result<Grant, TokenError>,
}

/// The provider's API refused the access token `access` (401 after a refresh, or a
/// token that cannot be refreshed), or the grant lacks the scope a call needs (403):
/// the link is marked `reauth_required` and the user's sockets told, unless the link
/// holds another token by now (a refresh since the refused call). Durable.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<bool>, EngineError>")]
pub(crate) struct ApiRefused {
    pub provider: String,
    pub access: String,
    pub reason: LinkReason,
}

/// A refresh in flight.
struct Flight {
    provider: String,
    lease: u64,
    started: Timestamp,
    waiters: Vec<oneshot::Sender<Result<Access, EngineError>>>,
}

/// The refreshes in flight, and the providers backed off from (memory only: a restart
/// forgets a backoff, and the next refresh asks the provider again).
#[derive(Default)]
pub(crate) struct Refreshes {
    flights: Vec<Flight>,
    backoff: Vec<(String, Timestamp)>,
    next_lease: u64,
}

impl Refreshes {
    /// Whether nothing is in flight or backed off at `now`.
    pub fn settle(&mut self, now: Timestamp, stale: Duration) -> bool {
        self.backoff.retain(|(_, until)| *until > now);
        // A flight whose holder went quiet: its waiters hear `Unavailable` (dropped).
        self.flights.retain(|f| now.since(f.started) < stale);
        self.flights.is_empty() && self.backoff.is_empty()
    }
}

impl Handler<AccessFor> for UserActor {
    type Result = Result<AccessAnswer, EngineError>;
    fn handle(&mut self, msg: AccessFor, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if let Some(reason) = self.analytics_refusal(now).filter(|_| msg.history) {
            return Err(EngineError::ConsentRequired(reason));
        }
        let cfg = &self.engine.config.integrations;
        let margin = cfg.refresh_margin_of(&msg.provider);
        let stale = stale_after(cfg.http_timeout);
        let link = self
            .state
            .links
            .as_deref()
            .and_then(|l| l.get(&msg.provider))
            .ok_or(EngineError::NoSuch("link"))?;
        let provider = &msg.provider;
        match link.status {
            LinkStatus::Active => {}
            LinkStatus::ReauthRequired => {
                return Err(EngineError::ReauthRequired(format!(
                    "the {provider} link needs the user to link again (the provider refused its grant)"
                )));
            }
            LinkStatus::Suspended => {
                return Err(EngineError::TierLimit(format!(
                    "the {provider} link is suspended: the {} tier does not include it",
                    self.state.profile.tier
                )));
            }
        }
        let force = match &msg.renew {
            Renew::WhenDue => false,
            Renew::Now => true,
            Renew::Refused(token) => same_secret(&link.tokens.access, token),
        };
        if link.is_fresh(now, margin) && !force {
            return Ok(AccessAnswer::Ready(access_of(link)));
        }
        let Some(refresh_token) = link.tokens.refresh.clone() else {
            // Nothing to refresh with: the token serves until it has expired.
            return match link.is_fresh(now, Duration::ZERO) || force {
                true => Ok(AccessAnswer::Ready(access_of(link))),
                false => Err(EngineError::ReauthRequired(format!(
                    "the {provider} access token expired and the provider gave no refresh token; link again"
                ))),
            };
        };
        let r = self
            .rare
            .make_mut()
            .refreshes
            .get_or_insert_with(Box::default);
        r.settle(now, stale);
        if let Some((_, until)) = r.backoff.iter().find(|(p, _)| p == provider) {
            return Err(busy(provider, until.since(now)));
        }
        if let Some(f) = r.flights.iter_mut().find(|f| f.provider == *provider) {
            let (tx, rx) = oneshot::channel();
            f.waiters.push(tx);
            return Ok(AccessAnswer::Wait(rx));
        }
        r.next_lease += 1;
        let lease = r.next_lease;
        r.flights.push(Flight {
            provider: provider.clone(),
            lease,
            started: now,
            waiters: Vec::new(),
        });
        Ok(AccessAnswer::Refresh(Lease {
            id: lease,
            refresh_token,
        }))
    }
}

impl Handler<Refreshed> for UserActor {
    type Result = Result<Durable<Access>, EngineError>;
    fn handle(&mut self, msg: Refreshed, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let provider = msg.provider;
        let flight = self
            .rare
            .held_mut()
            .and_then(|p| p.refreshes.as_mut())
            .and_then(|r| {
                let at = r
                    .flights
                    .iter()
                    .position(|f| f.provider == provider && f.lease == msg.lease)?;
                Some(r.flights.remove(at))
            });
        let Some(flight) = flight else {
            // The flight is gone: taken over as stale, or this actor restarted (a tier
            // change moves it) while the refresh ran. Tokens the provider issued are
            // still the newest: a rotating provider has spent the old refresh token.
            return match msg.outcome {
                Ok(grant) => self.durably(|a| a.settle_refresh(&provider, Ok(grant), now)),
                Err(_) => Err(EngineError::Unavailable),
            };
        };
        let mut heard = None;
        let answer = self.durably(|a| {
            let outcome = a.settle_refresh(&provider, msg.outcome, now);
            heard = Some(outcome.clone());
            outcome
        });
        if let Some(outcome) = heard {
            for w in flight.waiters {
                // A waiter that gave up is gone: nothing to tell it.
                let _ = w.send(outcome.clone());
            }
        }
        answer
    }
}

impl Handler<ApiRefused> for UserActor {
    type Result = Result<Durable<bool>, EngineError>;
    fn handle(&mut self, msg: ApiRefused, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.durably(|a| {
            let mut next = a.state.clone();
            let Some(link) = next
                .links
                .as_mut()
                .and_then(|l| l.get_mut(&msg.provider))
                .filter(|l| l.status == LinkStatus::Active)
                .filter(|l| same_secret(&l.tokens.access, &msg.access))
            else {
                return Ok(false);
            };
            link.status = LinkStatus::ReauthRequired;
            a.persist(next, now)?;
            a.publish(Event::LinkChanged {
                provider: msg.provider,
                status: LinkStatus::ReauthRequired,
                reason: msg.reason,
            });
            Ok(true)
        })
    }
}

/// Whether two tokens are the same, in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl UserActor {
    /// Keeps what a refresh of `provider`'s tokens brought: the tokens, or the link
    /// marked `reauth_required`, or a backoff.
    fn settle_refresh(
        &mut self,
        provider: &str,
        outcome: Result<Grant, TokenError>,
        now: Timestamp,
    ) -> Result<Access, EngineError> {
        let mut next = self.state.clone();
        let link = next
            .links
            .as_mut()
            .and_then(|l| l.get_mut(provider))
            .ok_or(EngineError::NoSuch("link"))?;
        match outcome {
            Ok(g) => {
                link.refreshed(g.access_token, g.refresh_token, g.expires_in, g.scopes, now);
                if g.instance_url.is_some() {
                    link.instance_url = g.instance_url;
                }
                let access = access_of(link);
                self.persist(next, now)?;
                Ok(access)
            }
            Err(TokenError::Refused { error, description }) => {
                link.status = LinkStatus::ReauthRequired;
                self.persist(next, now)?;
                self.publish(Event::LinkChanged {
                    provider: provider.to_owned(),
                    status: LinkStatus::ReauthRequired,
                    reason: LinkReason::GrantRefused,
                });
                let more = description.map(|d| format!(" ({d})")).unwrap_or_default();
                Err(EngineError::ReauthRequired(format!(
                    "{provider} refused the refresh ({error}{more}); the user must link again"
                )))
            }
            Err(TokenError::Busy { retry_after, .. }) => {
                let wait = retry_after.unwrap_or(DEFAULT_BACKOFF).min(MAX_BACKOFF);
                let r = self
                    .rare
                    .make_mut()
                    .refreshes
                    .get_or_insert_with(Box::default);
                r.backoff.retain(|(p, _)| p != provider);
                r.backoff.push((provider.to_owned(), now.plus(wait)));
                Err(busy(provider, wait))
            }
            Err(other) => Err(EngineError::Provider(format!("{provider}: {other}"))),
        }
    }
}

/// How long refreshes wait when a provider said 429 or 5xx without a `Retry-After`.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(30);
/// The longest a provider's `Retry-After` holds refreshes back.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A lease is taken over when its holder has been quiet this long: two provider calls'
/// worth of time (the holder's own call is bounded by the timeout).
pub(super) fn stale_after(http_timeout: Duration) -> Duration {
    http_timeout * 2 + Duration::from_secs(5)
}

fn busy(provider: &str, wait: Duration) -> EngineError {
    let retry_after = wait.as_secs().max(1);
    EngineError::ProviderBusy {
        message: format!("{provider} is rate limiting or failing; retry in {retry_after} s"),
        retry_after,
    }
}

fn access_of(link: &crate::domain::link::LinkedAccount) -> Access {
    Access {
        token: link.tokens.access.clone(),
        account: link.account.clone(),
        synced_at: link.synced_at,
        refreshable: link.tokens.refresh.is_some(),
    }
}
