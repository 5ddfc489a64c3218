//! The snapshot codec: the only place that knows the bytes of a stored record.
//!
//! A record is `[format version: u8][crc32 of payload: u32 LE][payload]`, the payload
//! being bincode 2 in serde mode. The version byte lets a later format read older
//! records; the checksum turns a torn or bit-flipped record into a clear error instead
//! of a wrong user.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format this build writes. Version 2 added the activity counters to the user
/// state; version 3 second factors, the risk profile, security events and session
/// step-up/binding. Older records are still read (see [`decode_versioned`]).
pub const FORMAT_VERSION: u8 = 3;

const HEADER: usize = 5;

/// Why a record could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Shorter than the header.
    #[error("record is truncated ({0} bytes)")]
    Truncated(usize),
    /// Written by a format this build does not know.
    #[error("unknown snapshot format version {0}")]
    UnknownVersion(u8),
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The payload is not a valid encoding of the expected type.
    #[error("undecodable payload: {0}")]
    Decode(String),
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value as a record of the current format.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a record, checking version, checksum and that the payload is consumed whole.
pub fn decode<T: DeserializeOwned>(record: &[u8]) -> Result<T, CodecError> {
    let (version, payload) = open(record)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    decode_payload(payload)
}

/// Decodes a record of any version: the current one as `T`, older ones through `older`,
/// which gets the version and a payload to decode as that version's shape (and returns
/// `None` for a version it does not know). Converted values are written back in the
/// current format at the next snapshot.
pub fn decode_versioned<T>(
    record: &[u8],
    older: impl FnOnce(u8, Payload<'_>) -> Option<Result<T, CodecError>>,
) -> Result<T, CodecError>
where
    T: DeserializeOwned,
{
    let (version, payload) = open(record)?;
    if version == FORMAT_VERSION {
        return decode_payload(payload);
    }
    older(version, Payload(payload)).unwrap_or(Err(CodecError::UnknownVersion(version)))
}

/// The checked payload of an older record.
pub struct Payload<'a>(&'a [u8]);

impl Payload<'_> {
    /// Decodes it as `V`.
    pub fn decode<V: DeserializeOwned>(self) -> Result<V, CodecError> {
        decode_payload(self.0)
    }
}

/// Splits the header off and checks the checksum; returns the version and payload.
fn open(record: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    if record.len() < HEADER {
        return Err(CodecError::Truncated(record.len()));
    }
    let (header, payload) = record.split_at(HEADER);
    let crc = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if crc32fast::hash(payload) != crc {
        return Err(CodecError::Checksum);
    }
    Ok((header[0], payload))
}

fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::Decode(format!(
            "{} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// Encodes a value as a record of an older format `version` (tests of migrations).
#[doc(hidden)]
pub fn encode_as_version<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = encode(value)?;
    out[0] = version;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        n: u64,
        tags: Vec<Option<u8>>,
    }

    fn sample() -> Sample {
        Sample {
            name: "ann".into(),
            n: 42,
            tags: vec![Some(1), None],
        }
    }

    #[test]
    fn round_trip() {
        let rec = encode(&sample()).unwrap();
        assert_eq!(rec[0], FORMAT_VERSION);
        assert_eq!(decode::<Sample>(&rec).unwrap(), sample());
    }

    #[test]
    fn every_kind_of_damage_is_reported() {
        let rec = encode(&sample()).unwrap();
        assert_eq!(decode::<Sample>(&rec[..3]), Err(CodecError::Truncated(3)));
        let mut v = rec.clone();
        v[0] = 99;
        assert_eq!(decode::<Sample>(&v), Err(CodecError::UnknownVersion(99)));
        let mut flipped = rec.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(decode::<Sample>(&flipped), Err(CodecError::Checksum));
        let mut torn = rec.clone();
        torn.truncate(rec.len() - 2);
        assert_eq!(decode::<Sample>(&torn), Err(CodecError::Checksum));
        // A valid checksum over a payload of the wrong shape is still refused.
        let other = encode(&7u8).unwrap();
        assert!(matches!(
            decode::<Sample>(&other),
            Err(CodecError::Decode(_))
        ));
    }
}
