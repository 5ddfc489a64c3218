//! The `mixed` scenario's weights.

use super::*;

#[test]
fn mixes_parse_and_pick_by_weight() {
    let m: Mix = "reads=1,logins=3".parse().unwrap();
    assert_eq!((m.reads, m.updates, m.usage, m.logins), (1, 0, 0, 3));
    assert!(matches!(pick(&m, 0), Op::Read));
    assert!(matches!(pick(&m, 1), Op::Login));
    assert!(matches!(pick(&m, 3), Op::Login));
    assert!("reads=x".parse::<Mix>().is_err());
    assert!("jumps=1".parse::<Mix>().is_err());
    assert!("reads=0".parse::<Mix>().is_err());
}
