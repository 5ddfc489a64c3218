//! Privacy: consents per purpose and the age rule, parental consent, and the user's
//! security events. Every consent change is written with its audit record.

use super::UserManager;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::consent::{Date, Purpose};
use crate::domain::ids::UserId;
use crate::domain::security_log::SecurityEvent;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::outcomes::ConsentView;
use crate::engine::user::{GetConsents, GetSecurityEvents, RecordParentalConsent, UpdateConsents};
use crate::store::codec;

/// Longest page of security events, and the page size when none is asked for.
pub const MAX_EVENTS_PAGE: usize = 200;
const DEFAULT_EVENTS_PAGE: usize = 50;

/// See [`UserManager::privacy`].
#[derive(Clone, Copy)]
pub struct Privacy<'a> {
    pub(super) m: &'a UserManager,
}

impl Privacy<'_> {
    /// The user's consents per purpose with their history, birth date and parental
    /// consent (an operator's read is audited).
    pub async fn consents(self, by: &Principal, id: UserId) -> Result<ConsentView, EngineError> {
        by.on(id)?;
        let view = self.m.engine.call(id, GetConsents).await?;
        self.m.audit_read(by, id, "consents").await?;
        Ok(view)
    }

    /// Grants or withdraws consents (a withdrawal turns off what it covered in the AI
    /// preferences) and gives the birth date (once given, only the operator may change
    /// it). Each change is written with its audit record. Durable when it
    /// returns.
    pub async fn update_consents(
        self,
        by: &Principal,
        id: UserId,
        changes: Vec<(Purpose, bool)>,
        birth_date: Option<Date>,
    ) -> Result<ConsentView, EngineError> {
        by.on(id)?;
        let msg = UpdateConsents {
            changes,
            birth_date,
            by_operator: by.is_privileged(),
            actor: by.audit_actor(),
        };
        self.m.engine.call_durable(id, msg).await
    }

    /// Records a verified parental consent for a minor (operator or system), written with
    /// its audit record.
    pub async fn record_parental_consent(
        self,
        by: &Principal,
        id: UserId,
        reference: &str,
    ) -> Result<ConsentView, EngineError> {
        by.privileged()?;
        let audit = by
            .audit_actor()
            .map(|a| (a, AuditAction::ParentalConsentRecorded { user: id }));
        let msg = RecordParentalConsent {
            reference: reference.to_owned(),
            audit,
        };
        self.m.engine.call_durable(id, msg).await
    }

    /// A page of the user's security events, newest first: those numbered below `before`
    /// (default: the newest), at most `limit` (1 to 200, default 50). An operator's read
    /// is audited.
    pub async fn security_events(
        self,
        by: &Principal,
        id: UserId,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<SecurityEvent>, EngineError> {
        by.on(id)?;
        let limit = limit.unwrap_or(DEFAULT_EVENTS_PAGE);
        if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_EVENTS_PAGE}"),
            )
            .into());
        }
        let page = self
            .events_page(id, before.unwrap_or(u64::MAX), limit)
            .await?;
        self.m.audit_read(by, id, "security_events").await?;
        Ok(page)
    }

    /// Security events numbered below `before`, newest first, at most `limit`: from the
    /// actor's state, then the archive.
    pub(super) async fn events_page(
        self,
        id: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SecurityEvent>, EngineError> {
        let e = &self.m.engine;
        let (mut page, oldest) = e
            .call_durable(id, GetSecurityEvents { before, limit })
            .await?;
        if page.len() >= limit {
            return Ok(page);
        }
        let from = page
            .last()
            .map(|e| e.seq)
            .unwrap_or(before)
            .min(oldest.unwrap_or(before));
        let store = e.store.as_ref();
        let archived = store.security_events_before(id, from, limit - page.len())?;
        if archived.is_empty() {
            return Ok(page);
        }
        let key = e.keys.data_key(store, id)?.ok_or(EngineError::NotFound)?;
        for (seq, blob) in archived {
            let corrupt = |reason: String| EngineError::Corrupt {
                user: id,
                reason: format!("archived security event {seq}: {reason}"),
            };
            let raw = codec::open_blob(&key, &crate::engine::state::event_aad(id, seq), &blob)
                .map_err(|e| corrupt(e.to_string()))?;
            let event: SecurityEvent =
                serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
            page.push(event);
        }
        Ok(page)
    }
}
