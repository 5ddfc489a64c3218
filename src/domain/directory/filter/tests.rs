//! The filter grammar and its evaluation, against one record.

use super::*;
use crate::domain::directory::DirectoryEntry;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;

fn record() -> DirectoryRecord {
    DirectoryRecord {
        id: UserId::generate(),
        email: "Barbara.Jensen@example.com".into(),
        display_name: "Babs".into(),
        language: "en-US".into(),
        timezone: "Europe/Oslo".into(),
        tier: UserTier::Premium,
        created_at: Timestamp::from_millis(1_700_000_000_000),
        updated_at: Timestamp::from_millis(1_700_000_100_000),
        entry: DirectoryEntry {
            external_id: Some("00u1ABC".into()),
            given_name: Some("Barbara".into()),
            family_name: Some("Jensen".into()),
            deactivated_at: None,
        },
    }
}

fn yes(f: &str) -> bool {
    Filter::parse(f)
        .unwrap_or_else(|e| panic!("{f}: {e}"))
        .matches(&record())
}

#[test]
fn the_rfc_operators_match_as_they_say() {
    assert!(yes(r#"userName eq "barbara.jensen@EXAMPLE.com""#));
    assert!(!yes(r#"userName ne "barbara.jensen@example.com""#));
    assert!(yes(r#"name.familyName co "ens""#));
    assert!(yes(r#"USERNAME sw "barb""#));
    assert!(yes(r#"userName ew ".com""#));
    assert!(yes(r#"externalId eq "00u1ABC""#));
    assert!(
        !yes(r#"externalId eq "00u1abc""#),
        "externalId is case-exact"
    );
    assert!(yes("name.givenName pr and active eq true"));
    assert!(!yes("active eq false"));
    assert!(yes(r#"meta.created lt "2023-11-15T00:00:00Z""#));
    assert!(yes(r#"meta.lastModified gt "2023-11-14T22:13:00Z""#));
    assert!(yes(r#"emails[type eq "work" and value co "@example.com"]"#));
    assert!(yes(
        r#"not (displayName eq "Other") and (tier eq "premium" or active eq false)"#
    ));
    assert!(yes(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#
    ));
    assert!(yes(
        r#"urn:roster:params:scim:schemas:extension:2.0:User:tier eq "PREMIUM""#
    ));
    assert!(yes("externalId ne null"));
    assert!(yes(r#"displayName eq "x" or locale eq "en-us""#));
}

#[test]
fn and_binds_tighter_than_or() {
    // false and false or true = (false and false) or true
    assert!(yes(
        r#"displayName eq "x" and displayName eq "y" or active eq true"#
    ));
    // true or false and false = true or (false and false)
    assert!(yes(
        r#"active eq true or displayName eq "x" and displayName eq "y""#
    ));
    assert!(!yes(
        r#"(active eq true or displayName eq "x") and displayName eq "y""#
    ));
}

#[test]
fn bad_filters_say_what_is_wrong() {
    for (f, why) in [
        ("title eq \"x\"", "unknown attribute `title`"),
        ("userName xx \"x\"", "unknown operator"),
        ("userName eq", "needs a value"),
        ("userName eq \"x", "not closed"),
        ("(userName eq \"x\"", "expected `)`"),
        ("active co \"t\"", "true or false"),
        ("active gt true", "cannot be compared"),
        ("meta.created gt \"yesterday\"", "dateTime"),
        ("phoneNumbers[type eq \"work\"]", "multi-valued"),
        ("userName eq \"x\" extra", "unexpected"),
        ("urn:example:other:title eq \"x\"", "unknown attribute"),
        ("", "ends where an attribute"),
    ] {
        let err = Filter::parse(f).expect_err(f).0;
        assert!(err.contains(why), "{f}: {err}");
    }
    let deep = format!("{}active pr{}", "(".repeat(40), ")".repeat(40));
    assert!(Filter::parse(&deep).expect_err("deep").0.contains("nest"));
    assert!(Filter::parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
}

#[test]
fn an_equality_on_an_indexed_attribute_is_a_lookup() {
    let l = |f: &str| Filter::parse(f).expect(f).lookup();
    assert_eq!(
        l(r#"userName eq "a@b.c""#),
        Some(Lookup::Email("a@b.c".into()))
    );
    assert_eq!(
        l(r#"active eq true and externalId eq "x""#),
        Some(Lookup::ExternalId("x".into()))
    );
    assert_eq!(l(r#"userName eq "a@b.c" or active eq true"#), None);
    assert_eq!(l(r#"userName sw "a""#), None);
}
