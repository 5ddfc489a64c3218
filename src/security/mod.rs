//! Credentials: password hashing on a bounded worker pool, the password policy,
//! self-routing session tokens, TOTP authenticators and one-time codes.

pub mod otp;
pub mod passkey;
pub mod password;
pub mod token;
pub mod totp;
