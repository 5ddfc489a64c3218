//! The snapshot codec: the only place that knows the bytes of a stored record.
//!
//! A record is `[format version: u8][crc32 of the rest: u32 LE][body]`. The version byte
//! lets a later format read older records; the checksum turns a torn or bit-flipped
//! record into a clear error instead of a wrong user.
//!
//! Formats 4 and later (7 is current) seal the body: `nonce ‖ AES-256-GCM(bincode payload) ‖ tag` under
//! the owner's data key, with the version byte and the owner's id as associated data,
//! so a record moved onto another user does not open. Formats 1–3 carried the bincode
//! payload in clear; they are still read and are rewritten sealed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::security::keys::{DataKey, KeyError};

/// The format this build writes. Version 2 added the activity counters to the user
/// state; version 3 second factors, the risk profile, security events and session
/// step-up/binding; version 4 sealed the payload; version 5 replaced the activity
/// counters with the activity history; version 6 put the fields reports read first;
/// version 7 added the taste personalization learns; version 8 the taste's moments and
/// the recommendation feedback; version 9 what an identity provider says of the user
/// (SCIM); version 10 the days of rate refusals; version 11 an operator's hold on the
/// account; version 12 linked accounts; version 13 the linked account's name at
/// the provider and a companion's counts. Older records are still read (see [`decode_versioned`]).
pub const FORMAT_VERSION: u8 = 13;

/// The first format whose payload is sealed.
const SEALED_SINCE: u8 = 4;

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
    /// A sealed record that its owner's data key does not open.
    #[error("cannot decrypt: wrong data key or altered record")]
    Unauthentic,
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

fn aad(version: u8, owner: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(1 + owner.len());
    a.push(version);
    a.extend_from_slice(owner);
    a
}

fn frame(version: u8, body: impl FnOnce(&mut Vec<u8>), capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + capacity);
    out.push(version);
    out.extend_from_slice(&[0; 4]);
    body(&mut out);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[1..HEADER].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Encodes a value as a sealed record of the current format, under `owner`'s data key.
pub fn seal<T: Serialize>(value: &T, key: &DataKey, owner: &[u8]) -> Result<Vec<u8>, CodecError> {
    seal_as_version(FORMAT_VERSION, value, key, owner)
}

/// Encodes a value as a sealed record of format `version` (4 or later; tests of
/// migrations write older ones, this build writes only the current one).
pub(crate) fn seal_as_version<T: Serialize>(
    version: u8,
    value: &T,
    key: &DataKey,
    owner: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let payload = zeroize::Zeroizing::new(
        bincode::serde::encode_to_vec(value, config())
            .map_err(|e| CodecError::Encode(e.to_string()))?,
    );
    let aad = aad(version, owner);
    Ok(frame(
        version,
        |out| key.seal_into(&aad, &payload, out),
        payload.len() + 28,
    ))
}

/// Whether a record is sealed (format 4 or later) rather than plaintext of an older one.
pub fn is_sealed_record(record: &[u8]) -> bool {
    version_of(record).is_some_and(|v| v >= SEALED_SINCE)
}

/// Decodes a sealed record of the current format (the tests' check of what was sealed).
#[cfg(test)]
pub(crate) fn open_sealed<T: DeserializeOwned>(
    record: &[u8],
    key: &DataKey,
    owner: &[u8],
) -> Result<T, CodecError> {
    decode_versioned(record, key, owner, |_, _| None)
}

/// Decodes a record of any version: the current one as `T` with `key`, older ones
/// (plaintext before format 4, sealed since) through `older`, which gets the version and
/// a payload to decode as that version's shape (and returns `None` for a version it
/// does not know). Converted values are written back in the current format at the next
/// snapshot.
pub(crate) fn decode_versioned<T>(
    record: &[u8],
    key: &DataKey,
    owner: &[u8],
    older: impl FnOnce(u8, Payload<'_>) -> Option<Result<T, CodecError>>,
) -> Result<T, CodecError>
where
    T: DeserializeOwned,
{
    let (version, body) = open(record)?;
    if version > FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    if version < SEALED_SINCE {
        return older(version, Payload(body)).unwrap_or(Err(CodecError::UnknownVersion(version)));
    }
    let payload = zeroize::Zeroizing::new(
        key.open(&aad(version, owner), body)
            .map_err(|_: KeyError| CodecError::Unauthentic)?,
    );
    if version == FORMAT_VERSION {
        return decode_payload(&payload);
    }
    older(version, Payload(&payload)).unwrap_or(Err(CodecError::UnknownVersion(version)))
}

/// Decodes `T` from the front of a sealed record of format `since` or later (formats
/// whose payloads begin alike), for a reader that needs only the leading fields (the
/// rest of the payload is authenticated and left undecoded); `Ok(None)` for a record
/// of an older format, which the caller reads whole.
pub(crate) fn decode_head<T: DeserializeOwned>(
    record: &[u8],
    key: &DataKey,
    owner: &[u8],
    since: u8,
) -> Result<Option<T>, CodecError> {
    let (version, body) = open(record)?;
    if version > FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    if version < since.max(SEALED_SINCE) {
        return Ok(None);
    }
    let payload = zeroize::Zeroizing::new(
        key.open(&aad(version, owner), body)
            .map_err(|_: KeyError| CodecError::Unauthentic)?,
    );
    let (value, _) = bincode::serde::decode_from_slice(&payload, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    Ok(Some(value))
}

/// The first byte of a sealed blob (archived security events): `[1][nonce][ciphertext]
/// [tag]`. Plaintext blobs of earlier formats were JSON objects, starting with `{`.
const BLOB_FORMAT: u8 = 1;

/// Seals a blob (an archived event) under a data key, binding `aad`.
pub(crate) fn seal_blob(key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + plaintext.len() + 28);
    out.push(BLOB_FORMAT);
    key.seal_into(aad, plaintext, &mut out);
    out
}

/// Whether a blob is sealed (rather than plaintext of an earlier format).
pub fn is_sealed_blob(blob: &[u8]) -> bool {
    blob.first() == Some(&BLOB_FORMAT)
}

/// Opens what [`seal_blob`] wrote.
pub(crate) fn open_blob(key: &DataKey, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, CodecError> {
    match blob.split_first() {
        Some((&BLOB_FORMAT, sealed)) => key.open(aad, sealed).map_err(|_| CodecError::Unauthentic),
        Some((&v, _)) => Err(CodecError::UnknownVersion(v)),
        None => Err(CodecError::Truncated(0)),
    }
}

/// The format version of a record, if it has a header.
pub fn version_of(record: &[u8]) -> Option<u8> {
    (record.len() >= HEADER).then(|| record[0])
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

/// Encodes a value as a plaintext record of an older format `version` (tests of
/// migrations; this build never writes one).
#[doc(hidden)]
pub fn encode_as_version<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(frame(
        version,
        |out| out.extend_from_slice(&payload),
        payload.len(),
    ))
}

/// The layout of a plain record of the platform's own data (a trained model): the
/// frame of format 1, unsealed (it is nobody's personal data).
const PLAIN_FORMAT: u8 = 1;

/// Encodes the platform's own data (a trained model) as a checked, unsealed record.
pub(crate) fn encode_plain<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_as_version(PLAIN_FORMAT, value)
}

/// Decodes a record of [`encode_plain`] (or of [`encode_as_version`] 1, in tests).
pub(crate) fn decode_plain<T: DeserializeOwned>(record: &[u8]) -> Result<T, CodecError> {
    match open(record)? {
        (PLAIN_FORMAT, payload) => decode_payload(payload),
        (v, _) => Err(CodecError::UnknownVersion(v)),
    }
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

    const OWNER: &[u8] = b"user-1";

    #[test]
    fn round_trip() {
        let key = DataKey::generate();
        let rec = seal(&sample(), &key, OWNER).unwrap();
        assert_eq!(rec[0], FORMAT_VERSION);
        assert!(
            !rec.windows(3).any(|w| w == b"ann"),
            "sealed: no clear text"
        );
        assert_eq!(open_sealed::<Sample>(&rec, &key, OWNER).unwrap(), sample());
    }

    #[test]
    fn every_kind_of_damage_is_reported() {
        let key = DataKey::generate();
        let rec = seal(&sample(), &key, OWNER).unwrap();
        let read = |r: &[u8]| open_sealed::<Sample>(r, &key, OWNER);
        assert_eq!(read(&rec[..3]), Err(CodecError::Truncated(3)));
        let mut v = rec.clone();
        v[0] = 99;
        assert_eq!(read(&v), Err(CodecError::UnknownVersion(99)));
        let mut flipped = rec.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(read(&flipped), Err(CodecError::Checksum));
        let mut torn = rec.clone();
        torn.truncate(rec.len() - 2);
        assert_eq!(read(&torn), Err(CodecError::Checksum));
        // Another key, or another owner, does not open it.
        assert_eq!(
            open_sealed::<Sample>(&rec, &DataKey::generate(), OWNER),
            Err(CodecError::Unauthentic)
        );
        assert_eq!(
            open_sealed::<Sample>(&rec, &key, b"user-2"),
            Err(CodecError::Unauthentic)
        );
        // A valid seal over a payload of the wrong shape is still refused.
        let other = seal(&7u8, &key, OWNER).unwrap();
        assert!(matches!(read(&other), Err(CodecError::Decode(_))));
    }

    #[test]
    fn plaintext_records_of_older_formats_are_read_through_the_fallback() {
        let key = DataKey::generate();
        let v3 = encode_as_version(3, &sample()).unwrap();
        assert_eq!(version_of(&v3), Some(3));
        let back: Sample =
            decode_versioned(&v3, &key, OWNER, |v, p| (v == 3).then(|| p.decode())).unwrap();
        assert_eq!(back, sample());
        assert_eq!(read_unknown(&v3, &key), Err(CodecError::UnknownVersion(3)));
    }

    fn read_unknown(r: &[u8], key: &DataKey) -> Result<Sample, CodecError> {
        open_sealed(r, key, OWNER)
    }
}
