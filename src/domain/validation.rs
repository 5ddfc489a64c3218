//! The typed error for input that breaks a rule, and small checks shared by the domain.

/// Input that breaks a rule: which field, and why. Clients get both, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The offending field, dotted for nested ones (`ai_preferences.learning_rate`).
    pub field: String,
    /// What is wrong with it, in words a client developer can act on.
    pub reason: String,
}

impl ValidationError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks a free-text field: trimmed non-empty, at most `max` characters, no control
/// characters. Returns the trimmed text.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ValidationError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Checks a BCP 47-shaped language tag such as `en`, `pt-BR` or `zh-Hant-TW`.
pub fn language(field: &str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    let mut parts = v.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if primary_ok && rest_ok {
        Ok(v.to_owned())
    } else {
        Err(ValidationError::new(
            field,
            "must be a language tag such as \"en\" or \"pt-BR\"",
        ))
    }
}

/// Checks an IANA time-zone name shape (`UTC`, `Europe/Paris`, `America/Argentina/Salta`).
pub fn timezone(field: &str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.split('/').count() <= 3
        && v.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        })
        && v.starts_with(|c: char| c.is_ascii_uppercase());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ValidationError::new(
            field,
            "must be an IANA time zone such as \"UTC\" or \"Europe/Paris\"",
        ))
    }
}

/// Checks that a number is finite and within `[min, max]`.
pub(crate) fn in_range(
    field: &str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<f64, ValidationError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_trims_and_bounds() {
        assert_eq!(text("f", "  Jo ", 10).unwrap(), "Jo");
        assert!(text("f", "   ", 10).is_err());
        assert!(text("f", "abcdefghijk", 10).is_err());
        assert!(text("f", "a\u{0}b", 10).is_err());
        assert_eq!(text("f", "ééé", 3).unwrap(), "ééé");
    }

    #[test]
    fn language_and_timezone_shapes() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "fil"] {
            assert!(language("l", ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english!", "en--US", "en-"] {
            assert!(language("l", bad).is_err(), "{bad}");
        }
        for ok in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Salta",
            "Etc/GMT+2",
        ] {
            assert!(timezone("t", ok).is_ok(), "{ok}");
        }
        for bad in ["", "utc", "Europe//Paris", "A/B/C/D", "Mars Base"] {
            assert!(timezone("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_reject_nan() {
        assert!(in_range("r", f64::NAN, 0.0, 1.0).is_err());
        assert!(in_range("r", 1.0, 0.0, 1.0).is_ok());
        assert!(in_range("r", 1.01, 0.0, 1.0).is_err());
    }
}
