//! Time as the domain sees it: a millisecond timestamp and a clock that can be replaced.
//!
//! Rules take a `Timestamp` argument instead of reading the clock, and the engine reads
//! time through [`Clock`], so tests drive expiry, lockout and passivation with
//! [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch. In JSON it is an RFC 3339 string; in snapshots an
/// integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The epoch itself; used as "never" for optional instants that must stay plain data.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The hour of the day in UTC, 0–23.
    pub fn utc_hour(self) -> u8 {
        (self.0.rem_euclid(86_400_000) / 3_600_000) as u8
    }

    /// Whole seconds since the epoch (0 before it).
    pub fn unix_secs(self) -> u64 {
        u64::try_from(self.0.max(0) / 1000).unwrap_or(0)
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_ms(d)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    fn to_system_time(self) -> SystemTime {
        match u64::try_from(self.0) {
            Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            Err(_) => UNIX_EPOCH,
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_millis(self.to_system_time()).fmt(f)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                let t = humantime::parse_rfc3339_weak(v).map_err(E::custom)?;
                let ms = t
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| E::custom("timestamp before 1970"))?;
                Ok(Timestamp(duration_ms(ms)))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_i64(V)
        }
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::ids::string_schema(utoipa::openapi::KnownFormat::DateTime)
    }
}
impl utoipa::ToSchema for Timestamp {}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told; shared by cloning.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(duration_ms(d), Ordering::SeqCst);
    }

    /// Sets the clock to `t` (forward or back).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_and_binary_is_an_integer() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(t, cfg).unwrap();
        let (back, _): (Timestamp, _) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(Timestamp::from_millis(1000));
        assert_eq!(c.now().as_millis(), 1000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now().as_millis(), 3000);
        assert_eq!(
            c.now().since(Timestamp::from_millis(1000)),
            Duration::from_secs(2)
        );
        assert_eq!(Timestamp::EPOCH.since(c.now()), Duration::ZERO);
    }
}
