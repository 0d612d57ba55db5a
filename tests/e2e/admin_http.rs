//! The admin pages over plain HTTP: disabled without configuration, sign-in required (redirect
//! to the login page), the session cookie's attributes, CSRF refusals, the confirmation boxes,
//! the trusted reverse-proxy header, the security headers, demo mode's generated password and
//! `tether admin hash-password`. The same pages in a real browser: admin_browser.rs.

use std::sync::OnceLock;

use reqwest::Method;
use reqwest::header::{HeaderMap, SET_COOKIE};
use tether_e2e::{Backend, Harness, HarnessOptions, tether_binary};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The argon2 hash of [`PASSWORD`], made once.
pub(crate) fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| tether_web::hash_admin_password(PASSWORD).unwrap())
}

fn admin_config() -> String {
    format!("[admin]\npassword_hash = \"{}\"\n", password_hash())
}

/// A browser-like client (cookie jar, no redirects) on the admin pages.
struct Admin {
    client: reqwest::Client,
    base: String,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// The value of the first hidden `csrf` input of a page.
fn csrf_of(body: &str) -> String {
    let start = body.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    body[start..].split('"').next().unwrap().to_owned()
}

impl Admin {
    fn new(base: &str) -> Self {
        let client =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, base: base.trim_end_matches('/').to_owned() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Page { status, headers, body: resp.text().await.unwrap() }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form)).await
    }

    async fn sign_in(&self, password: &str) -> Page {
        let login = self.get("/admin/login?next=%2Fadmin%2Fconnections").await;
        assert_eq!(login.status, 200, "{}", login.body);
        let csrf = csrf_of(&login.body);
        self.post("/admin/login", &[("csrf", &csrf), ("next", "/admin/connections"), ("password", password)]).await
    }
}

fn assert_security_headers(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "no inline scripts or styles: {csp}");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
}

async fn harness(extra_config: String) -> Harness {
    let db = Backend::Sqlite.fresh_database().await.unwrap();
    Harness::start(&db, HarnessOptions { extra_config, ..Default::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_configuration_the_pages_explain_how_to_enable_them() {
    let h = harness(String::new()).await;
    let admin = Admin::new(&h.url(""));
    for path in ["/admin", "/admin/connections", "/admin/login", "/admin/providers"] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("not enabled") && page.body.contains("tether admin hash-password"), "{path}");
        assert!(page.body.contains("trusted_header"));
        assert_security_headers(&page);
    }
    let page = admin.post("/admin/login", &[("password", "x"), ("csrf", "x")]).await;
    assert_eq!(page.status, 403);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_in_csrf_and_actions() {
    let h = harness(admin_config()).await;
    let admin = Admin::new(&h.url(""));

    // Every protected page sends an anonymous browser to sign in, remembering where it was.
    let page = admin.get("/admin/connections?owner=x").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/admin/login?next=%2Fadmin%2Fconnections%3Fowner%3Dx");
    assert_security_headers(&page);
    for path in ["/admin", "/admin/providers", "/admin/connections/0193a6b2-0000-7000-8000-000000000000"] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location().starts_with("/admin/login"), "{path}");
    }
    // POSTs too, and they do nothing.
    let page = admin.post("/admin/providers/mock/connect", &[("owner", "x")]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/admin/login");

    // The sign-in form has its own CSRF token (a cookie before there is a session).
    let login = admin.get("/admin/login").await;
    assert_eq!(login.status, 200);
    assert_security_headers(&login);
    let login_cookie = login.set_cookie("tether_admin_login").expect("a login cookie");
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    let page = admin.post("/admin/login", &[("password", PASSWORD), ("csrf", "forged")]).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("csrf_failed"));
    assert!(page.set_cookie("tether_admin").is_none());
    let fresh = Admin::new(&h.url(""));
    let csrf = csrf_of(&login.body);
    let page = fresh.post("/admin/login", &[("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(page.status, 403, "the token is bound to the browser's login cookie");

    // A wrong password is refused with the form again.
    let page = admin.sign_in("wrong password").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Wrong password"));
    assert!(page.set_cookie("tether_admin").is_none());

    // The right one: a session cookie, HttpOnly, SameSite=Strict, scoped to /admin; not
    // Secure on a plain-http public URL.
    let page = admin.sign_in(PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/admin/connections");
    let cookie = page.set_cookie("tether_admin").expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"));
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(!cookie.contains("admin\"") && !cookie.contains("csrf"), "the session is encrypted: {cookie}");

    let page = admin.get("/admin/connections").await;
    assert_eq!(page.status, 200);
    assert_security_headers(&page);
    assert!(page.body.contains("id=\"no-connections\""));
    assert!(page.body.contains("src=\"/admin/static/app.js\"") && !page.body.contains("<script>"));
    let css = admin.get("/admin/static/app.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));

    // A connection made by the application shows up, filterable.
    let id = h.connect("user-1").await;
    let page = admin.get("/admin/connections").await;
    assert!(page.body.contains(&format!("data-id=\"{id}\"")), "{}", page.body);
    assert!(
        page.body.contains("alice") && page.body.contains("user-1") && page.body.contains("data-status=\"active\"")
    );
    assert!(page.body.contains("in 59 min") || page.body.contains("in 1 h"), "relative expiry");
    let page = admin.get("/admin/connections?owner=nobody").await;
    assert!(!page.body.contains(&format!("data-id=\"{id}\"")));
    let page = admin.get("/admin/connections?status=disconnected&provider=mock").await;
    assert!(!page.body.contains(&format!("data-id=\"{id}\"")));
    let page = admin.get("/admin/connections?status=active&provider=mock&owner=user-1").await;
    assert!(page.body.contains(&format!("data-id=\"{id}\"")));
    let page = admin.get("/admin/connections?status=bogus").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("unknown status"));

    let path = format!("/admin/connections/{id}");
    let page = admin.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-kind=\"connected\""));
    let csrf = csrf_of(&page.body);

    // CSRF: no token, or a wrong one, is refused and changes nothing.
    for form in [vec![], vec![("csrf", "not-the-token")]] {
        let page = admin.post(&format!("{path}/refresh"), &form).await;
        assert_eq!(page.status, 403);
        assert!(page.body.contains("csrf_failed"));
        assert_security_headers(&page);
        let page = admin.post(&format!("{path}/disconnect"), &[form.clone(), vec![("confirm", "yes")]].concat()).await;
        assert_eq!(page.status, 403);
        let page = admin.post(&format!("{path}/token"), &[form.clone(), vec![("confirm", "yes")]].concat()).await;
        assert_eq!(page.status, 403);
        assert!(!page.body.contains("id=\"token\""));
    }
    assert_eq!(h.mock.refresh_count(), 0);

    // Refresh now: a flash message on the next page, and an event.
    let page = admin.post(&format!("{path}/refresh"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), path);
    assert_eq!(h.mock.refresh_count(), 1);
    let page = admin.get(&path).await;
    assert!(page.body.contains("class=\"flash ok\"") && page.body.contains("Refreshed."), "{}", page.body);
    assert!(page.body.contains("data-kind=\"refreshed\""));
    let page = admin.get(&path).await;
    assert!(!page.body.contains("Refreshed."), "a flash message is shown once");

    // The token is shown only with the confirmation box ticked, in a POST response body.
    let page = admin.post(&format!("{path}/token"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    assert!(!page.body.contains("id=\"token\""));
    let page = admin.post(&format!("{path}/token"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "no-store");
    let start = page.body.find("id=\"token\"").expect("the token field");
    let token = page.body[start..].split('>').nth(1).unwrap().split('<').next().unwrap().trim().to_owned();
    assert!(h.mock.is_access_token_valid(&token), "the shown token works: {token}");

    // Disconnect needs the confirmation too.
    let page = admin.post(&format!("{path}/disconnect"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active");
    let page = admin.post(&format!("{path}/disconnect"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(page.status, 303);
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "disconnected");
    let page = admin.get(&path).await;
    assert!(page.body.contains("Disconnected") && page.body.contains("data-status=\"disconnected\""));
    assert!(page.body.contains("data-kind=\"disconnected\""));

    // A reconnect link for the owner.
    let page = admin.post(&format!("{path}/reconnect"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&h.url("/connect/")));

    // The providers page: the exact redirect URI, and Connect starts a flow.
    let page = admin.get("/admin/providers").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&h.url("/callback/mock")));
    assert!(page.body.contains("id=\"provider-github\"") && page.body.contains("not configured"));
    assert!(page.header("content-security-policy").contains("form-action 'self' https:"));
    let page = admin.post("/admin/providers/mock/connect", &[("csrf", &csrf), ("owner", "bot")]).await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with(&h.url("/connect/")), "{}", page.location());
    let page = admin.post("/admin/providers/nope/connect", &[("csrf", &csrf), ("owner", "bot")]).await;
    assert_eq!(page.status, 303);
    let page = admin.get(page.location()).await;
    assert!(page.body.contains("class=\"flash bad\"") && page.body.contains("unknown_provider"), "{}", page.body);

    // Error pages are pages.
    for (path, status) in [("/admin/connections/not-an-id", 404), ("/admin/nothing-here", 404)] {
        let page = admin.get(path).await;
        assert_eq!(page.status, status, "{path}");
        assert!(page.body.contains("<h1") && page.body.contains("not_found"), "{path}");
        assert_security_headers(&page);
    }
    let page = admin.get("/admin/connections/0193a6b2-0000-7000-8000-000000000000").await;
    assert_eq!(page.status, 404);

    // Sign-out needs the token too; afterwards the session is gone.
    let page = admin.post("/admin/logout", &[]).await;
    assert_eq!(page.status, 403);
    let page = admin.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/admin/login");
    assert!(page.set_cookie("tether_admin").is_some_and(|c| c.contains("Max-Age=0")));
    let page = admin.get("/admin/connections").await;
    assert_eq!(page.status, 303);

    // A forged or tampered session cookie is no session.
    let page = admin
        .send(
            admin.client.get(h.url("/admin/connections")).header("cookie", "tether_admin=AAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .await;
    assert_eq!(page.status, 303);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_header_signs_in() {
    let h = harness("[admin]\ntrusted_header = \"X-Forwarded-User\"\n".into()).await;
    let admin = Admin::new(&h.url(""));
    let page = admin.get("/admin/connections").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("x-forwarded-user"), "{}", page.body);
    assert_security_headers(&page);

    let as_ops = |path: &str| admin.client.get(h.url(path)).header("X-Forwarded-User", "ops@example.com");
    let page = admin.send(as_ops("/admin/connections")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ops@example.com"));
    assert!(!page.body.contains("Sign out"), "the proxy signs people out, not Tether");
    assert!(page.set_cookie("tether_admin").is_some(), "a session carries the CSRF token");
    let csrf = csrf_of(&admin.send(as_ops("/admin/providers")).await.body);

    // State changes still need the CSRF token of the session.
    let post = |form: &[(&str, &str)]| {
        admin
            .client
            .post(h.url("/admin/providers/mock/connect"))
            .header("X-Forwarded-User", "ops@example.com")
            .form(&form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
    };
    let page = admin.send(post(&[("owner", "bot")])).await;
    assert_eq!(page.status, 403);
    let page = admin.send(post(&[("owner", "bot"), ("csrf", &csrf)])).await;
    assert_eq!(page.status, 303, "{}", page.body);

    // Another user through the proxy gets their own session (and token).
    let page = admin.send(admin.client.get(h.url("/admin/connections")).header("X-Forwarded-User", "eve")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("eve") && !page.body.contains(&csrf));
    // Without the header the cookie alone is not enough.
    let page = admin.get("/admin/connections").await;
    assert_eq!(page.status, 401);
    // No password sign-in in this configuration.
    assert!(admin.get("/admin/login").await.body.contains("x-forwarded-user"));
    let page = admin.post("/admin/login", &[("password", PASSWORD), ("csrf", "x")]).await;
    assert_eq!(page.status, 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_secure_on_an_https_public_url() {
    let h = harness(format!("public_url = \"https://tether.example.com\"\n{}", admin_config())).await;
    let admin = Admin::new(&format!("http://{}", h.server.local_addr));
    let login = admin.get("/admin/login").await;
    assert!(login.set_cookie("tether_admin_login").is_some_and(|c| c.contains("Secure")));
    // The reqwest cookie store keeps Secure cookies away from http://, so send it by hand.
    let login_cookie = login.set_cookie("tether_admin_login").unwrap();
    let value = login_cookie.split(';').next().unwrap().to_owned();
    let page = admin
        .send(
            admin
                .client
                .post(format!("http://{}/admin/login", h.server.local_addr))
                .header("cookie", value)
                .form(&[("csrf", csrf_of(&login.body).as_str()), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = page.set_cookie("tether_admin").unwrap();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    h.stop().await;
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-admin-{}", tether_core::random_token(9).unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn hash_password_reads_stdin_and_prints_a_usable_hash() {
    use std::io::Write;
    let run = |input: &str| {
        let mut child = std::process::Command::new(tether_binary())
            .args(["admin", "hash-password"])
            .current_dir(temp_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run("a long enough admin password\n");
    assert_eq!(code, Some(0), "{stderr}");
    let hash = stdout.trim();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!stdout.contains("a long enough") && !stderr.contains("a long enough"), "the password is not echoed");
    let settings = tether_web::AdminSettings::new(Some(hash), None, None, None).unwrap();
    assert!(settings.password_enabled());
    let (code, _, stderr) = run("short\n");
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: ") && stderr.contains("12 characters"), "{stderr}");
}

/// Runs `tether serve --demo` in `dir`; returns the child and its stdout lines up to listening.
async fn serve_demo(dir: &std::path::Path) -> (tokio::process::Child, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(tether_binary())
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"])
        .current_dir(dir)
        .env("TETHER_LOG", "warn")
        .env_remove("TETHER_API_KEYS")
        .env_remove("TETHER_ENCRYPTION_KEYS")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("Admin pages:");
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("tether exited: {seen:?}");
    })
    .await
    .expect("tether starts within a minute");
    (child, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_generates_and_keeps_an_admin_password() {
    let dir = temp_dir();
    // A secrets file from before the admin pages existed: the password is appended.
    let old = format!(
        "encryption_key = \"{}\"\napi_key = \"demo_0123456789abcdef0123456789\"\n",
        tether_core::EncryptionKey::generate().unwrap()
    );
    std::fs::write(dir.join("tether-demo-secrets.toml"), &old).unwrap();
    let (mut child, lines) = serve_demo(&dir).await;
    let base = lines
        .iter()
        .find_map(|l| l.strip_prefix("Tether is listening on "))
        .map(|rest| format!("http://{}", rest.split_whitespace().next().unwrap()))
        .unwrap();
    let password = lines
        .iter()
        .filter(|l| l.contains("Admin pages:"))
        .find_map(|l| l.rsplit_once("tether-demo-secrets.toml): "))
        .unwrap()
        .1
        .trim()
        .to_owned();
    let secrets = std::fs::read_to_string(dir.join("tether-demo-secrets.toml")).unwrap();
    assert!(secrets.starts_with(&old) && secrets.contains(&format!("admin_password = \"{password}\"")), "{secrets}");

    let admin = Admin::new(&base);
    let page = admin.sign_in("not the password").await;
    assert_eq!(page.status, 401);
    let page = admin.sign_in(&password).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = admin.get("/admin/providers").await;
    assert!(page.body.contains("id=\"provider-demo\"") && page.body.contains(&format!("{base}/callback/demo")));
    child.kill().await.unwrap();

    // A restart keeps the same password.
    let (mut child, lines) = serve_demo(&dir).await;
    assert!(lines.iter().any(|l| l.ends_with(&format!(": {password}"))), "{lines:?}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_page_shows_each_events_webhook_deliveries() {
    // "app" gets every default event but nothing listens on its port (connection refused, one
    // attempt, then failed); "audit" only wants disconnections, so `connected` has no delivery there.
    let webhooks = "[[webhooks]]\nname = \"app\"\nurl = \"http://127.0.0.1:9/hooks\"\nsecret = \"0123456789abcdef0123\"\n\n\
         [[webhooks]]\nname = \"audit\"\nurl = \"http://127.0.0.1:9/audit\"\nsecret = \"0123456789abcdef0123\"\n\
         events = [\"disconnected\"]\n\n[webhook_delivery]\nmax_attempts = 1\npoll_interval_ms = 100\n";
    let h = harness(format!("{}{webhooks}", admin_config())).await;
    let id = h.connect("user-1").await;
    let mut failed = false;
    for _ in 0..100 {
        let (_, body) = h.api_call(Method::GET, &format!("/v1/webhooks/deliveries?connection_id={id}"), None).await;
        if body["deliveries"][0]["status"] == "failed" {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failed, "the delivery to a closed port failed");
    let admin = Admin::new(&h.url(""));
    assert_eq!(admin.sign_in(PASSWORD).await.status, 303);
    let page = admin.get(&format!("/admin/connections/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-endpoint=\"app\" data-status=\"failed\""), "{}", page.body);
    assert!(page.body.contains("gave up after 1 attempt"), "{}", page.body);
    assert!(!page.body.contains("data-endpoint=\"audit\""), "audit does not get `connected`");
    assert!(!page.body.contains("0123456789abcdef0123"), "never the secret");
    h.stop().await;
}
