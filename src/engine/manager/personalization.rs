//! AI personalization: the track catalog, taste models, recommendations that honour every
//! `AIPreferences` field, custom models and federated rounds (issues 18 and 19). So far:
//! the catalog.

use std::collections::HashMap;

use super::UserManager;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::catalog::{MAX_TRACKS_PER_UPLOAD, Track, track_id};
use crate::domain::validation::ValidationError;
use crate::engine::CatalogSummary;
use crate::engine::EngineError;
use crate::engine::durable::settled;
use crate::store::{Batch, Op};

/// See [`UserManager::personalization`].
#[derive(Clone, Copy)]
pub struct Personalization<'a> {
    pub(super) m: &'a UserManager,
}

/// What an upload of tracks did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TracksPut {
    /// Tracks new to the catalog.
    pub created: usize,
    /// Tracks that replaced the one of their id.
    pub replaced: usize,
}

impl Personalization<'_> {
    /// Adds tracks to the catalog or replaces those of their ids (operators): all of
    /// them, durably and audited, or — when one breaks a rule — none, with the first
    /// broken rule named by the track's position (`[3].title`).
    pub async fn put_tracks(
        self,
        by: &Principal,
        tracks: Vec<Track>,
    ) -> Result<TracksPut, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        if tracks.is_empty() || tracks.len() > MAX_TRACKS_PER_UPLOAD {
            return Err(ValidationError::new(
                "tracks",
                format!(
                    "an upload holds 1 to {MAX_TRACKS_PER_UPLOAD} tracks, not {}",
                    tracks.len()
                ),
            )
            .into());
        }
        let dim = e.config.personalization.embedding_dim;
        // Checking and encoding 10,000 tracks is tens of milliseconds: off the async
        // threads.
        let (checked, batch) = tokio::task::spawn_blocking(move || prepare(&tracks, dim))
            .await
            .map_err(|err| EngineError::Internal(format!("catalog upload: {err}")))??;
        let audit = by
            .audit_actor()
            .map(|a| {
                (
                    a,
                    AuditAction::CatalogTracksPut {
                        tracks: checked.len() as u64,
                    },
                    self.m.now(),
                )
            })
            .into_iter()
            .collect();
        let count = checked.len();
        let created = write_change(e, batch, audit, move |catalog| catalog.put(&checked)).await?;
        Ok(TracksPut {
            created,
            replaced: count - created,
        })
    }

    /// A catalog track as uploaded (operators).
    pub async fn track(self, by: &Principal, id: &str) -> Result<Option<Track>, EngineError> {
        by.privileged()?;
        track_id("id", id)?;
        self.stored(id)
            .await?
            .map(|r| {
                serde_json::from_slice(&r)
                    .map_err(|err| EngineError::Internal(format!("a stored track: {err}")))
            })
            .transpose()
    }

    /// Removes a catalog track (operators), durably and audited; whether it was there.
    pub async fn delete_track(self, by: &Principal, id: &str) -> Result<bool, EngineError> {
        by.privileged()?;
        track_id("id", id)?;
        let e = &self.m.engine;
        // One that did not read at start is not in memory but still in the store.
        if !e.catalog.contains(id) && self.stored(id).await?.is_none() {
            return Ok(false);
        }
        let audit = by
            .audit_actor()
            .map(|a| {
                (
                    a,
                    AuditAction::CatalogTrackDeleted {
                        track: id.to_owned(),
                    },
                    self.m.now(),
                )
            })
            .into_iter()
            .collect();
        let batch = Batch::of(Op::DropTrack { id: id.to_owned() });
        let id = id.to_owned();
        write_change(e, batch, audit, move |catalog| catalog.remove(&id)).await?;
        Ok(true)
    }

    /// A track's stored record, read off the async threads.
    async fn stored(self, id: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let store = std::sync::Arc::clone(&self.m.engine.store);
        let id = id.to_owned();
        Ok(tokio::task::spawn_blocking(move || store.track(&id))
            .await
            .map_err(|err| EngineError::Internal(format!("track read: {err}")))??)
    }

    /// Whether `by` may change the catalog (asked before an upload's body is read).
    pub fn may_edit(self, by: &Principal) -> Result<(), EngineError> {
        by.privileged()
    }

    /// What the catalog holds (operators).
    pub fn catalog(self, by: &Principal) -> Result<CatalogSummary, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        Ok(e.catalog.summary(e.config.personalization.embedding_dim))
    }
}

/// The tracks of an upload checked (see [`Track::checked`]), each id once, and the
/// batch that stores them.
fn prepare(tracks: &[Track], dim: usize) -> Result<(Vec<Track>, Batch), EngineError> {
    let mut seen = HashMap::with_capacity(tracks.len());
    let mut checked = Vec::with_capacity(tracks.len());
    let mut batch = Batch::default();
    for (i, t) in tracks.iter().enumerate() {
        let t = t.checked(dim, &format!("[{i}]."))?;
        if let Some(first) = seen.insert(t.id.clone(), i) {
            return Err(ValidationError::new(
                format!("[{i}].id"),
                format!("repeats the id of [{first}]: each track once per upload"),
            )
            .into());
        }
        let record =
            serde_json::to_vec(&t).map_err(|err| EngineError::Internal(format!("track: {err}")))?;
        batch.push(Op::PutTrack {
            id: t.id.clone(),
            record,
        });
        checked.push(t);
    }
    Ok((checked, batch))
}

/// Writes a catalog change and, once it is durable, applies it to memory with `apply`;
/// one change at a time. It runs as a task of its own, so that a caller going away
/// (a client disconnecting) cannot leave memory behind the store; if the write fails,
/// the tracks it named are read back from the store, whatever it kept of them.
async fn write_change<R: Send + 'static>(
    e: &std::sync::Arc<crate::engine::Engine>,
    batch: Batch,
    audit: Vec<crate::store::audit::Draft>,
    apply: impl FnOnce(&crate::engine::catalog::Catalog) -> R + Send + 'static,
) -> Result<R, EngineError> {
    let e = std::sync::Arc::clone(e);
    tokio::spawn(async move {
        let _one_at_a_time = e.catalog.writer.lock().await;
        let ids: Vec<String> = batch
            .ops()
            .iter()
            .filter_map(|op| match op {
                Op::PutTrack { id, .. } | Op::DropTrack { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let ticket = e.commit.submit(batch, audit, None);
        let outcome = match settled(e.commit.wait(&ticket).await) {
            Ok(()) => Ok(apply(&e.catalog)),
            Err(err) => {
                let engine = std::sync::Arc::clone(&e);
                let _ = tokio::task::spawn_blocking(move || {
                    engine.catalog.reread(engine.store.as_ref(), &ids)
                })
                .await;
                Err(err)
            }
        };
        // The recommender's index follows the catalog (while the writer lock is held,
        // so indexes are built in the order of the changes).
        let engine = std::sync::Arc::clone(&e);
        let _ =
            tokio::task::spawn_blocking(move || engine.recommender.rebuild(&engine.catalog)).await;
        outcome
    })
    .await
    .map_err(|err| EngineError::Internal(format!("catalog write: {err}")))?
}
