//! The `recommendations` job: retrains the recommender's collaborative model on the
//! consenting users' tastes and puts it in force, as an operator's
//! `POST /api/v1/admin/recommendations/train` does.

use futures_util::future::BoxFuture;

use super::{Job, when_training_free};
use crate::domain::job::JobReport;
use crate::engine::{Principal, UserManager};

pub(super) struct Recommendations;

impl Job for Recommendations {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let t = when_training_free(|| m.personalization().train(by, |_| {}))
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!(
                "recommender model v{} from {} users and {} interactions, {} tracks",
                t.version, t.users, t.interactions, t.tracks
            );
            Ok(JobReport::new(summary)
                .count("version", t.version)
                .count("users", t.users)
                .count("interactions", t.interactions)
                .count("tracks", t.tracks as u64)
                .count("tracks_with_neighbours", t.tracks_with_neighbours as u64))
        })
    }
}
