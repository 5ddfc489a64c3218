//! The recommender: a serving index over the catalog ([`index`]), the collaborative
//! model trained over the users' tastes ([`model`]), the blend that scores one list with
//! its reasons ([`recommend`], [`explain`]), bias mitigation ([`mitigate`]), measures of many lists
//! ([`quality`]), the operators' report ([`report`]) and a simulator with planted tastes ([`sim`]).
//!
//! Pure computation: the engine builds the index from its catalog, hands in a user's
//! taste (from its actor) and the preferences that gate the signals, and runs this off
//! the actor threads. The taste itself, learned online in the actor, is
//! [`crate::domain::taste`].

pub mod blend;
pub mod custom;
pub mod explain;
pub mod federated;
pub mod index;
pub mod mitigate;
pub mod model;
pub mod quality;
pub mod recommend;
pub mod report;
pub mod sim;

pub use blend::Blend;
pub use explain::ItemReason;
pub use index::{Index, ItemRow};
pub use mitigate::Mitigation;
pub use model::{ItemModel, Trainer};
pub use quality::{Exposure, Quality};
pub use recommend::{Activity, Ask, Context, Scored, Signals, recommend};
pub use report::{ClickThrough, ExposureComparison, RecommenderReport, ReportBuilder};

#[cfg(test)]
mod tests;
