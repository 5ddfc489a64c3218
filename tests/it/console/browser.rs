//! The operator console in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs). Screenshots of
//! each view go to `target/console-screenshots/`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver of its own and a browser session on it; the driver is stopped on drop.
pub(crate) struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium through it.
    pub(crate) async fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (apt-get install -y --no-install-recommends chromium chromium-driver; .ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(&status).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "chromedriver did not answer within 10 s");
        // Chromium as root needs --no-sandbox; the rest keeps it from calling out (the
        // machine has no network beyond loopback) and from prompting.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap();
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Clicks the element of id `id`, once it can be clicked: a page may still be
    /// showing it (a view unhidden after a call) when the test gets there.
    pub(crate) async fn click(&self, id: &str) {
        use fantoccini::error::{CmdError, ErrorStatus};
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let el = self.client.find(Locator::Id(id)).await.unwrap();
            match el.click().await {
                Ok(_) => return,
                Err(CmdError::Standard(e))
                    if matches!(
                        e.error,
                        ErrorStatus::ElementNotInteractable | ErrorStatus::ElementClickIntercepted
                    ) && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("clicking #{id}: {err}"),
            }
        }
    }

    /// Replaces the text of the input of id `id` with `text`.
    pub(crate) async fn type_in(&self, id: &str, text: &str) {
        let el = self.client.find(Locator::Id(id)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// Chooses `value` in the select of id `id`.
    pub(crate) async fn select(&self, id: &str, value: &str) {
        let el = self.client.find(Locator::Id(id)).await.unwrap();
        el.select_by_value(value).await.unwrap();
    }

    /// The text of the element `css` names, once it is there.
    pub(crate) async fn text(&self, css: &str) -> String {
        let el = self.client.wait().at_most(Duration::from_secs(10));
        el.for_element(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (at most `within`) until `ready` holds of the page's state that `script`
    /// returns; the last value seen.
    pub(crate) async fn until(
        &self,
        within: Duration,
        script: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = std::time::Instant::now();
        loop {
            let v = self.client.execute(script, vec![]).await.unwrap();
            if ready(&v) || started.elapsed() > within {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot as `target/console-screenshots/NAME.png`, and checks that it
    /// is not blank (its pixels take more than a handful of values).
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        let distinct = distinct_bytes(&png);
        assert!(
            distinct > 16,
            "{name}.png looks blank: {distinct} distinct byte values"
        );
    }

    /// Every URL the page loaded (documents, scripts, styles, fetches).
    pub(crate) async fn loaded_urls(&self) -> Vec<String> {
        let script = "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));";
        let v = self.client.execute(script, vec![]).await.unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect()
    }
}

/// How many distinct byte values a PNG's pixel rows hold, filter bytes and all (a blank
/// page's rows are one colour: a few values).
fn distinct_bytes(png: &[u8]) -> usize {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut at, mut idat) = (8, Vec::new());
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        if kind == b"IDAT" {
            idat.extend_from_slice(&png[at + 8..at + 8 + len]);
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let mut seen = [false; 256];
    for b in raw {
        seen[b as usize] = true;
    }
    seen.iter().filter(|s| **s).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_live_figures_finds_a_user_and_revokes_its_session() {
    let srv = TestServer::start("").await;
    let root = format!("http://{}", srv.host());
    let b = Browser::start().await;
    b.client.goto(&format!("{root}/admin")).await.unwrap();

    // Signed out, the page asks for the key; the console's own API calls were refused.
    let key = b
        .client
        .wait()
        .for_element(Locator::Id("key"))
        .await
        .unwrap();
    assert!(key.is_displayed().await.unwrap());
    assert!(
        !b.client
            .find(Locator::Id("nav"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    b.screenshot("sign-in").await;
    key.send_keys("not the key").await.unwrap();
    b.click("sign-in-button").await;
    let wrong = b
        .until(
            Duration::from_secs(5),
            "return document.getElementById('sign-in-error').textContent",
            |v| v.as_str().is_some_and(|t| !t.is_empty()),
        )
        .await;
    assert_eq!(wrong, "the operator key is wrong");
    key.clear().await.unwrap();
    key.send_keys(ADMIN_KEY).await.unwrap();
    b.click("sign-in-button").await;

    // Live: the first frame arrives, then a login shows within 3 seconds.
    let figure = "return document.getElementById('active-total').textContent";
    let first = b
        .until(Duration::from_secs(10), figure, |v| {
            v.as_str().is_some_and(|t| t.parse::<u64>().is_ok())
        })
        .await;
    let before: u64 = first.as_str().unwrap().parse().expect("a live figure");
    let (id, token) = srv.user("watched@example.com", "premium").await;
    let after = b
        .until(Duration::from_secs(3), figure, |v| {
            v.as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|n| n > before)
        })
        .await;
    let after: u64 = after.as_str().unwrap().parse().unwrap();
    assert!(
        after > before,
        "the active figure went from {before} to {after} within 3 s"
    );
    assert_eq!(
        b.text("#active-premium").await,
        after.to_string(),
        "the user is Premium"
    );
    b.until(
        Duration::from_secs(7),
        "return document.getElementById('round-trip').textContent",
        |v| v.as_str().is_some_and(|t| t.ends_with(" ms")),
    )
    .await;
    let pool = b.text("#hash-busy").await;
    assert!(
        pool.contains("% of "),
        "the hashing pool's load is shown: {pool}"
    );
    for id in ["#risk-allow", "#risk-mfa", "#risk-deny"] {
        let rate = b.text(id).await;
        assert!(rate.parse::<f64>().is_ok(), "{id} shows a rate: {rate}");
    }
    b.screenshot("live").await;

    // Users: found by email; its session revoked from the page; the token then fails.
    b.click("nav-users").await;
    let find = b
        .client
        .wait()
        .for_element(Locator::Id("find-email"))
        .await
        .unwrap();
    find.send_keys("Watched@Example.com").await.unwrap();
    b.click("find-button").await;
    let rows = "return document.querySelectorAll('#user-sessions tr[data-session]').length";
    let n = b
        .until(Duration::from_secs(5), rows, |v| v.as_u64() == Some(1))
        .await;
    assert_eq!(n, 1, "the user's one session is listed");
    assert_eq!(b.text("#user-profile dd[data-field='id']").await, id);
    assert_eq!(
        srv.call(Method::GET, "/users/me", Some(&token), None)
            .await
            .0,
        200
    );
    b.screenshot("users").await;
    b.client
        .find(Locator::Css("#user-sessions button.revoke"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let n = b
        .until(Duration::from_secs(5), rows, |v| v.as_u64() == Some(0))
        .await;
    assert_eq!(n, 0, "the row is gone");
    assert_eq!(
        srv.call(Method::GET, "/users/me", Some(&token), None)
            .await
            .0,
        401
    );
    // The page's calls are the operator's, on record like the same calls with the key.
    let log = srv.audit_log().await;
    let of = |kind: &str| {
        log.as_array().unwrap().iter().any(|e| {
            e["action"]["type"] == kind
                && e["action"]["user"] == id.as_str()
                && e["actor"]["kind"] == "operator"
        })
    };
    assert!(of("user_created") && of("session_revoked"), "{log}");
    let kinds = "return [...document.querySelectorAll('#user-events tbody tr td:nth-child(2)')].map(t => t.textContent)";
    let kinds = b
        .until(Duration::from_secs(5), kinds, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|k| k == "session_revoked"))
        })
        .await;
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "session_revoked"),
        "{kinds}"
    );

    // The tier changed from the page is the user's tier.
    let select = b.client.find(Locator::Id("new-tier")).await.unwrap();
    select.select_by_value("vip").await.unwrap();
    b.click("change-tier-button").await;
    let tier = "return document.querySelector(\"#user-profile dd[data-field='tier']\").textContent";
    assert_eq!(
        b.until(Duration::from_secs(5), tier, |v| v == "vip").await,
        "vip"
    );
    let (_, profile) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(profile["tier"], "vip", "{profile}");

    // Security: the chain verified; a network denied from the page is denied, and the
    // live feed shows the operators' action.
    b.click("nav-security").await;
    let audit = "return document.getElementById('audit-status').dataset.status || ''";
    assert_eq!(
        b.until(Duration::from_secs(5), audit, |v| v == "intact")
            .await,
        "intact"
    );
    let feed = "return document.getElementById('feed-status').textContent";
    b.until(Duration::from_secs(5), feed, |v| {
        v.as_str().is_some_and(|t| t.starts_with("connected"))
    })
    .await;
    b.type_in("deny-network", "198.51.100.0/24").await;
    b.type_in("deny-reason", "from the console").await;
    b.click("deny-button").await;
    let denied = "return [...document.querySelectorAll('#denied tbody tr td:first-child')].map(t => t.textContent)";
    let listed = b
        .until(Duration::from_secs(5), denied, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|n| n == "198.51.100.0/24"))
        })
        .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "198.51.100.0/24"),
        "{listed}"
    );
    let (_, api_list) = srv
        .call(Method::GET, "/admin/deny-networks", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(api_list[0]["reason"], "from the console", "{api_list}");
    assert_eq!(api_list[0]["added_by"], "operator", "{api_list}");
    let kinds = "return [...document.querySelectorAll('#feed tbody tr td:nth-child(2)')].map(t => t.textContent)";
    let kinds = b
        .until(Duration::from_secs(5), kinds, |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|k| k == "operator.network_denied"))
        })
        .await;
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "operator.network_denied"),
        "{kinds}"
    );
    // The master key: a new store's first key, in use since it was made.
    let replaced = "return document.getElementById('key-replaced').textContent";
    assert_eq!(
        b.until(Duration::from_secs(5), replaced, |v| v != "–")
            .await,
        "never rotated"
    );
    let since = b.text("#key-since").await;
    assert!(since != "–" && since != "not recorded", "{since}");
    // Second factors by tier and consents by purpose, counted over the stored users.
    let rows = "return [document.querySelectorAll('#mfa-adoption tbody tr').length, \
                document.querySelectorAll('#consents-by-purpose tbody tr').length]";
    let rows = b
        .until(Duration::from_secs(5), rows, |v| v == &json!([4, 4]))
        .await;
    assert_eq!(rows, json!([4, 4]), "a row per tier and per purpose");
    b.screenshot("security").await;

    // Tiers and analytics: the page's figures are the API's.
    b.click("nav-analytics").await;
    let users =
        "return document.querySelector(\"#overview dd[data-field='users']\")?.textContent ?? ''";
    let shown = b
        .until(Duration::from_secs(10), users, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    let (_, overview) = srv
        .call(
            Method::GET,
            "/admin/analytics/overview",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(shown, overview["users"].to_string(), "{overview}");
    let premium = "return document.querySelector('#tier-now tbody tr:nth-child(2) td:nth-child(2)')?.textContent ?? ''";
    let premium = b
        .until(Duration::from_secs(5), premium, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert_eq!(
        premium,
        overview["users_by_tier"]["premium"].to_string(),
        "{overview}"
    );
    let forecast = "return document.querySelectorAll('#forecast tbody tr').length";
    let rows = b.until(Duration::from_secs(5), forecast, |v| v == 6).await;
    assert_eq!(rows, 6, "users, monthly actives and the four tiers");
    b.screenshot("analytics").await;

    // Jobs: listed from the scheduler's API.
    b.click("nav-jobs").await;
    let jobs = "return document.querySelectorAll('#jobs tbody tr').length";
    let n = b
        .until(Duration::from_secs(5), jobs, |v| {
            v.as_u64().is_some_and(|n| n > 0)
        })
        .await;
    assert!(n.as_u64().unwrap() > 0, "jobs listed");
    b.screenshot("jobs").await;

    // Everything came from the server; no inline script runs under the page's policy.
    for url in b.loaded_urls().await {
        assert!(
            url.starts_with(&format!("{root}/")),
            "a request to another place: {url}"
        );
    }
    let inline = "const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; \
                  document.head.appendChild(s); return window.inlineRan === true;";
    assert_eq!(
        b.client.execute(inline, vec![]).await.unwrap(),
        json!(false)
    );

    // Signed out, the API no longer answers the browser as the operator.
    b.click("sign-out").await;
    b.client
        .wait()
        .for_element(Locator::Id("sign-in-view"))
        .await
        .unwrap();
    let status = b
        .client
        .execute_async(
            "const done = arguments[0]; fetch('/api/v1/admin/jobs').then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(401));
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}

/// Opens the console at `root` and signs in with the operator key.
pub(crate) async fn console_sign_in(b: &Browser, root: &str) {
    b.client.goto(&format!("{root}/admin")).await.unwrap();
    let key = b
        .client
        .wait()
        .for_element(Locator::Id("key"))
        .await
        .unwrap();
    key.send_keys(ADMIN_KEY).await.unwrap();
    b.click("sign-in-button").await;
    b.client
        .wait()
        .for_element(Locator::Css("#nav:not([hidden])"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_composes_a_dashboard_that_is_there_after_a_restart() {
    let srv = TestServer::start("").await;
    srv.user("member@example.com", "premium").await;
    let b = Browser::start().await;
    console_sign_in(&b, &format!("http://{}", srv.host())).await;
    b.click("nav-dashboards").await;
    let name = b
        .client
        .wait()
        .for_element(Locator::Id("dash-name"))
        .await
        .unwrap();
    name.send_keys("weekly-review").await.unwrap();
    b.type_in("dash-title", "Weekly review").await;
    let kind = b.client.find(Locator::Id("panel-kind")).await.unwrap();
    kind.select_by_value("overview").await.unwrap();
    b.click("add-panel").await;
    kind.select_by_value("cohorts").await.unwrap();
    b.select("panel-tier", "premium").await;
    b.type_in("panel-days", "28").await;
    b.click("add-panel").await;
    b.click("save-dashboard").await;
    let panels = "return document.querySelectorAll('#dashboard-render section.panel table').length";
    assert_eq!(b.until(Duration::from_secs(5), panels, |v| v == 2).await, 2);
    let (_, saved) = srv
        .call(
            Method::GET,
            "/admin/dashboards/weekly-review",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        saved["panels"][1],
        json!({"kind": "cohorts", "title": null, "tier": "premium", "days": 28})
    );

    // The server restarts: the operator signs in again and opens the dashboard.
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, "").await;
    console_sign_in(&b, &format!("http://{}", srv.host())).await;
    b.click("nav-dashboards").await;
    let open = b
        .client
        .wait()
        .for_element(Locator::Css(
            "#dashboard-list tr[data-dashboard='weekly-review'] button.open",
        ))
        .await
        .unwrap();
    open.click().await.unwrap();
    assert_eq!(b.until(Duration::from_secs(5), panels, |v| v == 2).await, 2);
    assert_eq!(b.text("#dashboard-title").await, "Weekly review");
    let users = "return document.querySelector('#dashboard-render section.panel[data-kind=overview] tbody td:nth-child(2)')?.textContent ?? ''";
    assert_eq!(
        b.until(Duration::from_secs(5), users, |v| v == "1").await,
        "1"
    );
    b.screenshot("dashboards").await;

    // Exported as CSV: each panel's heading, columns and rows.
    b.click("export-csv").await;
    let csv = "return document.getElementById('csv-status').dataset.csv || ''";
    let csv = b
        .until(Duration::from_secs(5), csv, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    let csv = csv.as_str().unwrap();
    assert!(
        csv.starts_with("Overview\nfigure,value\nusers,1\n"),
        "{csv}"
    );
    assert!(
        csv.contains(
            "\"Retention cohorts (premium, 28 days)\"\nweek of sign-up,users,+0,+1,+2,+3\n"
        ),
        "{csv}"
    );
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}
