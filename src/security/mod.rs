//! Credentials: password hashing on a bounded worker pool, the password policy,
//! self-routing session tokens, TOTP authenticators, one-time codes and the keys of
//! encryption at rest.

pub mod keys;
pub(crate) mod otp;
pub mod passkey;
pub mod password;
pub mod token;
pub mod totp;
