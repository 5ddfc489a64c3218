//! Credentials: password hashing on a bounded worker pool, the password policy, and
//! self-routing session tokens.

pub mod password;
pub mod token;
