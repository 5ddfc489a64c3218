//! The recommender in force: the serving index over the catalog with the collaborative
//! model's popularity and neighbours, replaced whole when the catalog or the model
//! changes. A request takes the index (an `Arc`) and scores on its own task; the actors
//! read it for the traits of the tracks their users play.

use std::sync::{Arc, RwLock};

use super::EngineError;
use super::catalog::Catalog;
use crate::personalization::{Index, ItemModel};
use crate::store::{ModelKind, Store, codec};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Recommender {
    index: RwLock<Arc<Index>>,
    model: RwLock<Option<Arc<ItemModel>>>,
}

impl Recommender {
    /// The recommender of a store: its catalog with the newest stored model that reads
    /// and holds together (one that does not is logged and passed over).
    pub fn open(store: &dyn Store, catalog: &Catalog) -> Result<Self, EngineError> {
        let stored = store.models(ModelKind::Recommender)?;
        let model = stored.into_iter().rev().find_map(|(version, record)| {
            codec::decode_plain::<ItemModel>(&record)
                .map_err(|err| err.to_string())
                .and_then(|m| m.check().map(|()| m))
                .inspect_err(
                    |error| tracing::error!(version, %error, "unreadable recommender model"),
                )
                .ok()
        });
        let r = Self::default();
        match model {
            Some(m) => r.install(m, catalog),
            None => r.rebuild(catalog),
        }
        Ok(r)
    }

    /// The index in force.
    pub fn index(&self) -> Arc<Index> {
        self.index
            .read()
            .map(|i| Arc::clone(&i))
            .unwrap_or_default()
    }

    /// The model in force.
    pub fn model(&self) -> Option<Arc<ItemModel>> {
        self.model.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Builds the index afresh from the catalog and the model in force (after a
    /// catalog change; blocking work, a few hundred milliseconds at 100,000 tracks).
    pub fn rebuild(&self, catalog: &Catalog) {
        let model = self.model();
        let index = Index::build(catalog.rows(), model.as_deref());
        if let Ok(mut i) = self.index.write() {
            *i = Arc::new(index);
        }
    }

    /// Puts a model in force and rebuilds the index with it (blocking work).
    pub fn install(&self, model: ItemModel, catalog: &Catalog) {
        if let Ok(mut m) = self.model.write() {
            *m = Some(Arc::new(model));
        }
        self.rebuild(catalog);
    }
}
