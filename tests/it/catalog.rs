//! The track catalog: uploads as a JSON array or NDJSON, upsert by id, reads and
//! removals, every broken rule refusing the whole upload, and the catalog surviving a
//! restart.

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::catalog::Track;

use crate::support::{ADMIN_KEY, SYS, TestServer, config};

const DIM4: &str = "[personalization]\nembedding_dim = 4\n";

fn track(i: usize) -> Value {
    json!({
        "id": format!("t:{i}"),
        "title": format!("Track {i}"),
        "artists": ["Someone"],
        "genres": ["Jazz", "Soul"],
        "duration_ms": 180_000 + i,
        "audio": {"energy": 0.5, "tempo": 120.0},
        "embedding": [0.1, 0.2, 0.3, 0.4],
    })
}

async fn upload(srv: &TestServer, media: &str, body: String) -> (u16, Value) {
    srv.post_raw("/admin/catalog/tracks", ADMIN_KEY, media, body)
        .await
}

/// `METHOD path` as the operator.
async fn admin(srv: &TestServer, method: Method, path: &str) -> (u16, Value) {
    srv.call(method, path, Some(ADMIN_KEY), None).await
}

async fn summary(srv: &TestServer) -> Value {
    let (s, body) = admin(srv, Method::GET, "/admin/catalog").await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test]
async fn tracks_are_uploaded_replaced_read_and_removed() {
    let srv = TestServer::start(DIM4).await;
    let array = Value::from((0..3).map(track).collect::<Vec<_>>()).to_string();
    let (s, body) = upload(&srv, "application/json", array).await;
    assert_eq!((s, &body), (200, &json!({"created": 3, "replaced": 0})));

    // NDJSON, with a blank line: one known id (replaced), one new.
    let mut changed = track(2);
    changed["title"] = json!("  Track two, remastered ");
    let lines = format!("{changed}\n\n{}\n", track(3));
    let (s, body) = upload(&srv, "application/x-ndjson", lines).await;
    assert_eq!((s, &body), (200, &json!({"created": 1, "replaced": 1})));

    let (s, got) = admin(&srv, Method::GET, "/admin/catalog/tracks/t:2").await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["title"], "Track two, remastered", "stored trimmed");
    assert_eq!(got["genres"], json!(["jazz", "soul"]), "lower-cased");
    assert_eq!(got["embedding"], json!([0.1, 0.2, 0.3, 0.4]), "as uploaded");
    let s = summary(&srv).await;
    assert_eq!(
        (s["tracks"].as_u64(), s["embedding_dim"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(s["names"], 3, "one artist and two genres, kept once each");

    let (s, _) = admin(&srv, Method::DELETE, "/admin/catalog/tracks/t:0").await;
    assert_eq!(s, 204);
    let (s, body) = admin(&srv, Method::DELETE, "/admin/catalog/tracks/t:0").await;
    assert_eq!(s, 404, "{body}");
    let (s, _) = admin(&srv, Method::GET, "/admin/catalog/tracks/t:0").await;
    assert_eq!(s, 404);
    assert_eq!(summary(&srv).await["tracks"], 3);

    // Operators only.
    let (_, token) = srv.user("listener@example.com", "premium").await;
    let (s, _) = srv
        .call(Method::GET, "/admin/catalog/tracks/t:1", Some(&token), None)
        .await;
    assert_eq!(s, 403);
    let body = Value::from(vec![track(9)]).to_string();
    let (s, _) = srv
        .post_raw("/admin/catalog/tracks", &token, "application/json", body)
        .await;
    assert_eq!(s, 403);
    assert_eq!(summary(&srv).await["tracks"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn a_broken_rule_refuses_the_whole_upload_and_says_where() {
    let srv = TestServer::start(DIM4).await;
    let (s, _) = upload(
        &srv,
        "application/json",
        Value::from(vec![track(0)]).to_string(),
    )
    .await;
    assert_eq!(s, 200);
    let broken: Vec<(Value, &str)> = vec![
        (json!({"id": "t:x"}), "[1]"),
        (
            json!({"id": "t:x", "title": "T", "embedding": [1.0, 2.0]}),
            "[1].embedding",
        ),
        (
            json!({"id": "t:x", "title": "T", "audio": {"valence": 1.5}}),
            "[1].audio.valence",
        ),
        (json!({"id": "bad id!", "title": "T"}), "[1].id"),
        (
            json!({"id": "t:x", "title": "T", "colour": "red"}),
            "[1].colour",
        ),
        (json!({"id": "t:0", "title": "twice"}), "[1].id"),
    ];
    for (bad, field) in broken {
        let mut replaced = track(0);
        replaced["title"] = json!("must not be stored");
        let body = Value::from(vec![replaced, bad.clone()]).to_string();
        let (s, problem) = upload(&srv, "application/json", body).await;
        assert_eq!(s, 400, "{bad}: {problem}");
        assert_eq!(problem["field"], field, "{bad}: {problem}");
    }
    // A NaN cannot be written in JSON; an NDJSON line that is not a track is named.
    let (s, problem) = upload(
        &srv,
        "application/x-ndjson",
        format!("{}\n{{\"id\": \"t:y\", \"title\": NaN}}\n", track(5)),
    )
    .await;
    assert_eq!(s, 400, "{problem}");
    assert_eq!(problem["field"], "line 2: title", "{problem}");
    // What follows a value would be dropped unread: refused.
    let (s, problem) = upload(
        &srv,
        "application/x-ndjson",
        format!("{}{}\n", track(6), track(7)),
    )
    .await;
    assert_eq!(
        (s, problem["field"].as_str()),
        (400, Some("line 1")),
        "{problem}"
    );
    let (s, problem) = upload(&srv, "application/json", format!("[{}] []", track(6))).await;
    assert_eq!(s, 400, "{problem}");
    let two = r#"{"email": "one@example.com", "password": "correct horse battery staple"} {"email": "two@example.com"}"#;
    let (s, _) = srv
        .post_raw("/users", ADMIN_KEY, "application/json", two.into())
        .await;
    assert_eq!(s, 400, "any JSON body with something after its value");
    // 10,001 tracks, and none.
    let many = Value::from(
        (0..10_001)
            .map(|i| json!({"id": format!("m:{i}"), "title": "T"}))
            .collect::<Vec<_>>(),
    );
    let (s, problem) = upload(&srv, "application/json", many.to_string()).await;
    assert_eq!(s, 400, "{problem}");
    assert_eq!(problem["field"], "tracks");
    let (s, _) = upload(&srv, "application/json", "[]".into()).await;
    assert_eq!(s, 400);
    let (s, _) = upload(&srv, "text/csv", "id,title\n".into()).await;
    assert_eq!(s, 415);
    let (s, _) = admin(&srv, Method::GET, "/admin/catalog/tracks/bad%20id").await;
    assert_eq!(s, 400);

    // Nothing of any refused upload is stored.
    assert_eq!(summary(&srv).await["tracks"], 1);
    let (_, got) = admin(&srv, Method::GET, "/admin/catalog/tracks/t:0").await;
    assert_eq!(got["title"], "Track 0");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tracks: Vec<Track> = (0..50)
        .map(|i| serde_json::from_value(track(i)).unwrap())
        .collect();
    let m = roster::UserManager::open(config(dir.path(), &[DIM4])).unwrap();
    let put = m.personalization().put_tracks(&SYS, tracks).await.unwrap();
    assert_eq!((put.created, put.replaced), (50, 0));
    assert!(m.personalization().delete_track(&SYS, "t:7").await.unwrap());
    m.shutdown().await.unwrap();
    drop(m);

    let m = roster::UserManager::open(config(dir.path(), &[DIM4])).unwrap();
    let p = m.personalization();
    assert_eq!(p.catalog(&SYS).unwrap().tracks, 49);
    assert!(p.track(&SYS, "t:7").await.unwrap().is_none());
    let t = p.track(&SYS, "t:8").await.unwrap().unwrap();
    assert_eq!(
        (t.title.as_str(), t.duration_ms),
        ("Track 8", Some(180_008))
    );
    // A server configured for another dimension still serves what it stored, and refuses
    // uploads of the old one.
    m.shutdown().await.unwrap();
    drop(m);
    let m = roster::UserManager::open(config(
        dir.path(),
        &["[personalization]\nembedding_dim = 8\n"],
    ))
    .unwrap();
    assert_eq!(m.personalization().catalog(&SYS).unwrap().tracks, 49);
    let again = vec![serde_json::from_value(track(1)).unwrap()];
    assert!(m.personalization().put_tracks(&SYS, again).await.is_err());
    m.shutdown().await.unwrap();
}
