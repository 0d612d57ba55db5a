//! PDS → protected-resource metadata → authorization server metadata, against loopback servers.

mod support;

use support::{Reply, config, dns, serve};
use tether_core::{Url, serde_json};
use tether_provider_bluesky::{Error, Resolver};

const ALICE_DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Protected-resource metadata as a PDS publishes it.
fn protected_resource() -> String {
    serde_json::json!({
        "resource": "https://pds.example.com",
        "authorization_servers": ["https://auth.example.com"],
        "scopes_supported": [],
        "bearer_methods_supported": ["header"],
        "resource_documentation": "https://atproto.com"
    })
    .to_string()
}

/// Authorization server metadata shaped like a reference PDS entryway.
fn server_metadata() -> serde_json::Value {
    serde_json::json!({
        "issuer": "https://auth.example.com",
        "scopes_supported": ["atproto", "transition:generic", "transition:chat.bsky"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "ui_locales_supported": ["en-US"],
        "display_values_supported": ["page", "popup", "touch"],
        "request_object_signing_alg_values_supported": ["RS256", "ES256", "ES256K", "none"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "jwks_uri": "https://auth.example.com/oauth/jwks",
        "authorization_endpoint": "https://auth.example.com/oauth/authorize",
        "token_endpoint": "https://auth.example.com/oauth/token",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "ES256K"],
        "revocation_endpoint": "https://auth.example.com/oauth/revoke",
        "pushed_authorization_request_endpoint": "https://auth.example.com/oauth/par",
        "require_pushed_authorization_requests": true,
        "dpop_signing_alg_values_supported": ["RS256", "ES256", "ES256K"],
        "client_id_metadata_document_supported": true
    })
}

async fn resolver_for(pds_routes: Vec<(&str, Reply)>, metadata: serde_json::Value) -> Resolver {
    let pds = serve(pds_routes).await;
    let auth = serve(vec![("/.well-known/oauth-authorization-server", Reply::json(metadata.to_string()))]).await;
    let doc = format!(
        r##"{{"id":"{ALICE_DID}","alsoKnownAs":["at://alice.example.com"],
        "service":[{{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"https://pds.example.com"}}]}}"##
    );
    let plc = serve(vec![(&format!("/{ALICE_DID}"), Reply::json(doc))]).await;
    let no_dns = dns(vec![]).await;
    Resolver::new(config(&plc, &[("pds.example.com", &pds), ("auth.example.com", &auth)], no_dns))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn standard_resolver(metadata: serde_json::Value) -> Resolver {
    resolver_for(vec![("/.well-known/oauth-protected-resource", Reply::json(protected_resource()))], metadata).await
}

#[tokio::test]
async fn did_to_pds_to_authorization_server() {
    let r = standard_resolver(server_metadata()).await;
    let id = r.resolve_identity(ALICE_DID).await.unwrap_or_else(|e| panic!("{e}"));
    let server = r.discover(&id.pds).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.issuer, "https://auth.example.com");
    assert_eq!(server.authorization_endpoint.as_str(), "https://auth.example.com/oauth/authorize");
    assert_eq!(server.token_endpoint.as_str(), "https://auth.example.com/oauth/token");
    assert_eq!(server.par_endpoint.as_str(), "https://auth.example.com/oauth/par");
    assert_eq!(server.revocation_endpoint.as_ref().map(Url::as_str), Some("https://auth.example.com/oauth/revoke"));
    assert_eq!(server.token_endpoint_auth_methods, ["none", "private_key_jwt"]);
    assert!(server.scopes_supported.iter().any(|s| s == "atproto"));
}

#[tokio::test]
async fn mismatched_issuer_is_refused() {
    let mut metadata = server_metadata();
    metadata["issuer"] = "https://bsky.social".into();
    let r = standard_resolver(metadata).await;
    let e = r.discover(&url("https://pds.example.com")).await.err();
    let message = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(e, Some(Error::Invalid { .. })), "{e:?}");
    assert!(
        message.starts_with(
            "authorization server metadata at https://auth.example.com is invalid: `issuer` is `https://bsky.social`"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn server_without_par_is_refused() {
    let mut metadata = server_metadata();
    if let Some(o) = metadata.as_object_mut() {
        o.remove("pushed_authorization_request_endpoint");
        o.insert("require_pushed_authorization_requests".into(), false.into());
    }
    let r = standard_resolver(metadata).await;
    let e = r.discover(&url("https://pds.example.com")).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("does not support pushed authorization requests (PAR)"), "{e}");
}

#[tokio::test]
async fn server_without_es256_dpop_is_refused() {
    let mut metadata = server_metadata();
    metadata["dpop_signing_alg_values_supported"] = serde_json::json!(["RS256"]);
    let r = standard_resolver(metadata).await;
    let e = r.discover(&url("https://pds.example.com")).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("`dpop_signing_alg_values_supported` does not contain `ES256`"), "{e}");
}

#[tokio::test]
async fn protected_resource_must_name_an_https_server_and_itself() {
    let cases = [
        (serde_json::json!({"resource": "https://pds.example.com", "authorization_servers": []}), "is empty"),
        (serde_json::json!({"authorization_servers": ["http://auth.example.com"]}), "must use https"),
        (serde_json::json!({"authorization_servers": ["https://auth.example.com/x"]}), "must be an origin"),
        (
            serde_json::json!({"resource": "https://other.example.com", "authorization_servers": ["https://auth.example.com"]}),
            "not the PDS origin",
        ),
    ];
    for (body, expected) in cases {
        let r = resolver_for(
            vec![("/.well-known/oauth-protected-resource", Reply::json(body.to_string()))],
            server_metadata(),
        )
        .await;
        let e = r.discover(&url("https://pds.example.com")).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.starts_with("protected-resource metadata at https://pds.example.com is invalid") && e.contains(expected),
            "{e}"
        );
    }
}

#[tokio::test]
async fn oversize_metadata_is_refused() {
    let big = Reply { content_length: false, ..Reply::json(format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000))) };
    let r = resolver_for(vec![("/.well-known/oauth-protected-resource", big)], server_metadata()).await;
    let e = r.discover(&url("https://pds.example.com")).await.err();
    assert!(matches!(e, Some(Error::TooLarge { what: "protected-resource metadata", .. })), "{e:?}");
}

#[tokio::test]
async fn redirected_metadata_is_refused() {
    let r = resolver_for(
        vec![("/.well-known/oauth-protected-resource", Reply::redirect("https://elsewhere.example.com/meta"))],
        server_metadata(),
    )
    .await;
    let e = r.discover(&url("https://pds.example.com")).await.err();
    assert!(matches!(e, Some(Error::Status { status: 302, .. })), "{e:?}");
}

#[tokio::test]
async fn non_json_metadata_is_refused_with_a_short_excerpt() {
    let r = resolver_for(
        vec![("/.well-known/oauth-protected-resource", Reply::with("text/html", 200, b"<html>hello</html>".to_vec()))],
        server_metadata(),
    )
    .await;
    let e = r.discover(&url("https://pds.example.com")).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("not JSON of the expected shape") && e.ends_with(": <html>hello</html>"), "{e}");
}
