//! Webhooks through the real server: a loopback receiver that checks every signature with its
//! own HMAC code, fails on demand (downtime), and records what it got.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::Value;
use sha2::Sha256;
use tether_e2e::{Harness, HarnessOptions, READ_API_KEY, e2e_test};

const SECRET: &str = "whsec_0123456789abcdef0123456789";
const AUDIT_SECRET: &str = "another-secret-for-the-audit-log";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    endpoint: String,
    event: String,
    delivery: String,
    body: Value,
    signature_ok: bool,
    at: Instant,
}

#[derive(Default)]
struct ReceiverState {
    /// Answer this status to the next `failures` requests (then 200).
    failures: usize,
    failure_status: u16,
    received: Vec<Received>,
}

/// A webhook receiver on loopback with two paths, `/app` and `/audit`.
struct Receiver {
    base: String,
    state: Arc<Mutex<ReceiverState>>,
    handle: actix_web::dev::ServerHandle,
}

/// Checks `Tether-Signature: t=..,v1=..` as a receiver following docs/webhooks.md would:
/// HMAC-SHA256 of "{t}.{raw body}" with the shared secret, hex, and a timestamp within 5 min.
fn signature_ok(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let now = chrono::Utc::now().timestamp();
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    v1.contains(&expected)
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<String>,
    state: web::Data<Arc<Mutex<ReceiverState>>>,
) -> HttpResponse {
    let endpoint = path.into_inner();
    let secret = if endpoint == "audit" { AUDIT_SECRET } else { SECRET };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let received = Received {
        endpoint,
        event: header("Tether-Event").unwrap_or_default(),
        delivery: header("Tether-Delivery").unwrap_or_default(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature_ok: signature_ok(secret, header("Tether-Signature").as_deref(), &body),
        at: Instant::now(),
    };
    let mut state = state.lock().unwrap();
    let ok = received.signature_ok;
    state.received.push(received);
    if !ok {
        return HttpResponse::Unauthorized().body("bad signature");
    }
    if state.failures > 0 {
        state.failures -= 1;
        let status = actix_web::http::StatusCode::from_u16(state.failure_status).unwrap();
        return HttpResponse::build(status).body("receiver is down");
    }
    HttpResponse::Ok().body("ok")
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState { failure_status: 503, ..ReceiverState::default() }));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).route("/{endpoint}", web::post().to(receive)))
                .listen(listener)
                .unwrap()
                .workers(1)
                .disable_signals()
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base: format!("http://{addr}"), state, handle }
    }

    fn fail_next(&self, n: usize, status: u16) {
        let mut s = self.state.lock().unwrap();
        s.failures = n;
        s.failure_status = status;
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits (up to 20 s) until `done` holds for what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; received: {got:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Config: `/app` gets the default events, `/audit` only `disconnected`; fast retries.
fn options(receiver: &Receiver, delivery: &str) -> HarnessOptions {
    HarnessOptions {
        extra_config: format!(
            r#"
[[webhooks]]
name = "app"
url = "{base}/app?token=not-logged"
secret = "{SECRET}"

[[webhooks]]
name = "audit"
url = "{base}/audit"
secret = "{AUDIT_SECRET}"
events = ["disconnected"]

[webhook_delivery]
initial_backoff_ms = 200
max_backoff_secs = 1
poll_interval_ms = 100
{delivery}
"#,
            base = receiver.base
        ),
        ..HarnessOptions::default()
    }
}

async fn deliveries(h: &Harness, query: &str) -> Vec<Value> {
    let (status, body) = h.api_call(Method::GET, &format!("/v1/webhooks/deliveries?{query}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until every delivery matching `query` has `status`.
async fn wait_for_status(h: &Harness, query: &str, status: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = deliveries(h, query).await;
        if list.len() == count && list.iter().all(|d| d["status"] == status) {
            return list;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {count} {status} deliveries: {list:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

e2e_test!(events_are_delivered_signed_to_subscribed_endpoints, |db| {
    let receiver = Receiver::start().await;
    let h = Harness::start(&db, options(&receiver, "")).await;
    let id = h.connect("user-1").await;

    let got = receiver.wait_for("the connected event", |r| !r.is_empty()).await;
    let first = &got[0];
    assert!(first.signature_ok, "{first:?}");
    assert_eq!((first.endpoint.as_str(), first.event.as_str()), ("app", "connected"));
    assert_eq!(first.body["type"], "connected");
    assert_eq!(first.body["connection"]["id"], id.as_str());
    assert_eq!(first.body["connection"]["owner"], "user-1");
    assert!(first.body["connection"].get("access_token").is_none(), "no secrets in payloads");
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    let event = &events["events"][0];
    assert_eq!(first.body["id"], event["id"], "the payload id is the event id");

    // The delivery's status, by event and on the event itself.
    let listed = wait_for_status(&h, &format!("event_id={}", event["id"].as_str().unwrap()), "delivered", 1).await;
    assert_eq!(listed[0]["endpoint"], "app");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(listed[0]["last_status_code"], 200);
    assert_eq!(listed[0]["id"], first.delivery.as_str());
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(events["events"][0]["deliveries"][0]["status"], "delivered", "{events}");

    // Disconnect: `revoked` and `disconnected` to /app, only `disconnected` to /audit.
    let (status, _) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200);
    let got = receiver.wait_for("three more deliveries", |r| r.len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if receiver.received().len() > got.len() { receiver.received() } else { got };
    let mut seen: Vec<_> = got.iter().map(|r| format!("{}:{}", r.endpoint, r.event)).collect();
    seen.sort();
    assert_eq!(seen, ["app:connected", "app:disconnected", "app:revoked", "audit:disconnected"]);
    assert!(got.iter().all(|r| r.signature_ok), "each endpoint's own secret signs: {got:#?}");

    // Endpoints are listed without secrets or URL query strings.
    let (status, body) = h.api_call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    assert!(!text.contains(SECRET) && !text.contains("not-logged"), "{text}");
    assert_eq!(body["endpoints"][1]["events"], serde_json::json!(["disconnected"]));
    assert_eq!(body["deliveries"]["delivered"], 4, "{body}");
    let metrics = h.api.get(h.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tether_webhook_deliveries{status=\"delivered\"} 4"), "{metrics}");
    assert!(metrics.contains("tether_webhook_attempts_total"), "{metrics}");
    h.stop().await;
    receiver.stop().await;
});

e2e_test!(downtime_is_retried_with_backoff_until_delivered, |db| {
    let receiver = Receiver::start().await;
    receiver.fail_next(3, 503);
    let h = Harness::start(&db, options(&receiver, "")).await;
    let id = h.connect("user-1").await;
    let got = receiver.wait_for("four attempts", |r| r.len() >= 4).await;
    assert!(got.iter().all(|r| r.event == "connected" && r.body["connection"]["id"] == id.as_str()));
    assert!(got.iter().all(|r| r.delivery == got[0].delivery), "the same delivery is retried");
    // 200 ms doubling, jittered by at most 20 %: gaps of at least 160, 320 and 640 ms.
    for (i, pair) in got.windows(2).take(3).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let least = Duration::from_millis(160 << i);
        assert!(gap >= least, "attempt {} came {gap:?} after the previous one (backoff at least {least:?})", i + 2);
    }
    let listed = wait_for_status(&h, &format!("connection_id={id}"), "delivered", 1).await;
    assert_eq!(listed[0]["attempts"], 4);
    assert_eq!(listed[0]["last_status_code"], 200);
    h.stop().await;
    receiver.stop().await;
});

e2e_test!(deliveries_give_up_after_the_last_attempt_and_can_be_sent_again, |db| {
    let receiver = Receiver::start().await;
    receiver.fail_next(usize::MAX, 500);
    let h = Harness::start(&db, options(&receiver, "max_attempts = 2")).await;
    let id = h.connect("user-1").await;
    let listed = wait_for_status(&h, &format!("connection_id={id}"), "failed", 1).await;
    let delivery = &listed[0];
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status_code"], 500);
    assert!(delivery["last_error"].as_str().unwrap().contains("500"), "{delivery}");
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert_eq!(receiver.received().len(), 2);
    let failed = deliveries(&h, "status=failed").await;
    assert_eq!(failed.len(), 1);

    // A read-only key may look but not resend.
    let url = h.url(&format!("/v1/webhooks/deliveries/{}/retry", delivery["id"].as_str().unwrap()));
    let status = h.api.post(&url).bearer_auth(READ_API_KEY).send().await.unwrap().status();
    assert_eq!(status, 403);
    // The receiver is fixed; a manual retry delivers it.
    receiver.fail_next(0, 500);
    let (status, body) = h
        .api_call(Method::POST, &format!("/v1/webhooks/deliveries/{}/retry", delivery["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    let listed = wait_for_status(&h, &format!("connection_id={id}"), "delivered", 1).await;
    assert_eq!(listed[0]["attempts"], 1);
    let (status, body) =
        h.api_call(Method::GET, &format!("/v1/webhooks/deliveries/{}", listed[0]["id"].as_str().unwrap()), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("delivered")));

    // Bad input gets clear errors.
    let (status, body) = h.api_call(Method::GET, "/v1/webhooks/deliveries?status=lost", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = h.api_call(Method::GET, "/v1/webhooks/deliveries/not-a-uuid", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    // A malformed id in a filter is a bad filter (schemathesis found it answering 404).
    let (status, body) = h.api_call(Method::GET, "/v1/webhooks/deliveries?connection_id=%C3%A5x", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    // A well-formed id of no connection is an empty list.
    let unknown = "/v1/webhooks/deliveries?connection_id=0193a8f2-0000-7000-8000-000000000000";
    let (status, body) = h.api_call(Method::GET, unknown, None).await;
    assert_eq!((status, body["deliveries"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, body) = h.api_call(Method::POST, &format!("/v1/webhooks/deliveries/{id}/retry"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    h.stop().await;
    receiver.stop().await;
});

e2e_test!(pending_deliveries_survive_a_restart, |db| {
    let receiver = Receiver::start().await;
    receiver.fail_next(usize::MAX, 503);
    // First server: the receiver is down; attempts fail and stay pending.
    let h = Harness::start(&db, options(&receiver, "")).await;
    let id = h.connect("user-1").await;
    receiver.wait_for("a failed attempt", |r| !r.is_empty()).await;
    h.stop().await;
    let pending = receiver.received().len();
    // Second server on the same database, receiver back up: the outbox is still there.
    receiver.fail_next(0, 503);
    let h = Harness::start(&db, options(&receiver, "")).await;
    let listed = wait_for_status(&h, &format!("connection_id={id}"), "delivered", 1).await;
    let got = receiver.received();
    assert!(got.len() > pending, "the second server attempted it");
    assert_eq!(listed[0]["attempts"].as_u64(), Some(got.len() as u64), "every attempt is counted: {listed:?}");
    assert_eq!(got.last().map(|r| r.event.as_str()), Some("connected"));
    assert_eq!(got.iter().filter(|r| r.delivery == got[0].delivery).count(), got.len(), "one delivery, retried");
    h.stop().await;
    receiver.stop().await;
});

e2e_test!(two_servers_on_one_database_deliver_each_event_once, |db| {
    let receiver = Receiver::start().await;
    let a = Harness::start(&db, options(&receiver, "")).await;
    let b = Harness::start(&db, options(&receiver, "")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        // Alternate servers, so both record events and both dispatchers have work.
        let h = if i % 2 == 0 { &a } else { &b };
        ids.push(h.connect(&format!("user-{i}")).await);
    }
    let got = receiver.wait_for("six connected events", |r| r.len() >= 6).await;
    // Give a duplicate the time to show up if there were one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if receiver.received().len() > got.len() { receiver.received() } else { got };
    assert_eq!(got.len(), 6, "{got:#?}");
    let mut connections: Vec<_> = got.iter().map(|r| r.body["connection"]["id"].as_str().unwrap().to_owned()).collect();
    connections.sort();
    ids.sort();
    assert_eq!(connections, ids);
    wait_for_status(&a, "", "delivered", 6).await;
    a.stop().await;
    b.stop().await;
    receiver.stop().await;
});
