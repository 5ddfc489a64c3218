//! Second factors: the authenticator, phone numbers for codes by SMS, passkeys, recovery
//! codes. Enrolling is the user's own business, from a recently authenticated session;
//! removing a factor needs a step-up, except an operator's reset of the authenticator,
//! which is audited with the removal.

use super::UserManager;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::ids::UserId;
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::outcomes::CodeSend;
use crate::engine::user::{
    BeginPasskeyRegistration, BeginSms, BeginTotp, ConfirmSms, ConfirmTotp,
    FinishPasskeyRegistration, GetMfa, RegenerateRecovery, RemovePasskey, RemoveSms, RemoveTotp,
};
use crate::security::passkey::{CreationChallengeResponse, RegisterPublicKeyCredential};
use crate::security::totp::TotpEnrollment;

/// Longest name of a passkey, in characters.
const MAX_PASSKEY_NAME: usize = 64;

/// See [`UserManager::mfa`].
#[derive(Clone, Copy)]
pub struct Mfa<'a> {
    pub(super) m: &'a UserManager,
}

/// `NotFound` from a removal means the factor, not the user.
fn missing(what: &'static str) -> impl FnOnce(EngineError) -> EngineError {
    move |e| match e {
        EngineError::NotFound => EngineError::NoSuch(what),
        e => e,
    }
}

impl Mfa<'_> {
    /// The user's second factors (never their secrets).
    pub async fn status(self, by: &Principal, id: UserId) -> Result<MfaStatus, EngineError> {
        by.on(id)?;
        self.m.engine.call(id, GetMfa).await
    }

    /// Starts authenticator enrollment: the secret, the `otpauth://` URI and a QR code.
    pub async fn begin_totp(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<TotpEnrollment, EngineError> {
        let session = Some(by.own(id)?);
        let e = &self.m.engine;
        e.call_durable(id, BeginTotp { session }).await
    }

    /// Confirms the pending authenticator with its first code; returns the recovery
    /// codes (shown once).
    pub async fn confirm_totp(
        self,
        by: &Principal,
        id: UserId,
        code: &str,
    ) -> Result<Vec<String>, EngineError> {
        by.own(id)?;
        self.m
            .login()
            .check_code(SecondFactor::Authenticator, code)?;
        let e = &self.m.engine;
        let msg = ConfirmTotp {
            code: code.trim().to_owned(),
        };
        e.call_durable(id, msg).await
    }

    /// Removes the authenticator and recovery codes (the user after a step-up; the
    /// operator, audited), or cancels a pending enrollment.
    pub async fn remove_totp(self, by: &Principal, id: UserId) -> Result<(), EngineError> {
        let access = by.on(id)?;
        let audit = match (by, by.audit_actor()) {
            (Principal::Operator, Some(a)) => Some((a, AuditAction::MfaReset { user: id })),
            _ => None,
        };
        let e = &self.m.engine;
        let msg = RemoveTotp {
            session: access.session(),
            audit,
        };
        e.call_durable(id, msg).await
    }

    /// New recovery codes in place of the old ones (after a step-up).
    pub async fn regenerate_recovery_codes(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<Vec<String>, EngineError> {
        let session = Some(by.own(id)?);
        let e = &self.m.engine;
        e.call_durable(id, RegenerateRecovery { session }).await
    }

    /// Texts a code to `phone` (E.164) to verify it for sign-in codes by SMS.
    pub async fn begin_sms(
        self,
        by: &Principal,
        id: UserId,
        phone: &str,
    ) -> Result<CodeSend, EngineError> {
        let session = Some(by.own(id)?);
        let msg = BeginSms {
            session,
            phone: phone.to_owned(),
        };
        self.m.engine.call(id, msg).await
    }

    /// Confirms the phone number with the texted code; returns recovery codes when the
    /// user had none.
    pub async fn confirm_sms(
        self,
        by: &Principal,
        id: UserId,
        code: &str,
    ) -> Result<Vec<String>, EngineError> {
        by.own(id)?;
        self.m.login().check_code(SecondFactor::Sms, code)?;
        let e = &self.m.engine;
        let msg = ConfirmSms {
            code: code.trim().to_owned(),
        };
        e.call_durable(id, msg).await
    }

    /// Removes the phone number (after a step-up).
    pub async fn remove_sms(self, by: &Principal, id: UserId) -> Result<(), EngineError> {
        let session = Some(by.own(id)?);
        let e = &self.m.engine;
        e.call_durable(id, RemoveSms { session })
            .await
            .map_err(missing("phone number"))
    }

    /// Starts registering a passkey or security key: the options for
    /// `navigator.credentials.create()`.
    pub async fn begin_passkey_registration(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<CreationChallengeResponse, EngineError> {
        let session = Some(by.own(id)?);
        self.m
            .engine
            .call(id, BeginPasskeyRegistration { session })
            .await
    }

    /// Completes a passkey registration under `name` (1 to 64 printable characters);
    /// returns recovery codes when the user had none.
    pub async fn finish_passkey_registration(
        self,
        by: &Principal,
        id: UserId,
        name: &str,
        credential: RegisterPublicKeyCredential,
    ) -> Result<Vec<String>, EngineError> {
        by.own(id)?;
        let name = name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_PASSKEY_NAME
            || name.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "name",
                format!("must be 1 to {MAX_PASSKEY_NAME} printable characters"),
            )
            .into());
        }
        let e = &self.m.engine;
        let msg = FinishPasskeyRegistration {
            name,
            credential: Box::new(credential),
        };
        e.call_durable(id, msg).await
    }

    /// Removes the passkey with credential id `credential` (base64url), after a step-up.
    pub async fn remove_passkey(
        self,
        by: &Principal,
        id: UserId,
        credential: &str,
    ) -> Result<(), EngineError> {
        let session = Some(by.own(id)?);
        let e = &self.m.engine;
        let msg = RemovePasskey {
            session,
            id: credential.to_owned(),
        };
        e.call_durable(id, msg).await.map_err(missing("passkey"))
    }
}
