//! Hostile input.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_problems_and_change_nothing() {
    let srv = TestServer::start("").await;
    let (id, tok) = srv.user("target@example.com", "free").await;
    let before = srv.manager.get_user(id.parse().unwrap()).await.unwrap();
    let url = format!("{}/users/{id}", srv.base);
    let send = |body: Vec<u8>, ctype: &'static str| {
        let (srv, url, tok) = (&srv, url.clone(), tok.clone());
        async move {
            let r = srv
                .http
                .put(url)
                .bearer_auth(tok)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            (status, ct, body)
        }
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"{\"display_name\": ".to_vec(),
            "application/json",
            400,
            "malformed-body",
        ),
        (
            b"[1,2,3]".to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": 42}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": "x", "is_admin": true}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            // A huge string just under the body limit: read whole, refused by the rule.
            format!(r#"{{"display_name": "{}"}}"#, "x".repeat(60_000)).into_bytes(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            format!(r#"{{"display_name": "{}"}}"#, "y".repeat(1000)).into_bytes(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": "a\u0000b"}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            vec![b'{', 0xff, 0xfe, b'}'],
            "application/json",
            400,
            "malformed-body",
        ),
        (
            br#"{"display_name": "ok"}"#.to_vec(),
            "text/plain",
            415,
            "unsupported-media-type",
        ),
    ];
    for (body, ctype, status, kind) in cases {
        let (s, ct, p) = send(body, ctype).await;
        assert_eq!(s, status, "{kind}: {p}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        is_problem(&p, status, kind);
    }
    // A 10 MB body is refused from its Content-Length, before it is read: sent raw, so
    // the client reads the answer instead of tripping over the closed connection.
    let host = srv.host();
    let mut big = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "PUT /api/v1/users/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"display_name\": \"",
        10 * 1024 * 1024
    );
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        big.write_all(head.as_bytes()).await.unwrap();
        big.write_all(&[b'a'; 4096]).await.unwrap();
        // Read until the problem body has arrived; the connection may stay open, waiting
        // for a body that will never come, so do not wait for its end.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let reading = async {
            while !String::from_utf8_lossy(&answer).contains("payload-too-large") {
                match big.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), reading).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload-too-large"), "{answer}");
    }
    // Invalid UTF-8 in a header, and a non-Bearer scheme.
    let mut raw = tokio::net::TcpStream::connect(
        srv.base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
    )
    .await
    .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    raw.read_to_end(&mut out).await.unwrap();
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(
        srv.manager.get_user(id.parse().unwrap()).await.unwrap(),
        before,
        "nothing changed"
    );
    let (s, _) = srv.call(GET, "/users/me", Some(&tok), None).await;
    assert_eq!(s, 200, "the server is still up");
    let (s, p) = srv.call(GET, "/no/such/thing", None, None).await;
    assert_eq!(s, 404);
    is_problem(&p, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_change_is_counted_whole_or_refused() {
    let srv = TestServer::start("").await;
    let (s, vip) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(serde_json::json!({"email": "big@example.com", "password": PW, "tier": "vip"})),
        )
        .await;
    assert_eq!(s, 201, "{vip}");
    let path = format!("/users/{}/usage", vip["id"].as_str().unwrap());
    let count = |delta: i64| {
        let (srv, path) = (&srv, path.clone());
        async move {
            srv.call(
                POST,
                &path,
                Some(ADMIN_KEY),
                Some(serde_json::json!({"kind": "storage_bytes", "delta": delta})),
            )
            .await
        }
    };
    // VIP storage is unlimited, but the counter is the API's int64.
    let (s, body) = count(i64::MAX).await;
    assert_eq!(
        (s, &body["used"]),
        (200, &serde_json::json!(i64::MAX)),
        "{body}"
    );
    for _ in 0..2 {
        let (s, body) = count(i64::MAX).await;
        is_problem(&body, 409, "conflict");
        assert_eq!(s, 409);
        assert!(
            body["detail"].as_str().unwrap().contains("would pass"),
            "{body}"
        );
    }
    let (s, body) = count(i64::MIN).await;
    is_problem(&body, 409, "conflict");
    assert_eq!(s, 409);
    let id = vip["id"].as_str().unwrap().parse().unwrap();
    let p = srv.manager.get_user(id).await.unwrap();
    assert_eq!(
        p.usage.storage_bytes,
        i64::MAX as u64,
        "refusals counted nothing"
    );
    let (s, body) = count(-(i64::MAX)).await;
    assert_eq!((s, &body["used"]), (200, &serde_json::json!(0)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_emails_are_the_same_account_or_refused() {
    let srv = TestServer::start("").await;
    let sign_up = |email: String| {
        let srv = &srv;
        async move {
            srv.call(
                POST,
                "/users",
                None,
                Some(serde_json::json!({"email": email, "password": PW})),
            )
            .await
        }
    };
    let (s, b) = sign_up("admin.team@example.com".into()).await;
    assert_eq!(s, 201, "{b}");
    // Characters that read alike are the same address.
    for alike in [
        "\u{FF21}dmin.team@example.com", // fullwidth A
        "admin.team@\u{FF45}xample.com", // fullwidth e in the domain
        "ADMIN.TEAM@EXAMPLE.COM",
    ] {
        let (s, b) = sign_up(alike.into()).await;
        assert_eq!(s, 409, "{alike}: {b}");
        is_problem(&b, 409, "email-taken");
    }
    // Characters that show nothing, or turn the text around, are refused by name.
    for hidden in [
        "admin\u{200B}.team@example.com", // zero-width space
        "admin\u{200D}.team@example.com", // zero-width joiner
        "ad\u{AD}min.team@example.com",   // soft hyphen
        "\u{202E}admin.team@example.com", // right-to-left override
    ] {
        let (s, b) = sign_up(hidden.into()).await;
        is_problem(&b, 400, "invalid-input");
        assert_eq!((s, b["field"].as_str()), (400, Some("email")), "{hidden:?}");
        assert!(b["detail"].as_str().unwrap().contains("U+"), "{b}");
    }
    // And the one account signs in by any spelling of its address.
    let (s, b) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(serde_json::json!({"email": "\u{FF21}DMIN.team@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}
