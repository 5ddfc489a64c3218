//! Shared helpers: a test configuration (cheap argon2 from `config/test.toml`, a temp
//! data dir) and a manager opened on it.

use std::path::Path;
use std::sync::Arc;

use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::time::{ManualClock, Timestamp};

/// A password the default policy accepts.
pub const PW: &str = "correct horse battery staple";

/// The test configuration for `dir`, with `extra` TOML layered on top.
pub fn config(dir: &Path, extra: &str) -> Config {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../../config/test.toml")).unwrap(),
        parse_toml(
            "dir",
            &format!("[store]\ndata_dir = {:?}\n", dir.display().to_string()),
        )
        .unwrap(),
        parse_toml("extra", extra).unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

/// A manager on `dir` with the real clock.
pub fn open(dir: &Path) -> UserManager {
    UserManager::open(config(dir, "")).unwrap()
}

/// A manager on `dir` with a manual clock, returned alongside.
pub fn open_with_clock(dir: &Path, extra: &str) -> (UserManager, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let m = UserManager::open_with_clock(config(dir, extra), Arc::new(clock.clone())).unwrap();
    (m, clock)
}
