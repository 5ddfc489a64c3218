//! The keyring: the master key and where it comes from, the blind-index key, per-user
//! data keys, the migration of a store written before encryption, and master key
//! rotation.
//!
//! The store holds a keyring record (`m`): the fingerprint of the master key, the
//! blind-index key wrapped by it, whether the pre-encryption migration finished, and the
//! target of a rotation in progress. The master key itself is never in the store: it is
//! read from a key file or an environment variable. At start-up a store that has a
//! keyring record refuses to open without its master key (nothing is generated, nothing
//! is written), and a key that is not the store's is named by fingerprint.
//!
//! Rotation rewraps every data key while the server runs: the new key is written next to
//! the old (`<file>.next`), becomes the one new users are wrapped with, each data key is
//! rewrapped with a compare-and-swap, and only then does the keyring record switch and
//! the files swap (the old key is kept as `<file>.retired-<fingerprint>`). An
//! interrupted rotation resumes at the next start.

mod migrate;
mod rotate;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::EngineError;
use crate::config::Config;
use crate::domain::audit::AuditAction;
use crate::domain::ids::UserId;
use crate::domain::time::{Clock, SystemClock, Timestamp};
use crate::security::keys::{DataKey, Fingerprint, IndexKey, MasterKey, wrapped_by};
use crate::store::commit::Outcome;
use crate::store::{Batch, EmailIndex, Op, Store};

/// The associated data of the wrapped index key.
const INDEX_AAD: &[u8] = b"roster blind index key";
/// Users between progress reports of the migration and rotation.
const PROGRESS_EVERY: u64 = 1000;

/// The keyring record in the store (JSON, so an operator can read it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    /// Record format.
    format: u32,
    /// Fingerprint of the master key that wraps the index key, and every data key
    /// outside a rotation.
    master: String,
    /// The index key, wrapped by `master`, hex.
    index_key: String,
    /// Set while a rotation to this key runs.
    rotating_to: Option<String>,
    /// Whether every record written before encryption has been sealed.
    migrated: bool,
    /// Whether the migration sealed records whose clear bytes may still be in the
    /// store's files, until [`open_store`] rewrites them.
    #[serde(default)]
    rewrite_pending: bool,
    /// How the email claims are keyed: 0 (absent) lowercased only, [`EMAIL_KEYS`]
    /// normalised as [`crate::domain::email::Email::normalized`] says.
    #[serde(default)]
    email_keys: u32,
    /// When `master` became the store's key (ms since 1970): the store's creation, or the
    /// rotation to it. Absent from records written before it was kept.
    #[serde(default)]
    since: Option<i64>,
    /// The key `master` replaced, when it came by rotation.
    #[serde(default)]
    rotated_from: Option<String>,
}

/// The email keying of this build: NFKC, lowercased, NFKC.
const EMAIL_KEYS: u32 = 2;

impl Meta {
    /// The record of `index` wrapped by `master`, in use from `since`, with no rotation
    /// running and no migration done.
    fn new(master: &MasterKey, index: &IndexKey, since: Timestamp) -> Self {
        Self {
            format: 1,
            master: master.fingerprint().to_string(),
            index_key: crate::domain::hex::encode(&master.wrap(index.bytes(), INDEX_AAD)),
            rotating_to: None,
            migrated: false,
            rewrite_pending: false,
            email_keys: EMAIL_KEYS,
            since: Some(since.as_millis()),
            rotated_from: None,
        }
    }
}

/// Since when the master key in use has been the store's key, and which key it replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyHistory {
    /// When it became the store's key: the store's creation or the rotation to it; null
    /// for a key in use since before this was recorded.
    pub in_use_since: Option<Timestamp>,
    /// The fingerprint of the key it replaced by rotation; null when it is the store's
    /// first key (or the record predates this field).
    pub rotated_from: Option<String>,
}

/// Where the master key comes from.
#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Env(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "key file {}", p.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

struct Ring {
    current: Arc<MasterKey>,
    /// Other keys data keys may still be wrapped with (during a rotation).
    others: Vec<Arc<MasterKey>>,
    index: IndexKey,
}

impl Ring {
    fn key(&self, fp: Fingerprint) -> Option<&Arc<MasterKey>> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.fingerprint() == fp)
    }
}

/// How far a rotation or migration is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotationProgress {
    /// Data keys handled so far.
    pub done: u64,
    /// Data keys in the store when the rotation started.
    pub total: u64,
}

/// What a finished rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotationReport {
    /// The retired key's fingerprint.
    pub from: String,
    /// The new key's fingerprint.
    pub to: String,
    /// Data keys rewrapped.
    pub rewrapped: u64,
    /// Data keys that did not unwrap (damaged records, already unreadable), left as
    /// they were and logged by user id.
    pub unreadable: u64,
    /// Where the retired key was kept.
    pub retired_key_file: String,
}

/// Opens the store of `config` with its keyring: checks the master key, seals a store
/// written before encryption, and then rewrites its files so that no clear bytes of it
/// remain (see [`crate::store::rewrite`]).
pub fn open_store(config: &Config) -> Result<(Arc<dyn Store>, Keyring), EngineError> {
    let store = crate::store::open(&config.store)?;
    let keys = Keyring::open(config, store.as_ref())?;
    let Some(mut meta) = read_meta(store.as_ref())?.filter(|m| m.rewrite_pending) else {
        return Ok((store, keys));
    };
    tracing::info!("rewriting the store's files so that no record written in clear remains");
    drop(store);
    crate::store::rewrite(&config.store)?;
    let store = crate::store::open(&config.store)?;
    meta.rewrite_pending = false;
    write_meta(store.as_ref(), &meta)?;
    Ok((store, keys))
}

/// Who a rotation's audit record names, and the writer that writes it with the keyring
/// switch.
pub struct RotationAudit<'a> {
    /// The store's writer (it chains the record).
    pub commit: &'a crate::store::GroupCommit,
    /// When.
    pub at: crate::domain::time::Timestamp,
    /// Who.
    pub actor: crate::domain::audit::AuditActor,
}

/// The engine's keys.
pub struct Keyring {
    ring: RwLock<Ring>,
    source: Source,
    /// One rotation at a time.
    rotating: Mutex<()>,
}

fn key_error(msg: impl Into<String>) -> EngineError {
    EngineError::MasterKey(msg.into())
}

fn read_key_file(path: &Path) -> Result<Option<MasterKey>, EngineError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| key_error(format!("master key file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_error(format!(
            "cannot read master key file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes a key file readable only by its owner, atomically (temporary file, fsync,
/// rename, fsync of the directory).
fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), EngineError> {
    let fail = |what: &str, e: std::io::Error| {
        key_error(format!(
            "cannot {what} master key file {}: {e}",
            path.display()
        ))
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(key.to_text().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("install", e))?;
    sync_dir(dir).map_err(|e| fail("sync the directory of", e))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn next_file(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

fn retired_file(path: &Path, fp: Fingerprint) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".retired-{fp}"));
    PathBuf::from(s)
}

fn read_meta(store: &dyn Store) -> Result<Option<Meta>, EngineError> {
    match store.keyring_meta()? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| key_error(format!("the store's keyring record is unreadable: {e}"))),
    }
}

fn write_meta(store: &dyn Store, meta: &Meta) -> Result<(), EngineError> {
    let b = serde_json::to_vec(meta).map_err(|e| EngineError::Internal(e.to_string()))?;
    store.put_keyring_meta(&b)?;
    store.flush()?;
    Ok(())
}

impl Keyring {
    /// Loads the master key and the store's keyring record and checks that they belong
    /// together; on a store without a record (new, or written before encryption) sets
    /// one up and seals every record. Resumes an interrupted rotation.
    pub fn open(config: &Config, store: &dyn Store) -> Result<Self, EngineError> {
        let cfg = &config.encryption;
        let key_file = config.master_key_file();
        let env_value = (!cfg.master_key_env.is_empty())
            .then(|| std::env::var(&cfg.master_key_env).ok())
            .flatten()
            .filter(|v| !v.trim().is_empty());
        let (source, primary) = match env_value {
            Some(v) => {
                let source = Source::Env(cfg.master_key_env.clone());
                let key = MasterKey::parse(&v).map_err(|e| key_error(format!("{source}: {e}")))?;
                (source, Some(key))
            }
            None => (Source::File(key_file.clone()), read_key_file(&key_file)?),
        };
        let next = match &source {
            Source::File(p) => read_key_file(&next_file(p))?,
            Source::Env(_) => None,
        };
        let Some(meta) = read_meta(store)? else {
            return Self::first_open(cfg, &key_file, store, source, primary);
        };
        let mut candidates: Vec<MasterKey> = primary.into_iter().chain(next).collect();
        if candidates.is_empty() {
            return Err(key_error(format!(
                "this store is encrypted (master key {}), but no master key was found: {} \
                 does not exist{}. Restore the key file from your backup; a new key would \
                 not open the existing data, so none is generated",
                meta.master,
                key_file.display(),
                if cfg.master_key_env.is_empty() {
                    String::new()
                } else {
                    format!(" and {} is not set", cfg.master_key_env)
                }
            )));
        }
        let Some(pos) = candidates
            .iter()
            .position(|k| k.fingerprint().to_string() == meta.master)
        else {
            return Err(key_error(format!(
                "the master key from {source} (fingerprint {}) is not the key this store is \
                 encrypted with (fingerprint {}); nothing was changed",
                candidates[0].fingerprint(),
                meta.master
            )));
        };
        let current = Arc::new(candidates.remove(pos));
        let wrapped = crate::domain::hex::decode(&meta.index_key)
            .ok_or_else(|| key_error("the store's keyring record has a malformed index key"))?;
        let index =
            IndexKey::from_bytes(current.unwrap(&wrapped, INDEX_AAD).map_err(|e| {
                key_error(format!("the store's blind-index key does not unwrap: {e}"))
            })?);
        let keyring = Self {
            ring: RwLock::new(Ring {
                current,
                others: candidates.into_iter().map(Arc::new).collect(),
                index,
            }),
            source,
            rotating: Mutex::new(()),
        };
        if !meta.migrated {
            keyring.migrate(store, meta.clone())?;
        }
        keyring.normalize_emails(store)?;
        if let Some(target) = &meta.rotating_to {
            tracing::warn!(from = %meta.master, to = %target, "resuming an interrupted master key rotation");
            let new = keyring
                .ring()
                .others
                .iter()
                .find(|k| k.fingerprint().to_string() == *target)
                .cloned()
                .ok_or_else(|| {
                    key_error(format!(
                        "a rotation to master key {target} was interrupted, but that key \
                         ({}) is missing; restore it to finish the rotation",
                        next_file(&key_file).display()
                    ))
                })?;
            keyring.finish_rotation(store, new, &mut |_| {}, None)?;
        } else if let Source::File(path) = &keyring.source {
            // A rotation that switched the record but not the files.
            let primary_is_current = read_key_file(path)?
                .is_some_and(|k| k.fingerprint() == keyring.ring().current.fingerprint());
            if !primary_is_current {
                keyring.swap_files(path, None)?;
            }
        }
        Ok(keyring)
    }

    fn first_open(
        cfg: &crate::config::EncryptionConfig,
        key_file: &Path,
        store: &dyn Store,
        source: Source,
        primary: Option<MasterKey>,
    ) -> Result<Self, EngineError> {
        let master = match (primary, &source) {
            (Some(k), _) => k,
            (None, Source::File(path)) if cfg.generate_master_key => {
                let k = MasterKey::generate();
                write_key_file(path, &k)?;
                tracing::warn!(
                    file = %path.display(),
                    fingerprint = %k.fingerprint(),
                    "generated a new master key. BACK IT UP, apart from the data directory: \
                     without it the store cannot be read, and whoever holds both can read it all"
                );
                k
            }
            (None, _) => {
                return Err(key_error(format!(
                    "no master key: {} does not exist{} (encryption.generate_master_key is off)",
                    key_file.display(),
                    if cfg.master_key_env.is_empty() {
                        String::new()
                    } else {
                        format!(" and {} is not set", cfg.master_key_env)
                    }
                )));
            }
        };
        let index = IndexKey::generate();
        let meta = Meta::new(&master, &index, SystemClock.now());
        // The record goes first, so an interrupted migration resumes with the same
        // index key.
        write_meta(store, &meta)?;
        let keyring = Self {
            ring: RwLock::new(Ring {
                current: Arc::new(master),
                others: Vec::new(),
                index,
            }),
            source,
            rotating: Mutex::new(()),
        };
        keyring.migrate(store, meta)?;
        Ok(keyring)
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The fingerprint of the master key in use.
    pub fn fingerprint(&self) -> Fingerprint {
        self.ring().current.fingerprint()
    }

    /// Since when the key in use has been the store's, and which one it replaced, from
    /// the store's keyring record.
    pub fn history(&self, store: &dyn Store) -> Result<KeyHistory, EngineError> {
        let meta = read_meta(store)?.ok_or_else(|| key_error("keyring record missing"))?;
        Ok(KeyHistory {
            in_use_since: meta.since.map(Timestamp::from_millis),
            rotated_from: meta.rotated_from,
        })
    }

    /// The blind index entry of an identity source's id for a user.
    pub(crate) fn external_index(&self, id: &str) -> crate::store::ExternalIndex {
        self.ring().index.external(id)
    }

    /// The blind index entry of a normalised email.
    pub fn email_index(&self, normalized: &str) -> EmailIndex {
        self.ring().index.email(normalized)
    }

    /// The `n`th decoy passkey id of a normalised email (stable across restarts: keyed
    /// by the blind-index key).
    pub(crate) fn passkey_decoy(&self, normalized: &str, n: u8) -> [u8; 32] {
        self.ring().index.passkey_decoy(normalized, n)
    }

    /// Runs `f` with a new data key for `id`, wrapped by the current master key. The
    /// keyring stays locked for reading meanwhile, so a rotation that starts later sees
    /// what `f` stored.
    pub(crate) fn with_new_key<R>(&self, id: UserId, f: impl FnOnce(&DataKey, &[u8]) -> R) -> R {
        let ring = self.ring();
        let key = DataKey::generate();
        let wrapped = ring.current.wrap(key.bytes(), id.as_bytes());
        f(&key, &wrapped)
    }

    /// Unwraps a user's stored data key.
    pub fn unwrap(&self, id: UserId, wrapped: &[u8]) -> Result<DataKey, EngineError> {
        let ring = self.ring();
        let corrupt = |reason: String| EngineError::Corrupt { user: id, reason };
        let fp = wrapped_by(wrapped).ok_or_else(|| corrupt("malformed data key".into()))?;
        let master = ring.key(fp).ok_or_else(|| {
            corrupt(format!(
                "data key is wrapped by master key {fp}, which is not loaded"
            ))
        })?;
        master
            .unwrap(wrapped, id.as_bytes())
            .map(DataKey::from_bytes)
            .map_err(|e| corrupt(format!("data key: {e}")))
    }

    /// A user's data key from the store; `None` if the user has none (erased).
    pub fn data_key(&self, store: &dyn Store, id: UserId) -> Result<Option<DataKey>, EngineError> {
        match store.load_key(id)? {
            None => Ok(None),
            Some(w) => self.unwrap(id, &w).map(Some),
        }
    }
}
