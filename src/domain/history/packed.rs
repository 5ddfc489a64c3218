//! A user's buckets as its actor holds them: packed into one byte string instead of 40
//! bytes a bucket, because most of a bucket's counters are zero on most days.
//!
//! Each bucket is the distance in days from the previous one (from day 0 for the first),
//! a mask of its non-zero fields, and those fields as LEB128 varints in mask order. The
//! track sketch is its bit count followed by the positions of up to seven bits, or by
//! the whole 64 bits when more are set. A typical day (a few plays, a skip) takes 8 to
//! 14 bytes.
//!
//! Only the memory layout is packed: serde sees a sequence of [`Bucket`]s, so a stored
//! record and an export read exactly as they did when the buckets were a `Vec`.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Bucket;

/// Sketch bits written as positions; above this many, the whole 64 bits.
const SPARSE_SKETCH: u32 = 7;

/// Buckets in ascending order of day, packed (see the module documentation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Buckets(Box<[u8]>);

impl Buckets {
    /// Packs `buckets`, kept in ascending order of day by the history (anything else is
    /// sorted, and buckets of the same day merged, first).
    pub fn pack(buckets: &[Bucket]) -> Self {
        if !buckets.is_sorted_by(|a, b| a.day < b.day) {
            return Self::from(buckets.to_vec());
        }
        let mut out = Vec::with_capacity(buckets.len() * 12);
        let mut prev = 0;
        for b in buckets {
            put_bucket(&mut out, b, prev);
            prev = b.day;
        }
        Self(out.into_boxed_slice())
    }

    /// The buckets, oldest first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.0,
            day: 0,
        }
    }

    /// The buckets, unpacked.
    pub fn to_vec(&self) -> Vec<Bucket> {
        self.iter().collect()
    }

    /// How many buckets there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes the packed buckets take.
    pub fn packed_len(&self) -> usize {
        self.0.len()
    }
}

impl From<Vec<Bucket>> for Buckets {
    /// Packs buckets in any order; two of the same day become one.
    fn from(mut v: Vec<Bucket>) -> Self {
        v.sort_by_key(|b| b.day);
        v.dedup_by(|later, kept| {
            let same = later.day == kept.day;
            if same {
                kept.absorb(later);
            }
            same
        });
        Self::pack(&v)
    }
}

/// The buckets of a [`Buckets`], decoded one at a time.
pub struct Iter<'a> {
    bytes: &'a [u8],
    day: u32,
}

impl Iterator for Iter<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        if self.bytes.is_empty() {
            return None;
        }
        let b = take_bucket(&mut self.bytes, self.day);
        // Only `pack` writes these bytes, so they always decode; should they not, the
        // rest is dropped rather than misread.
        debug_assert!(b.is_some(), "packed buckets that do not decode");
        match b {
            Some(b) => {
                self.day = b.day;
                Some(b)
            }
            None => {
                self.bytes = &[];
                None
            }
        }
    }
}

/// The mask bit of the track sketch. The counters take the other bits in the order of
/// [`counters`], the most often non-zero first so that a usual day's mask fits a byte.
const TRACKS: u32 = 1 << 3;

/// The mask bit of each of [`counters`].
const BITS: [u32; 11] = [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11];

/// A bucket's counters, widened.
fn counters(b: &Bucket) -> [u32; 11] {
    [
        b.weekdays.into(),
        b.plays.into(),
        b.listening_secs,
        b.skips.into(),
        b.likes.into(),
        b.app_opens.into(),
        b.searches.into(),
        b.playlists.into(),
        b.features_used.into(),
        b.recs_shown.into(),
        b.recs_clicked.into(),
    ]
}

fn put_bucket(out: &mut Vec<u8>, b: &Bucket, prev: u32) {
    let c = counters(b);
    let mut mask = if b.tracks != 0 { TRACKS } else { 0 };
    for (v, bit) in c.iter().zip(BITS) {
        if *v != 0 {
            mask |= 1 << bit;
        }
    }
    put(out, b.day - prev);
    put(out, mask);
    let put_counters = |out: &mut Vec<u8>, range: std::ops::Range<usize>| {
        for v in &c[range] {
            if *v != 0 {
                put(out, *v);
            }
        }
    };
    put_counters(out, 0..3);
    if b.tracks != 0 {
        let n = b.tracks.count_ones();
        out.push(n as u8);
        if n <= SPARSE_SKETCH {
            let mut t = b.tracks;
            while t != 0 {
                out.push(t.trailing_zeros() as u8);
                t &= t - 1;
            }
        } else {
            out.extend_from_slice(&b.tracks.to_le_bytes());
        }
    }
    put_counters(out, 3..11);
}

fn take_bucket(bytes: &mut &[u8], prev: u32) -> Option<Bucket> {
    let day = prev.checked_add(take(bytes)?)?;
    let mask = take(bytes)?;
    // The fields follow in the order of their mask bits.
    let mut c = [0u32; 11];
    let mut tracks = 0u64;
    let mut rest = mask;
    while rest != 0 {
        let bit = rest.trailing_zeros();
        rest &= rest - 1;
        if bit == TRACKS.trailing_zeros() {
            tracks = take_sketch(bytes)?;
        } else {
            let i = if bit < 3 { bit } else { bit - 1 };
            *c.get_mut(i as usize)? = take(bytes)?;
        }
    }
    let short = |v: u32| u16::try_from(v).ok();
    Some(Bucket {
        day,
        weekdays: u8::try_from(c[0]).ok()?,
        plays: short(c[1])?,
        listening_secs: c[2],
        skips: short(c[3])?,
        likes: short(c[4])?,
        app_opens: short(c[5])?,
        searches: short(c[6])?,
        playlists: short(c[7])?,
        features_used: short(c[8])?,
        recs_shown: short(c[9])?,
        recs_clicked: short(c[10])?,
        tracks,
    })
}

fn take_sketch(bytes: &mut &[u8]) -> Option<u64> {
    let (&n, rest) = bytes.split_first()?;
    *bytes = rest;
    if u32::from(n) <= SPARSE_SKETCH {
        let (at, rest) = bytes.split_at_checked(usize::from(n))?;
        *bytes = rest;
        at.iter()
            .try_fold(0u64, |t, &i| Some(t | 1u64.checked_shl(u32::from(i))?))
    } else {
        let (word, rest) = bytes.split_first_chunk::<8>()?;
        *bytes = rest;
        Some(u64::from_le_bytes(*word))
    }
}

/// Writes `v` as an LEB128 varint.
fn put(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an LEB128 varint of at most 32 bits.
fn take(bytes: &mut &[u8]) -> Option<u32> {
    let (&first, rest) = bytes.split_first()?;
    *bytes = rest;
    if first < 0x80 {
        return Some(first.into());
    }
    let mut v = u32::from(first & 0x7f);
    for shift in [7, 14, 21, 28] {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl fmt::Debug for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Buckets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for b in self.iter() {
            seq.serialize_element(&b)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Buckets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Buckets;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of buckets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Buckets, A::Error> {
                // Packed as they come while in order (as stored); anything else is
                // sorted first.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256) * 12);
                let mut prev: Option<u32> = None;
                while let Some(b) = seq.next_element::<Bucket>()? {
                    if prev.is_some_and(|day| day >= b.day) {
                        let mut all = Buckets(out.into_boxed_slice()).to_vec();
                        all.push(b);
                        while let Some(b) = seq.next_element::<Bucket>()? {
                            all.push(b);
                        }
                        return Ok(Buckets::from(all));
                    }
                    put_bucket(&mut out, &b, prev.unwrap_or(0));
                    prev = Some(b.day);
                }
                Ok(Buckets(out.into_boxed_slice()))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(day: u32, plays: u16, tracks: u64) -> Bucket {
        Bucket {
            day,
            weekdays: 1 << (day % 7),
            plays,
            listening_secs: u32::from(plays) * 181,
            tracks,
            ..Bucket::default()
        }
    }

    #[test]
    fn every_field_survives_packing_at_its_extremes() {
        let full = Bucket {
            day: u32::MAX,
            weekdays: 0x7f,
            plays: u16::MAX,
            skips: 1,
            likes: 300,
            searches: u16::MAX,
            app_opens: 2,
            playlists: 3,
            features_used: 4,
            recs_shown: 5,
            recs_clicked: 6,
            listening_secs: u32::MAX,
            tracks: u64::MAX,
        };
        let v = vec![
            Bucket::default(),
            bucket(20_000, 3, 0b1011),
            bucket(20_001, 1, 1 << 63),
            bucket(20_008, 9, 0x00ff_00ff),
            full,
        ];
        let p = Buckets::pack(&v);
        assert_eq!(p.to_vec(), v);
        assert_eq!(p.len(), 5);
        assert_eq!(p.iter().last(), Some(full));
        assert!(Buckets::default().is_empty());
    }

    #[test]
    fn a_usual_month_packs_into_a_third_of_its_buckets() {
        let v: Vec<_> = (0..30)
            .map(|d| bucket(20_400 + d, 3, 0b1001_0001 << (d % 50)))
            .collect();
        let p = Buckets::pack(&v);
        assert_eq!(p.to_vec(), v);
        assert!(
            p.packed_len() * 3 <= v.len() * size_of::<Bucket>(),
            "{} bytes for {} buckets",
            p.packed_len(),
            v.len()
        );
    }

    #[test]
    fn serde_sees_the_same_sequence_as_a_vec() {
        // The stored (bincode) layout is checked with the record formats, in
        // `engine::state`.
        let v: Vec<_> = (0..12)
            .map(|d| bucket(19_000 + 3 * d, d as u16, d.into()))
            .collect();
        let packed = Buckets::pack(&v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::to_string(&packed).unwrap(), json);
        let back: Buckets = serde_json::from_str(&json).unwrap();
        assert_eq!(back, packed);
    }

    #[test]
    fn buckets_read_out_of_order_are_sorted_and_merged() {
        let v = vec![bucket(30, 1, 1), bucket(10, 2, 2), bucket(30, 4, 4)];
        let back: Buckets = serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
        let mut merged = bucket(30, 1, 1);
        merged.absorb(&bucket(30, 4, 4));
        assert_eq!(back.to_vec(), vec![bucket(10, 2, 2), merged]);
    }
}
