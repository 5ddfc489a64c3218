//! Keys for encryption at rest: AES-256-GCM envelope encryption.
//!
//! Every user has a random 256-bit [`DataKey`] that seals its snapshot and archived
//! events. Data keys are stored only wrapped (encrypted) by the [`MasterKey`], which lives
//! outside the store (a key file or an environment variable). Destroying a user's wrapped
//! data key makes every copy of its sealed records unreadable: crypto-shredding.
//!
//! The [`IndexKey`] keys the blind email index: the store maps HMAC-SHA256(index key,
//! normalised email) to the user, so a lookup works without the email in clear.
//!
//! Nonces are 96 random bits per encryption. A data key seals one user's records, far
//! fewer than the 2³² messages after which random nonces would risk a repeat.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::domain::hex;

/// Bytes of every key.
pub(crate) const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The format byte of a wrapped key.
const WRAP_FORMAT: u8 = 1;
/// `[format][master fingerprint][nonce][ciphertext + tag]`.
const WRAPPED_LEN: usize = 1 + FINGERPRINT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;
const FINGERPRINT_LEN: usize = 8;

/// Why a key or a sealed value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key text that is not 64 hex digits.
    #[error("a key is 64 hexadecimal digits (256 bits); this is {0}")]
    Malformed(String),
    /// A wrapped key of the wrong shape.
    #[error("wrapped key is malformed")]
    BadWrapping,
    /// The value was sealed under another key, or changed since.
    #[error("authentication failed: wrong key or altered data")]
    Unauthentic,
}

/// Names a master key without revealing it: the first 8 bytes of SHA-256 over a label
/// and the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Fingerprint {
    /// Parses the 16 hex digits [`Fingerprint`]'s `Display` writes.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text)?;
        Some(Self(bytes.as_slice().try_into().ok()?))
    }
}

fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(k.as_mut_slice());
    k
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// Encrypts `plaintext` with a fresh random nonce: `nonce ‖ ciphertext ‖ tag`.
fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    seal_with_cipher(&cipher(key), aad, plaintext, out);
}

fn seal_with_cipher(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // AES-GCM fails only for messages over 64 GiB.
        .unwrap_or_default();
    out.reserve(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    open_with_cipher(&cipher(key), aad, sealed)
}

fn open_with_cipher(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(KeyError::Unauthentic);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Unauthentic)?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .map_err(|_| KeyError::Unauthentic)
}

/// The key that wraps every data key. Never stored in the store.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    /// Its expanded key schedule, made once (every activation unwraps a data key).
    cipher: Aes256Gcm,
    fingerprint: Fingerprint,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self::from_bytes(&random_key())
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"roster master key fingerprint\0");
        h.update(bytes);
        let digest = h.finalize();
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Self {
            bytes: Zeroizing::new(*bytes),
            cipher: cipher(bytes),
            fingerprint: Fingerprint(fp),
        }
    }

    /// Reads the text form: 64 hex digits, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        let describe = || {
            if t.is_empty() {
                "empty".to_owned()
            } else {
                format!("{} characters long", t.chars().count())
            }
        };
        if t.len() != 2 * KEY_LEN {
            return Err(KeyError::Malformed(describe()));
        }
        let bytes = Zeroizing::new(
            hex::decode(t).ok_or_else(|| KeyError::Malformed("not hexadecimal".into()))?,
        );
        let arr: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed(describe()))?;
        let key = Self::from_bytes(&arr);
        let mut arr = arr;
        zeroize::Zeroize::zeroize(&mut arr);
        Ok(key)
    }

    /// The text form written to key files: 64 hex digits and a newline.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 1));
        for b in self.bytes.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
        s
    }

    /// This key's public name.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Wraps a key for storage. `aad` binds it to its owner (a user id), so a wrapped
    /// key copied onto another record does not open.
    pub fn wrap(&self, key: &[u8; KEY_LEN], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_FORMAT);
        out.extend_from_slice(&self.fingerprint.0);
        seal_with_cipher(&self.cipher, aad, key, &mut out);
        out
    }

    /// Unwraps what [`MasterKey::wrap`] wrote with the same `aad`.
    pub fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_FORMAT {
            return Err(KeyError::BadWrapping);
        }
        let plain = Zeroizing::new(open_with_cipher(
            &self.cipher,
            aad,
            &wrapped[1 + FINGERPRINT_LEN..],
        )?);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

/// The fingerprint of the master key a wrapped key was wrapped with.
pub fn wrapped_by(wrapped: &[u8]) -> Option<Fingerprint> {
    if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_FORMAT {
        return None;
    }
    Some(Fingerprint(
        wrapped[1..1 + FINGERPRINT_LEN].try_into().ok()?,
    ))
}

/// A 256-bit secret key type: random or from stored bytes, zeroed on drop, never
/// printed.
macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Zeroizing<[u8; KEY_LEN]>);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl $name {
            /// A new random key.
            pub fn generate() -> Self {
                Self(random_key())
            }

            /// The key with these bytes (unwrapped from the store).
            pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
                Self(bytes)
            }

            /// The raw bytes, for wrapping.
            pub fn bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }
    };
}

secret_key!(
    /// A user's data key: seals its records.
    DataKey
);

impl DataKey {
    /// Encrypts and authenticates `plaintext`, binding `aad`; appends
    /// `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        seal_with(&self.0, aad, plaintext, out);
    }

    /// Checks and decrypts what [`DataKey::seal_into`] wrote with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        open_with(&self.0, aad, sealed)
    }
}

secret_key!(
    /// Keys the blind email index.
    IndexKey
);

impl IndexKey {
    /// The index entry of a normalised email: HMAC-SHA256.
    pub fn email(&self, normalized: &str) -> [u8; 32] {
        self.mac(b"email\0", normalized.as_bytes(), &[])
    }

    /// The blind index of an id an identity source gives a user (its `external_id`).
    pub fn external(&self, id: &str) -> [u8; 32] {
        self.mac(b"external-id\0", id.as_bytes(), &[])
    }

    /// The `n`th decoy passkey id of a normalised email: what a passwordless start for
    /// an account without passkeys lists, the same on every call and after restarts.
    pub fn passkey_decoy(&self, normalized: &str, n: u8) -> [u8; 32] {
        self.mac(b"passkey-decoy\0", normalized.as_bytes(), &[n])
    }

    /// HMAC-SHA256 of `label ‖ data ‖ suffix`: the label keeps each use's outputs apart.
    fn mac(&self, label: &[u8], data: &[u8], suffix: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.0.as_slice()) else {
            // HMAC accepts keys of any length.
            return [0u8; 32];
        };
        mac.update(label);
        mac.update(data);
        mac.update(suffix);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print_their_bytes() {
        let d = DataKey::generate();
        let i = IndexKey::generate();
        assert_eq!(format!("{d:?}"), "DataKey(<redacted>)");
        assert_eq!(format!("{i:?}"), "IndexKey(<redacted>)");
        assert_ne!(d.bytes(), i.bytes());
        assert_eq!(
            DataKey::from_bytes(Zeroizing::new(*d.bytes())).bytes(),
            d.bytes()
        );
    }

    #[test]
    fn wrapped_keys_open_only_with_their_master_and_owner() {
        let master = MasterKey::generate();
        let other = MasterKey::generate();
        let dk = DataKey::generate();
        let w = master.wrap(dk.bytes(), b"user-a");
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(wrapped_by(&w), Some(master.fingerprint()));
        assert_eq!(*master.unwrap(&w, b"user-a").unwrap(), *dk.bytes());
        assert_eq!(master.unwrap(&w, b"user-b"), Err(KeyError::Unauthentic));
        assert_eq!(other.unwrap(&w, b"user-a"), Err(KeyError::Unauthentic));
        assert_eq!(
            master.unwrap(&w[..10], b"user-a"),
            Err(KeyError::BadWrapping)
        );
        let mut flipped = w.clone();
        flipped[WRAPPED_LEN - 1] ^= 1;
        assert_eq!(
            master.unwrap(&flipped, b"user-a"),
            Err(KeyError::Unauthentic)
        );
    }

    #[test]
    fn sealing_hides_the_plaintext_and_detects_tampering() {
        let dk = DataKey::generate();
        let msg = b"ann@example.com, Ann Lee, +15551234567";
        let mut a = Vec::new();
        dk.seal_into(b"aad", msg, &mut a);
        let mut b = Vec::new();
        dk.seal_into(b"aad", msg, &mut b);
        assert_ne!(a, b, "fresh nonce per seal");
        assert!(
            !a.windows(3).any(|w| w == b"ann"),
            "no plaintext in the output"
        );
        assert_eq!(dk.open(b"aad", &a).unwrap(), msg);
        assert_eq!(dk.open(b"other", &a), Err(KeyError::Unauthentic));
        assert_eq!(
            DataKey::generate().open(b"aad", &a),
            Err(KeyError::Unauthentic)
        );
        a[20] ^= 0x10;
        assert_eq!(dk.open(b"aad", &a), Err(KeyError::Unauthentic));
        assert_eq!(dk.open(b"aad", &a[..5]), Err(KeyError::Unauthentic));
    }

    #[test]
    fn master_key_text_round_trips_and_bad_text_is_named() {
        let k = MasterKey::generate();
        let text = k.to_text();
        let back = MasterKey::parse(&text).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        assert_eq!(
            Fingerprint::parse(&k.fingerprint().to_string()),
            Some(k.fingerprint())
        );
        assert!(matches!(MasterKey::parse(""), Err(KeyError::Malformed(m)) if m == "empty"));
        assert!(
            matches!(MasterKey::parse("abc"), Err(KeyError::Malformed(m)) if m.contains("3 characters"))
        );
        let not_hex = "zz".repeat(KEY_LEN);
        assert!(
            matches!(MasterKey::parse(&not_hex), Err(KeyError::Malformed(m)) if m.contains("hexadecimal"))
        );
        assert_ne!(
            MasterKey::generate().fingerprint(),
            k.fingerprint(),
            "random keys differ"
        );
    }

    #[test]
    fn the_blind_index_is_keyed_and_stable() {
        let k = IndexKey::generate();
        assert_eq!(k.email("ann@example.com"), k.email("ann@example.com"));
        assert_ne!(k.email("ann@example.com"), k.email("bob@example.com"));
        assert_ne!(
            IndexKey::generate().email("ann@example.com"),
            k.email("ann@example.com")
        );
    }
}
