//! The admin pages in a real headless browser (Debian's chromium + chromium-driver, driven over
//! WebDriver with fantoccini), against the real server with the demo provider: sign in (a wrong
//! password first), connect an account through the demo consent page, see it listed, refresh
//! it, reveal a token, disconnect it, sign out. Screenshots of every page go to
//! `artifacts/screenshots/`; with `TETHER_UPDATE_SCREENSHOTS=1` (or when it is missing) the
//! connections page is also copied to `docs/images/admin-connections.png` for the README.
//!
//! Without `/usr/bin/chromedriver` (or `TETHER_CHROMEDRIVER`) the test is skipped with a note,
//! so `cargo test --workspace` works on a fresh machine; CI sets
//! `TETHER_REQUIRE_BROWSER_TESTS=1` (in `.ci/run`), and then a missing browser fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tether_e2e::{API_KEY, Backend};
use tether_server::ServeOptions;

use super::admin_http::{PASSWORD, password_hash};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Starts chromedriver on a free port, or `None` when it is missing and skipping was asked for.
async fn start_driver() -> Option<Driver> {
    let path =
        std::env::var_os("TETHER_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    if !path.exists() {
        if std::env::var("TETHER_REQUIRE_BROWSER_TESTS").as_deref() != Ok("1") {
            eprintln!(
                "{} is missing: skipping the browser test (install chromium and chromium-driver to run it; CI requires it)",
                path.display()
            );
            return None;
        }
        panic!(
            "{} is missing and TETHER_REQUIRE_BROWSER_TESTS=1: install Chromium and its driver \
             (`apt-get install chromium chromium-driver`; .ci/run does)",
            path.display()
        );
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let profile = std::env::temp_dir().join(format!("tether-chromium-{}", tether_core::random_token(9).unwrap()));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), profile };
    let status = format!("{}/status", driver.url);
    for _ in 0..100 {
        if reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn browser(driver: &Driver) -> Client {
    let binary = std::env::var("TETHER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US",
                format!("--user-data-dir={}", driver.profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Waits for an element (20 s: CI runs many suites at once on two cores).
async fn wait(c: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        if std::time::Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let source = c.source().await.unwrap_or_default();
            panic!("no `{css}` on {url}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is on a URL containing `part` (a form submit navigated).
async fn wait_url(c: &Client, part: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        if url.contains(part) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never reached a URL with `{part}`: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    wait(c, css).await.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn text(c: &Client, css: &str) -> String {
    wait(c, css).await.text().await.unwrap()
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = workspace_root().join("artifacts").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    path
}

/// Undoes askama's HTML escaping of attribute values.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        let entity = &rest[i + 1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            e => e.strip_prefix('#').and_then(|n| n.parse::<u32>().ok()).and_then(char::from_u32),
        };
        match decoded {
            Some(ch) => {
                out.push(ch);
                rest = &rest[(end + 1).min(rest.len())..];
            }
            None => {
                out.push('&');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Connects `login` at the demo provider for `owner` the way an application's user would:
/// connect link, consent page (Allow), callback. Returns the connection id.
async fn demo_connect(base: &str, owner: &str, login: &str) -> String {
    let api = reqwest::Client::new();
    let session: serde_json::Value = api
        .post(format!("{base}/v1/connect-sessions"))
        .bearer_auth(API_KEY)
        .json(&json!({"owner": owner, "provider": "demo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = user.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    let authorize = tether_e2e::location(&resp);
    let consent = user.get(&authorize).send().await.unwrap().text().await.unwrap();
    let mut form: Vec<(String, String)> = consent
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|chunk| {
            let (name, rest) = chunk.split_once('"')?;
            let value = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((unescape(name), unescape(value)))
        })
        .collect();
    form.push(("login".into(), login.into()));
    form.push(("decision".into(), "allow".into()));
    let resp = user.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the consent page redirects back");
    let resp = user.get(tether_e2e::location(&resp)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let list: serde_json::Value = api
        .get(format!("{base}/v1/connections?owner={owner}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["connections"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_in_a_real_browser() {
    let Some(driver) = start_driver().await else { return };
    let db = Backend::Sqlite.fresh_database().await.unwrap();
    let config = tether_server::Config::from_toml(&format!(
        "bind = \"127.0.0.1:0\"\ndatabase_url = \"{db}\"\napi_keys = [\"{API_KEY}\"]\nencryption_keys = [\"{key}\"]\n\
         [refresher]\nenabled = false\n[admin]\npassword_hash = \"{hash}\"\n",
        key = tether_core::EncryptionKey::generate().unwrap(),
        hash = password_hash(),
    ))
    .unwrap();
    let server = tether_server::start(config, ServeOptions { demo: true, workers: Some(2) }).await.unwrap();
    assert!(server.demo_admin_password.is_none(), "the configured password is used");
    let base = server.public_url.as_str().trim_end_matches('/').to_owned();
    let c = browser(&driver).await;

    // Signing in: the admin pages send an anonymous browser to the login page.
    c.goto(&format!("{base}/admin")).await.unwrap();
    wait(&c, "#password").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/admin/login"));
    screenshot(&c, "01-login").await;
    wait(&c, "#password").await.send_keys("not the password").await.unwrap();
    click(&c, "#sign-in").await;
    assert_eq!(text(&c, "#login-error").await, "Wrong password.");
    screenshot(&c, "02-login-wrong-password").await;
    wait(&c, "#password").await.send_keys(PASSWORD).await.unwrap();
    click(&c, "#sign-in").await;
    wait(&c, "#no-connections").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/admin/connections");

    // Providers: the exact redirect URI, and Connect for an owner the admin types.
    click(&c, "a[href='/admin/providers']").await;
    assert_eq!(text(&c, "#redirect-demo").await, format!("{base}/callback/demo"));
    assert!(text(&c, "#provider-github").await.contains("not configured"));
    screenshot(&c, "03-providers").await;
    wait(&c, "#provider-demo input[name=owner]").await.send_keys("support-bot").await.unwrap();
    click(&c, "#provider-demo button[type=submit]").await;

    // The demo provider's consent page, then back to the new connection's page.
    wait(&c, "button.allow").await;
    assert!(c.current_url().await.unwrap().path().starts_with("/demo/"));
    screenshot(&c, "04-demo-consent").await;
    click(&c, "button.allow").await;
    let id = text(&c, "#connection-id").await;
    assert_eq!(text(&c, "#flash").await, "Account connected.");
    assert_eq!(wait(&c, "#status").await.attr("data-status").await.unwrap().as_deref(), Some("active"));

    // Two accounts connected by "the application", one of which lost its grant.
    demo_connect(&base, "user-42", "jane").await;
    let dead = demo_connect(&base, "user-7", "john").await;
    let dead_id = tether_core::ConnectionId::parse(&dead).unwrap();
    let store = server.engine.store();
    let why = "provider refused the refresh token (invalid_grant): the user revoked the app";
    store.set_status(dead_id, tether_core::ConnectionStatus::ReauthRequired, Some(why)).await.unwrap();
    let event = tether_core::NewEvent {
        connection_id: dead_id,
        kind: tether_core::EventKind::ReauthRequired,
        message: Some(why.into()),
    };
    store.record_event(event).await.unwrap();

    // Listed, with owner, account, provider, status, expiry, last refresh and last error.
    click(&c, "a[href='/admin/connections']").await;
    let row_text = wait(&c, &format!("tr[data-id='{id}']")).await.text().await.unwrap();
    for expected in ["support-bot", "demo-user", "Demo provider", "active", "in 59 min", "never"] {
        assert!(row_text.contains(expected), "`{expected}` in the row: {row_text}");
    }
    let dead_row = wait(&c, &format!("tr[data-id='{dead}']")).await;
    assert_eq!(dead_row.attr("data-status").await.unwrap().as_deref(), Some("reauth_required"));
    let dead_text = dead_row.text().await.unwrap();
    assert!(dead_text.contains("needs reconnect") && dead_text.contains("invalid_grant"), "{dead_text}");
    assert_eq!(c.find_all(Locator::Css("tr.connection")).await.unwrap().len(), 3);
    c.set_window_size(1440, 680).await.unwrap();
    let shot = screenshot(&c, "05-connections").await;
    let readme_image = workspace_root().join("docs").join("images").join("admin-connections.png");
    if std::env::var("TETHER_UPDATE_SCREENSHOTS").as_deref() == Ok("1") || !readme_image.exists() {
        std::fs::create_dir_all(readme_image.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &readme_image).unwrap();
    }
    c.set_window_size(390, 844).await.unwrap();
    screenshot(&c, "06-connections-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Filters: status, then owner.
    wait(&c, "#filters select[name=status]").await.select_by_value("reauth_required").await.unwrap();
    click(&c, "#filters button[type=submit]").await;
    // The row is on the unfiltered page too: wait for the filtered page before counting.
    wait_url(&c, "status=reauth_required").await;
    wait(&c, &format!("tr[data-id='{dead}']")).await;
    assert_eq!(c.find_all(Locator::Css("tr.connection")).await.unwrap().len(), 1);
    // The connection that needs its user: a reconnect link to send them.
    click(&c, &format!("tr[data-id='{dead}'] a.account")).await;
    assert!(c.find(Locator::Css("#refresh")).await.is_err(), "no refresh for a dead grant");
    wait(&c, "#events li[data-kind='reauth_required']").await;
    screenshot(&c, "07-connection-needs-reconnect").await;
    click(&c, "#reconnect").await;
    let link = wait(&c, "#link").await.prop("value").await.unwrap().unwrap_or_default();
    assert!(link.starts_with(&format!("{base}/connect/")), "{link}");
    click(&c, "a[href='/admin/connections']").await;
    wait(&c, "#filters input[name=owner]").await.send_keys("someone-else").await.unwrap();
    click(&c, "#filters button[type=submit]").await;
    wait(&c, "#no-connections").await;
    click(&c, "a[href='/admin/connections']").await;

    // The connection's page: refresh now.
    click(&c, &format!("tr[data-id='{id}'] a.account")).await;
    click(&c, "#refresh").await;
    assert!(text(&c, "#flash").await.starts_with("Refreshed."));
    wait(&c, "#events li[data-kind='refreshed']").await;
    wait(&c, "#events li[data-kind='connected']").await;
    screenshot(&c, "08-connection-refreshed").await;

    // A fresh token, only with the box ticked; never in the URL.
    click(&c, "#token-confirm").await;
    click(&c, "#reveal").await;
    let token = wait(&c, "#token").await.prop("value").await.unwrap().unwrap_or_default();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), format!("/admin/connections/{id}/token"));
    assert!(!url.as_str().contains(&token) && url.query().is_none());
    let api: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/connections/{id}/token"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["access_token"].as_str(), Some(token.as_str()), "the page showed the current token");
    screenshot(&c, "09-token").await;

    // CSRF: the session cookie alone cannot make a change.
    let session = c.get_named_cookie("tether_admin").await.unwrap();
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/admin/connections/{id}/disconnect"))
        .header("cookie", format!("tether_admin={}", session.value()))
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.text().await.unwrap().contains("csrf_failed"));

    // Disconnect, with the confirmation.
    click(&c, &format!("a[href='/admin/connections/{id}']")).await;
    click(&c, "#disconnect-confirm").await;
    click(&c, "#disconnect").await;
    assert!(text(&c, "#flash").await.starts_with("Disconnected"));
    assert_eq!(wait(&c, "#status").await.attr("data-status").await.unwrap().as_deref(), Some("disconnected"));
    wait(&c, "#events li[data-kind='disconnected']").await;
    screenshot(&c, "10-connection-disconnected").await;

    // An error is a page too.
    c.goto(&format!("{base}/admin/connections/not-a-connection")).await.unwrap();
    assert_eq!(text(&c, "#error-code").await, "not_found");
    screenshot(&c, "11-not-found").await;

    // Sign out.
    c.goto(&format!("{base}/admin/connections")).await.unwrap();
    click(&c, "form[action='/admin/logout'] button").await;
    assert_eq!(text(&c, "#flash").await, "Signed out.");
    c.goto(&format!("{base}/admin/connections")).await.unwrap();
    wait(&c, "#password").await;

    c.close().await.unwrap();
    server.stop().await;
    drop(driver);
}
