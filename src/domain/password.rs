//! Passwords as policy: what a new password must satisfy, and the argon2id cost a
//! deployment chooses. Hashing itself is crypto and lives in `security::password`.

use crate::domain::email::Email;
use crate::domain::validation::ValidationError;

/// Hard ceiling on password length, in characters. Longer input is refused, never cut.
pub(crate) const MAX_PASSWORD_CHARS: usize = 128;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// RFC 9106's bounds: at least one pass, 1 to 2²⁴ − 1 lanes, and at least 8 KiB of
    /// memory per lane.
    pub fn check(&self) -> Result<(), String> {
        if self.iterations == 0 {
            return Err("iterations must be at least 1".into());
        }
        if !(1..(1 << 24)).contains(&self.parallelism) {
            return Err("parallelism must be between 1 and 16777215".into());
        }
        if u64::from(self.memory_kib) < 8 * u64::from(self.parallelism) {
            return Err(format!(
                "memory_kib must be at least 8 per lane ({} for {} lanes)",
                8 * u64::from(self.parallelism),
                self.parallelism
            ));
        }
        Ok(())
    }
}

/// What a new password must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_chars: usize,
    /// Lowest zxcvbn strength score (0–4) accepted.
    pub min_strength: u8,
}

impl PasswordPolicy {
    /// Checks a new password for `email`: length in characters, and strength as zxcvbn
    /// judges it with the email's parts as known words, so common passwords and
    /// passwords built from the address are refused.
    pub fn check(&self, password: &str, email: &Email) -> Result<(), ValidationError> {
        let n = password.chars().count();
        if n < self.min_chars {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let normalized = email.normalized();
        let (local, domain) = normalized.split_once('@').unwrap_or((&normalized, ""));
        let score = zxcvbn::zxcvbn(password, &[&normalized, local, domain]).score() as u8;
        if score < self.min_strength {
            return Err(ValidationError::new(
                "password",
                "is too easy to guess (a common password, or built from the email); use a longer passphrase",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_chars: 12,
            min_strength: 3,
        }
    }

    #[test]
    fn policy_counts_characters_and_refuses_weak_or_email_based_passwords() {
        let email = Email::parse("melody.maker@example.com").unwrap();
        assert!(
            policy()
                .check("correct horse battery staple", &email)
                .is_ok()
        );
        assert!(policy().check("short", &email).is_err());
        assert!(policy().check("password1234", &email).is_err(), "common");
        assert!(
            policy().check("melody.maker2024", &email).is_err(),
            "built from the email"
        );
        let long = "ü".repeat(MAX_PASSWORD_CHARS + 1);
        assert!(
            policy()
                .check(&long, &email)
                .unwrap_err()
                .reason
                .contains("at most")
        );
        // 128 multi-byte characters are fine: the limit counts characters, not bytes.
        let at_limit: String = "Zq9!ümlaut-"
            .chars()
            .cycle()
            .take(MAX_PASSWORD_CHARS)
            .collect();
        assert!(policy().check(&at_limit, &email).is_ok());
    }
}
