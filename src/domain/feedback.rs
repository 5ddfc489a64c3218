//! What became of the recommendations a user was shown: lists' items shown and followed,
//! counted by how the list was made. A recommendation id carries that (`r1.` then the
//! level's letter and `1` or `0` for bias mitigation, then 16 random hex digits), so a
//! `recommendation_shown` or `recommendation_clicked` event ties back to it without the
//! server remembering every list it made. Ids of any other shape (another system's, in
//! an imported history) count in the history only.

use serde::{Deserialize, Serialize};

use super::activity::ActivityEvent;
use super::settings::PersonalizationLevel;

/// How a list was made: its level and whether bias mitigation re-ranked it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ListTag(u8);

const LEVELS: [PersonalizationLevel; 4] = [
    PersonalizationLevel::Off,
    PersonalizationLevel::Basic,
    PersonalizationLevel::Standard,
    PersonalizationLevel::Advanced,
];

const LETTERS: [u8; 4] = [b'o', b'b', b's', b'a'];

impl ListTag {
    /// The tag of a list made at `level`, mitigated or not.
    pub fn new(level: PersonalizationLevel, mitigated: bool) -> Self {
        let l = LEVELS.iter().position(|x| *x == level).unwrap_or(0) as u8;
        Self(l << 1 | u8::from(mitigated))
    }

    /// Its number, 0–7 (the level's rank times two, plus one if mitigated).
    pub fn index(self) -> u8 {
        self.0
    }

    /// The tag numbered `i` (see [`ListTag::index`]; taken modulo 8).
    pub fn from_index(i: u8) -> Self {
        Self(i & 7)
    }

    /// The level the list was made at.
    pub fn level(self) -> PersonalizationLevel {
        LEVELS[usize::from(self.0 >> 1) & 3]
    }

    /// Whether bias mitigation re-ranked it.
    pub fn mitigated(self) -> bool {
        self.0 & 1 == 1
    }

    /// A fresh recommendation id for an item of such a list (`random` makes it unique).
    pub fn recommendation_id(self, random: u64) -> String {
        let letter = char::from(LETTERS[usize::from(self.0 >> 1) & 3]);
        format!("r1.{letter}{}.{random:016x}", u8::from(self.mitigated()))
    }

    /// The tag a recommendation id of ours carries, if it is one.
    pub fn of_id(id: &str) -> Option<Self> {
        let rest = id.strip_prefix("r1.")?.as_bytes();
        let [letter, mitigated, b'.', hex @ ..] = rest else {
            return None;
        };
        let level = LETTERS.iter().position(|l| l == letter)?;
        let mitigated = match mitigated {
            b'0' => false,
            b'1' => true,
            _ => return None,
        };
        (hex.len() == 16 && hex.iter().all(u8::is_ascii_hexdigit))
            .then(|| Self::new(LEVELS[level], mitigated))
    }
}

/// Items shown and followed for one kind of list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCounts {
    /// How the lists were made.
    pub tag: ListTag,
    /// Items shown.
    pub shown: u32,
    /// Items followed.
    pub clicked: u32,
}

/// A user's counts per kind of list, behind a thin pointer that stays null until its
/// first shown or clicked event (most users have none; a live actor pays 8 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFeedback(Option<Box<[[u32; 2]; 8]>>);

impl ListFeedback {
    /// Counts the shown and clicked events among `events` whose id is one of ours.
    pub fn record(&mut self, events: &[ActivityEvent]) {
        for e in events {
            let (id, clicked) = match e {
                ActivityEvent::RecommendationShown {
                    recommendation_id, ..
                } => (recommendation_id, false),
                ActivityEvent::RecommendationClicked {
                    recommendation_id, ..
                } => (recommendation_id, true),
                _ => continue,
            };
            let Some(tag) = ListTag::of_id(id) else {
                continue;
            };
            let counts = self.0.get_or_insert_with(Box::default);
            let c = &mut counts[usize::from(tag.0)][usize::from(clicked)];
            *c = c.saturating_add(1);
        }
    }

    /// The counts of the kinds of list the user was shown or clicked, by tag.
    pub fn counts(&self) -> Vec<TagCounts> {
        let Some(counts) = &self.0 else {
            return Vec::new();
        };
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c[0] > 0 || c[1] > 0)
            .map(|(tag, c)| TagCounts {
                tag: ListTag(tag as u8),
                shown: c[0],
                clicked: c[1],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    #[test]
    fn ids_carry_their_tag_and_nothing_else_parses() {
        for level in LEVELS {
            for mitigated in [false, true] {
                let tag = ListTag::new(level, mitigated);
                let id = tag.recommendation_id(0xdead_beef);
                assert_eq!(ListTag::of_id(&id), Some(tag), "{id}");
                assert_eq!((tag.level(), tag.mitigated()), (level, mitigated));
            }
        }
        assert_eq!(
            ListTag::new(PersonalizationLevel::Advanced, true).recommendation_id(1),
            "r1.a1.0000000000000001"
        );
        for bad in [
            "r1",
            "r1.a1",
            "r1.x1.0000000000000001",
            "r1.a2.0000000000000001",
            "r1.a1.000000000000001",
            "r1.a1.000000000000000g",
            "r2.a1.0000000000000001",
            "r1.a1-0000000000000001",
        ] {
            assert_eq!(ListTag::of_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn shown_and_clicked_count_by_tag() {
        let at = Timestamp::from_millis(1_000);
        let shown = |id: &str| ActivityEvent::RecommendationShown {
            at,
            recommendation_id: id.into(),
            track_id: None,
        };
        let clicked = |id: &str| ActivityEvent::RecommendationClicked {
            at,
            recommendation_id: id.into(),
            track_id: None,
        };
        let a1 = ListTag::new(PersonalizationLevel::Advanced, true);
        let o0 = ListTag::new(PersonalizationLevel::Off, false);
        let mut f = ListFeedback::default();
        f.record(&[
            shown(&a1.recommendation_id(1)),
            shown(&a1.recommendation_id(2)),
            clicked(&a1.recommendation_id(2)),
            shown(&o0.recommendation_id(3)),
            shown("someone-else's"),
            ActivityEvent::Searched { at },
        ]);
        assert_eq!(
            f.counts(),
            vec![
                TagCounts {
                    tag: o0,
                    shown: 1,
                    clicked: 0
                },
                TagCounts {
                    tag: a1,
                    shown: 2,
                    clicked: 1
                }
            ]
        );
    }
}
