//! WebAuthn (passkeys, security keys, platform biometrics) through `webauthn-rs`: the
//! relying party, and the ceremony types the API passes through.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rs::prelude::{Webauthn, WebauthnBuilder};

pub use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, WebauthnError,
};

use crate::domain::mfa::{MfaState, StoredPasskey};
use crate::domain::time::Timestamp;

/// The relying party `rp_id` (named `rp_name` to users) for ceremonies from `origins`
/// (the first is the primary one), or why the library refuses it.
pub(crate) fn relying_party(
    rp_id: &str,
    rp_name: &str,
    origins: &[Url],
) -> Result<Webauthn, String> {
    let Some(primary) = origins.first() else {
        return Err("origins must name at least one web origin".into());
    };
    let mut b = WebauthnBuilder::new(rp_id, primary)
        .map_err(|e| format!("rp_id {rp_id:?} with origin {primary}: {e}"))?;
    for o in &origins[1..] {
        b = b.append_allowed_origin(o);
    }
    if !rp_name.is_empty() {
        b = b.rp_name(rp_name);
    }
    b.build().map_err(|e| e.to_string())
}

/// A credential id as text (base64url, the form WebAuthn clients use).
pub(crate) fn credential_id(passkey: &Passkey) -> String {
    URL_SAFE_NO_PAD.encode(passkey.cred_id())
}

/// Reads a stored credential back.
pub fn decode(stored: &StoredPasskey) -> Option<Passkey> {
    serde_json::from_str(&stored.credential).ok()
}

/// The credentials of `mfa`, for a ceremony.
pub fn all(mfa: &MfaState) -> Vec<Passkey> {
    mfa.passkeys.iter().filter_map(decode).collect()
}

/// Keeps what a successful assertion taught: the credential's last use, and its
/// signature counter and backup state when they moved.
pub(crate) fn record_use(mfa: &mut MfaState, result: &AuthenticationResult, now: Timestamp) {
    let id = URL_SAFE_NO_PAD.encode(result.cred_id());
    let Some(stored) = mfa.passkeys.iter_mut().find(|p| p.id == id) else {
        return;
    };
    stored.last_used_at = Some(now);
    if result.needs_update()
        && let Some(mut pk) = decode(stored)
        && pk.update_credential(result) == Some(true)
        && let Ok(json) = serde_json::to_string(&pk)
    {
        stored.credential = json;
    }
}

/// A new credential, ready to store.
pub fn store(passkey: &Passkey, name: String, now: Timestamp) -> Result<StoredPasskey, String> {
    Ok(StoredPasskey {
        id: credential_id(passkey),
        name,
        created_at: now,
        last_used_at: None,
        credential: serde_json::to_string(passkey).map_err(|e| e.to_string())?,
    })
}
