//! The console's files, embedded in the binary at build time (no file is read at run
//! time, so a binary started anywhere serves the same console).

/// One embedded file.
pub(super) struct Asset {
    pub media_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $media:literal),* $(,)?) => {
        /// Every file, by the name it is served under (`/admin/<name>`).
        pub(super) const ALL: &[(&str, Asset)] = &[$(
            ($name, Asset { media_type: $media, body: include_bytes!(concat!("assets/", $name)) }),
        )*];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "console.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "live.js" => "text/javascript; charset=utf-8",
    "users.js" => "text/javascript; charset=utf-8",
    "security.js" => "text/javascript; charset=utf-8",
    "analytics.js" => "text/javascript; charset=utf-8",
    "jobs.js" => "text/javascript; charset=utf-8",
    "dashboards.js" => "text/javascript; charset=utf-8",
    "report.js" => "text/javascript; charset=utf-8",
    "shared.html" => "text/html; charset=utf-8",
    "shared.js" => "text/javascript; charset=utf-8",
    "account.html" => "text/html; charset=utf-8",
    "account.js" => "text/javascript; charset=utf-8",
}

/// The file served as `/admin/<name>` (and `/account/<name>`, `/shared/<name>`).
pub(super) fn find(name: &str) -> Option<&'static Asset> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::ALL;

    /// The whole console, gzipped, stays small (the budget: 150 KB), and no file
    /// names another host or holds inline script or style.
    #[test]
    fn the_console_is_small_and_self_contained() {
        let mut gz = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        for (name, a) in ALL {
            gz.write_all(a.body).unwrap();
            let text = std::str::from_utf8(a.body).unwrap();
            for bad in [
                "http://",
                "https://",
                "//cdn",
                "style=\"",
                "onclick",
                "onload",
                "javascript:",
            ] {
                assert!(!text.contains(bad), "{name} holds {bad:?}");
            }
            if name.ends_with(".html") {
                // Every script element loads a file of ours.
                for (i, _) in text.match_indices("<script") {
                    let tag = &text[i..text[i..].find('>').map_or(text.len(), |j| i + j)];
                    let ours = ["/admin/", "/account/", "/shared/"]
                        .iter()
                        .any(|dir| tag.contains(&format!("src=\"{dir}")));
                    assert!(ours, "{name}: inline script {tag}");
                }
            }
        }
        let total = gz.finish().unwrap().len();
        assert!(total < 150 * 1024, "{total} bytes compressed");
    }
}
