//! The security events of a window for a SIEM: JSON lines of [`SiemEvent`], from every
//! user's record and the archive, read off the actor threads (operators and the system;
//! audited, since the events carry addresses and devices).

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Ops;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::security_log::SecurityEventKind;
use crate::domain::siem::SiemEvent;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;

/// Which events to export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiemWindow {
    /// From this time (included; default a day before `to`).
    pub from: Option<Timestamp>,
    /// To this time (excluded; default now).
    pub to: Option<Timestamp>,
    /// Only events of this kind.
    pub kind: Option<SecurityEventKind>,
}

/// The default window: a day.
const DAY_MS: i64 = 86_400_000;

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiemExport {
    /// Events written.
    pub events: u64,
    /// Records or archived events that could not be read (logged, left out).
    pub unreadable: u64,
}

impl Ops<'_> {
    /// Writes every recorded security event in `window` to `out` as JSON lines
    /// (`roster.security_event/1`, OCSF names; see [`crate::domain::siem`]), in store
    /// order, not time order. Audited before anything is read.
    pub async fn export_security_events<W: Write + Send + 'static>(
        self,
        by: &Principal,
        window: SiemWindow,
        out: W,
    ) -> Result<(W, SiemExport), EngineError> {
        by.privileged()?;
        let to = window.to.unwrap_or_else(|| self.m.now());
        let from = window
            .from
            .unwrap_or_else(|| Timestamp::from_millis(to.as_millis().saturating_sub(DAY_MS)));
        if from >= to {
            return Err(ValidationError::new("to", "must be later than from").into());
        }
        if let Some(actor) = by.audit_actor() {
            let action = AuditAction::SecurityEventsExported { from, to };
            self.m.audit(actor, action).await?;
        }
        // Events still only in live actors (soft state) are written first.
        self.m.snapshot_live().await?;
        let e = Arc::clone(&self.m.engine);
        let (out, export) = crate::engine::background::run("siem-export", move || {
            let mut out = std::io::BufWriter::new(out);
            let (mut events, mut failed) = (0u64, None);
            let unreadable = crate::engine::security_scan::scan(&e, |user, ev| {
                if ev.at < from || ev.at >= to || window.kind.is_some_and(|k| k != ev.kind) {
                    return true;
                }
                let line = serde_json::to_writer(&mut out, &SiemEvent::of(user, ev))
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                match line {
                    Ok(()) => {
                        events += 1;
                        true
                    }
                    Err(err) => {
                        failed = Some(err);
                        false
                    }
                }
            })?;
            if let Some(err) = failed {
                return Err(EngineError::Internal(format!("writing the export: {err}")));
            }
            let out = out
                .flush()
                .map_err(|err| EngineError::Internal(format!("writing the export: {err}")))
                .and_then(|()| {
                    out.into_inner()
                        .map_err(|err| EngineError::Internal(format!("writing the export: {err}")))
                })?;
            Ok((out, SiemExport { events, unreadable }))
        })
        .await??;
        let data = serde_json::json!({
            "from": from, "to": to, "kind": window.kind, "events": export.events,
        });
        let e = &self.m.engine;
        e.realtime
            .publish_operator("security_events_exported", self.m.now(), data);
        Ok((out, export))
    }
}
