//! Handle and DID resolution against loopback HTTP and DNS servers.

mod support;

use support::{Reply, config, dns, serve};
use tether_core::Url;
use tether_provider_bluesky::{Error, Resolver, ResolverConfig};

const ALICE_DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const OTHER_DID: &str = "did:plc:z72i7hdynmk6r22z27h6tvur";

/// Shaped like a plc.directory answer.
fn plc_document(did: &str, handle: &str) -> String {
    format!(
        r##"{{"@context":["https://www.w3.org/ns/did/v1","https://w3id.org/security/multikey/v1",
        "https://w3id.org/security/suites/secp256k1-2019/v1"],
        "id":"{did}","alsoKnownAs":["at://{handle}"],
        "verificationMethod":[{{"id":"{did}#atproto","type":"Multikey","controller":"{did}",
            "publicKeyMultibase":"zQ3shunBKsXixLxKtC5qeSG9E4J5RkGN57im31pcTzbNQnm5w"}}],
        "service":[{{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"https://pds.example.com"}}]}}"##
    )
}

fn plc_path(did: &str) -> String {
    format!("/{did}")
}

fn resolver(config: ResolverConfig) -> Resolver {
    Resolver::new(config).unwrap_or_else(|e| panic!("{e}"))
}

async fn no_dns() -> std::net::SocketAddr {
    dns(vec![]).await
}

#[tokio::test]
async fn handle_resolves_via_https_well_known_and_is_verified_by_the_plc_document() {
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "alice.example.com")))]).await;
    let alice = serve(vec![("/.well-known/atproto-did", Reply::text(&format!("{ALICE_DID}\n")))]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], no_dns().await));

    let id = r.resolve_identity("  @Alice.Example.COM ").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id.did.as_str(), ALICE_DID);
    assert_eq!(id.handle.map(|h| h.to_string()).as_deref(), Some("alice.example.com"));
    assert_eq!(id.pds.as_str(), "https://pds.example.com/");
}

#[tokio::test]
async fn handle_resolves_via_dns_txt() {
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "alice.example.com")))]).await;
    let alice = serve(vec![]).await; // no well-known file: 404
    let dns = dns(vec![("_atproto.alice.example.com", vec![&format!("did={ALICE_DID}")])]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], dns));

    let id = r.resolve_identity("alice.example.com").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id.did.as_str(), ALICE_DID);
    assert!(id.handle.is_some());
}

#[tokio::test]
async fn agreeing_dns_and_https_answers_are_accepted() {
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "alice.example.com")))]).await;
    let alice = serve(vec![("/.well-known/atproto-did", Reply::text(ALICE_DID))]).await;
    let dns = dns(vec![(
        "_atproto.alice.example.com",
        vec![&format!("did={ALICE_DID}"), "v=spf1 -all", &format!("did={ALICE_DID}")],
    )])
    .await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], dns));
    assert!(r.resolve_identity("alice.example.com").await.is_ok_and(|id| id.did.as_str() == ALICE_DID));
}

#[tokio::test]
async fn dns_and_https_disagreeing_is_an_error() {
    let plc = serve(vec![]).await;
    let alice = serve(vec![("/.well-known/atproto-did", Reply::text(OTHER_DID))]).await;
    let dns = dns(vec![("_atproto.alice.example.com", vec![&format!("did={ALICE_DID}")])]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], dns));

    let e = r.resolve_identity("alice.example.com").await.err();
    assert!(matches!(e, Some(Error::HandleDisagreement { .. })), "{e:?}");
    let message = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(ALICE_DID) && message.contains(OTHER_DID), "{message}");
}

#[tokio::test]
async fn several_different_txt_records_do_not_resolve() {
    let plc = serve(vec![]).await;
    let alice = serve(vec![]).await;
    let dns =
        dns(vec![("_atproto.alice.example.com", vec![&format!("did={ALICE_DID}"), &format!("did={OTHER_DID}")])]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], dns));

    let e = r.resolve_identity("alice.example.com").await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("could not be resolved") && e.contains("several different"), "{e}");
}

#[tokio::test]
async fn unresolvable_handle_says_why_for_both_methods() {
    let plc = serve(vec![]).await;
    let nobody = serve(vec![]).await;
    let r = resolver(config(&plc, &[("nobody.example.com", &nobody)], no_dns().await));

    let e = r.resolve_identity("nobody.example.com").await.err();
    assert!(matches!(e, Some(Error::HandleNotFound { .. })), "{e:?}");
    let message = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("no `did=` TXT record") && message.contains("HTTP 404"), "{message}");
    let core: tether_core::Error =
        r.resolve_identity("nobody.example.com").await.err().map(Into::into).unwrap_or_else(|| panic!("must fail"));
    assert_eq!(core.code(), "invalid_request");
}

#[tokio::test]
async fn document_not_claiming_the_handle_is_refused() {
    let plc =
        serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "someone-else.example.com")))]).await;
    let alice = serve(vec![("/.well-known/atproto-did", Reply::text(ALICE_DID))]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], no_dns().await));

    let e = r.resolve_identity("alice.example.com").await.err();
    assert!(matches!(e, Some(Error::HandleNotClaimed { .. })), "{e:?}");
    let message = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("`someone-else.example.com`") && message.contains("unverified"), "{message}");
}

#[tokio::test]
async fn did_web_resolves_through_its_host_and_verifies_its_handle() {
    let did = "did:web:bob.example.com";
    let doc = format!(
        r##"{{"@context":["https://www.w3.org/ns/did/v1"],"id":"{did}","alsoKnownAs":["at://bob.example.com"],
        "service":[{{"id":"{did}#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":"https://pds.example.com"}}]}}"##
    );
    let bob =
        serve(vec![("/.well-known/did.json", Reply::json(doc)), ("/.well-known/atproto-did", Reply::text(did))]).await;
    let plc = serve(vec![]).await;
    let r = resolver(config(&plc, &[("bob.example.com", &bob)], no_dns().await));

    let from_did = r.resolve_identity(did).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_did.handle.map(|h| h.to_string()).as_deref(), Some("bob.example.com"));
    let from_handle = r.resolve_identity("bob.example.com").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_handle.did.as_str(), did);
}

#[tokio::test]
async fn did_input_keeps_an_unverified_handle_out() {
    // The document claims alice.example.com, but that handle resolves to another DID.
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "alice.example.com")))]).await;
    let alice = serve(vec![("/.well-known/atproto-did", Reply::text(OTHER_DID))]).await;
    let r = resolver(config(&plc, &[("alice.example.com", &alice)], no_dns().await));

    let id = r.resolve_identity(ALICE_DID).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id.did.as_str(), ALICE_DID);
    assert_eq!(id.handle, None);
    assert_eq!(id.pds.as_str(), "https://pds.example.com/");
}

#[tokio::test]
async fn document_about_another_did_is_refused() {
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(OTHER_DID, "alice.example.com")))]).await;
    let r = resolver(config(&plc, &[], no_dns().await));
    let e = r.resolve_identity(ALICE_DID).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with("DID document at http://127.0.0.1:") && e.contains("is about"), "{e}");
}

#[tokio::test]
async fn oversize_documents_are_refused_with_or_without_content_length() {
    let huge = format!(r#"{{"id":"{ALICE_DID}","padding":"{}"}}"#, "x".repeat(200 * 1024));
    for content_length in [true, false] {
        let reply = Reply { content_length, ..Reply::json(huge.clone()) };
        let plc = serve(vec![(&plc_path(ALICE_DID), reply)]).await;
        let r = resolver(config(&plc, &[], no_dns().await));
        let e = r.resolve_identity(ALICE_DID).await.err();
        assert!(matches!(e, Some(Error::TooLarge { limit: 65536, .. })), "content_length {content_length}: {e:?}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = serve(vec![(&plc_path(ALICE_DID), Reply::json(plc_document(ALICE_DID, "alice.example.com")))]).await;
    let to = format!("{target}{ALICE_DID}");
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::redirect(&to))]).await;
    let r = resolver(config(&plc, &[], no_dns().await));
    let e = r.resolve_identity(ALICE_DID).await.err();
    assert!(matches!(e, Some(Error::Status { status: 302, .. })), "{e:?}");
}

#[tokio::test]
async fn error_bodies_appear_only_as_a_short_excerpt() {
    let body = format!("<html>\n<body>\n  upstream exploded {}\n</body></html>", "detail ".repeat(200));
    let plc = serve(vec![(&plc_path(ALICE_DID), Reply::with("text/html", 503, body.into_bytes()))]).await;
    let r = resolver(config(&plc, &[], no_dns().await));
    let e = r.resolve_identity(ALICE_DID).await.err();
    assert!(e.as_ref().is_some_and(Error::is_temporary), "{e:?}");
    let message = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("answered HTTP 503: <html> <body> upstream exploded"), "{message}");
    assert!(message.len() < 200 && !message.contains('\n'), "{message}");
}

#[tokio::test]
async fn unreachable_servers_are_temporary_errors() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        Url::parse(&format!("http://127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"))
    };
    let r = resolver(config(&closed, &[], no_dns().await));
    let e = r.resolve_identity(ALICE_DID).await.err();
    assert!(matches!(e, Some(Error::Unreachable { .. })), "{e:?}");
    let core: tether_core::Error = e.map(Into::into).unwrap_or_else(|| panic!("must fail"));
    assert_eq!(core.code(), "provider_unavailable");
}

#[tokio::test]
async fn invalid_handles_and_dids_are_refused_before_any_request() {
    // No servers at all: nothing may be contacted.
    let r = Resolver::new(ResolverConfig { dns_nameserver: Some(no_dns().await), ..ResolverConfig::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    for (input, expected) in [
        ("alice", "`alice` is not a valid handle: it needs at least two dot-separated labels"),
        ("alice@example.com", "is not a valid handle: only letters, digits, hyphens and dots are allowed"),
        ("printer.local", "is not a valid handle: this top-level domain is reserved"),
        ("did:plc:short", "`did:plc:short` is not a valid atproto DID: a did:plc identifier is exactly 24 characters"),
        ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "method `key` is not supported"),
        ("did:web:localhost%3A8080", "did:web with a port or path is not supported"),
    ] {
        let e = r.resolve_identity(input).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(expected), "{input}: {e}");
    }
}
