//! Which imported events a user already has, so that an import replayed (a migration
//! resumed, an integration synced twice) counts nothing twice. Each event is remembered
//! by its [fingerprint](ActivityEvent::fingerprint): time, kind and track (and a synced
//! play also by the provider's track id, so a catalog match found later does not make
//! it new). Kept apart
//! from the user's record (in the store, sealed under its data key) and loaded only
//! when an import arrives, so live users carry none of it.

use super::activity::ActivityEvent;

/// The fingerprints of a user's imported events, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportLedger {
    marks: Vec<u64>,
}

impl ImportLedger {
    /// Events remembered.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The events of `events` not seen before (in this ledger or earlier in `events`),
    /// with their fingerprints sorted; the ledger is unchanged until
    /// [`Self::remember`].
    pub fn unseen(&self, events: &[ActivityEvent]) -> (Vec<ActivityEvent>, Vec<u64>) {
        self.unseen_as(events, &[])
    }

    /// [`Self::unseen`], where `aliases` (empty, or one per event) names each event
    /// once more, by what its source calls it: a synced play by the provider's track
    /// id, which holds when a later catalog matches the play to another track. An
    /// event is seen when its fingerprint or its alias is; a fresh one is remembered
    /// by both.
    pub fn unseen_as(
        &self,
        events: &[ActivityEvent],
        aliases: &[u64],
    ) -> (Vec<ActivityEvent>, Vec<u64>) {
        let mut marks = Vec::with_capacity(events.len() * if aliases.is_empty() { 1 } else { 2 });
        let mut seen = std::collections::HashSet::with_capacity(marks.capacity());
        let mut fresh = Vec::new();
        let known = |m: &u64| self.marks.binary_search(m).is_ok();
        for (i, e) in events.iter().enumerate() {
            let m = e.fingerprint();
            let alias = aliases.get(i).copied();
            let old = known(&m)
                || seen.contains(&m)
                || alias.is_some_and(|a| known(&a) || seen.contains(&a));
            if old {
                continue;
            }
            for m in std::iter::once(m).chain(alias) {
                if seen.insert(m) {
                    marks.push(m);
                }
            }
            fresh.push(e.clone());
        }
        marks.sort_unstable();
        (fresh, marks)
    }

    /// Remembers sorted fingerprints `marks` (from [`Self::unseen`]), in one merge.
    pub fn remember(&mut self, marks: &[u64]) {
        let mut merged = Vec::with_capacity(self.marks.len() + marks.len());
        let (mut a, mut b) = (self.marks.iter().peekable(), marks.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            if x <= y {
                merged.push(**x);
                if x == y {
                    b.next();
                }
                a.next();
            } else {
                merged.push(**y);
                b.next();
            }
        }
        merged.extend(a);
        merged.extend(b);
        self.marks = merged;
    }

    /// The events of `events` not seen before, now remembered.
    pub fn admit(&mut self, events: &[ActivityEvent]) -> Vec<ActivityEvent> {
        let (fresh, marks) = self.unseen(events);
        self.remember(&marks);
        fresh
    }

    /// Its bytes: the fingerprints, 8 bytes each, big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.marks.iter().flat_map(|m| m.to_be_bytes()).collect()
    }

    /// Reads what [`Self::to_bytes`] wrote; `None` if it is not a multiple of 8 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut marks: Vec<u64> = bytes
            .chunks_exact(8)
            .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_be_bytes))
            .collect();
        marks.sort_unstable();
        marks.dedup();
        Some(Self { marks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    fn play(ms: i64, track: &str) -> ActivityEvent {
        ActivityEvent::TrackPlayed {
            track_id: track.into(),
            at: Timestamp::from_millis(ms),
            duration_ms: 1000,
        }
    }

    #[test]
    fn a_replay_admits_nothing_and_the_ledger_round_trips() {
        let mut l = ImportLedger::default();
        let events = [play(1, "a"), play(1, "b"), play(2, "a"), play(1, "a")];
        assert_eq!(l.admit(&events).len(), 3, "the repeat within the batch too");
        assert!(l.admit(&events).is_empty());
        // The same time and track but another kind is another event; the duration
        // does not make an event new.
        let liked = ActivityEvent::TrackLiked {
            track_id: "a".into(),
            at: Timestamp::from_millis(1),
        };
        let longer = ActivityEvent::TrackPlayed {
            track_id: "a".into(),
            at: Timestamp::from_millis(1),
            duration_ms: 99,
        };
        assert_eq!(l.admit(&[liked, longer]).len(), 1);
        let back = ImportLedger::from_bytes(&l.to_bytes()).unwrap();
        assert!(
            back.marks.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert_eq!(back, l);
        assert_eq!(back.len(), 4);
        assert!(ImportLedger::from_bytes(&[1, 2, 3]).is_none());
    }

    #[test]
    fn an_alias_keeps_a_play_once_when_the_catalog_matches_it_later() {
        let mut l = ImportLedger::default();
        // A synced play's alias: the play as imported unmatched (its provider's id).
        let alias = play(5, "spotify:sp1").fingerprint();
        let (fresh, marks) = l.unseen_as(&[play(5, "spotify:sp1")], &[alias]);
        assert_eq!((fresh.len(), marks.len()), (1, 1));
        l.remember(&marks);
        // Synced again once the catalog has the track: the same play.
        let (fresh, marks) = l.unseen_as(&[play(5, "cat-1"), play(6, "cat-1")], &[alias, 7]);
        assert_eq!(fresh, [play(6, "cat-1")]);
        assert_eq!(
            marks.len(),
            2,
            "the new play by its fingerprint and its alias"
        );
        // A ledger written before aliases knows the unmatched play by its fingerprint,
        // which is the alias.
        let mut old = ImportLedger::default();
        old.admit(&[play(5, "spotify:sp1")]);
        assert!(old.unseen_as(&[play(5, "cat-1")], &[alias]).0.is_empty());
    }
}
