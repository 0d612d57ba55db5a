//! The `tether` command line: clear one-line errors, non-zero exits, useful output.

use std::process::Command;

use tether_e2e::tether_binary;

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(tether_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("TETHER_API_KEYS")
        .env_remove("TETHER_ENCRYPTION_KEYS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-cli-{}", tether_core::random_token(9).unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn serve_without_keys_refuses_to_start_with_one_clear_line() {
    let dir = temp_dir();
    let (code, _, stderr) = run(&dir, &["serve", "--bind", "127.0.0.1:0"], &[]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("api_keys"), "{stderr}");

    let key = "0123456789abcdef0123456789";
    let (code, _, stderr) =
        run(&dir, &["serve", "--bind", "127.0.0.1:0"], &[("TETHER_API_KEYS", &format!("[\"{key}\"]"))]);
    assert_ne!(code, 0);
    assert!(stderr.contains("encryption_keys") && stderr.contains("tether keys generate"), "{stderr}");

    let (code, _, stderr) = run(
        &dir,
        &["serve", "--bind", "127.0.0.1:0"],
        &[("TETHER_API_KEYS", &format!("[\"{key}\"]")), ("TETHER_ENCRYPTION_KEYS", "[\"k1:tooshort\"]")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("encryption key `k1`"), "{stderr}");
    assert!(!dir.join("tether.db").exists(), "nothing is created when the configuration is wrong");
}

#[test]
fn keys_generate_prints_a_usable_key() {
    let dir = temp_dir();
    let (code, stdout, _) = run(&dir, &["keys", "generate"], &[]);
    assert_eq!(code, 0);
    let key = stdout.trim();
    assert!(tether_core::EncryptionKey::parse(key).is_ok(), "{key}");
}

#[test]
fn providers_lists_the_compiled_in_providers() {
    let dir = temp_dir();
    let (code, stdout, _) = run(&dir, &["providers", "--json"], &[]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = json["providers"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted: {ids:?}");
    for id in ["demo", "facebook", "generic", "github", "linkedin", "pinterest", "reddit", "twitter", "twitter_oauth1"]
    {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn check_reports_what_is_wrong_and_what_is_right() {
    let dir = temp_dir();
    let key = tether_core::EncryptionKey::generate().unwrap();
    std::fs::write(
        dir.join("tether.toml"),
        format!(
            "api_keys = [\"0123456789abcdef0123456789\"]\nencryption_keys = [\"{key}\"]\ndatabase_url = \"sqlite://{}?mode=rwc\"\n\
             [providers.github]\nclient_id = \"abc\"\nclient_secret = \"s3cret-value\"\n[providers.broken]\nkind = \"generic\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            dir.join("t.db").display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&dir, &["check"], &[]);
    assert_ne!(code, 0, "{stdout}");
    assert!(stdout.contains("ok    provider github") && stdout.contains("/callback/github"), "{stdout}");
    assert!(stdout.contains("FAIL  provider broken") && stdout.contains("providers.broken.authorize_url"), "{stdout}");
    assert!(stdout.contains("database: sqlite reachable"), "{stdout}");
    assert!(!stdout.contains("s3cret-value") && !stderr.contains("s3cret-value"));

    let (code, _, stderr) = run(&dir, &["token", "not-a-uuid"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.starts_with("error: ") && stderr.trim().lines().count() == 1, "{stderr}");
}
