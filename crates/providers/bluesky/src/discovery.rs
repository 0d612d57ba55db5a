//! PDS → protected-resource metadata → authorization server metadata (RFC 9728, RFC 8414), as atproto requires.

use serde::Deserialize;
use tether_core::{Url, serde_json};

use crate::error::{Error, excerpt};
use crate::identity::https_origin;
use crate::resolver::{Resolver, origin};

/// An atproto authorization server, validated against what the atproto OAuth profile requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationServer {
    /// The `issuer`, exactly as published (equal to the server's origin); the `iss` to expect on callbacks and the
    /// audience of client assertions.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Url,
    /// `token_endpoint`.
    pub token_endpoint: Url,
    /// `pushed_authorization_request_endpoint` (PAR is mandatory in atproto).
    pub par_endpoint: Url,
    /// `revocation_endpoint`, when the server publishes one.
    pub revocation_endpoint: Option<Url>,
    /// `token_endpoint_auth_methods_supported` (atproto servers offer `none` and `private_key_jwt`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// `token_endpoint_auth_signing_alg_values_supported`.
    pub token_endpoint_auth_signing_algs: Vec<String>,
    /// `scopes_supported` (contains `atproto`).
    pub scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct ProtectedResource {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
}

#[derive(Deserialize)]
struct ServerMetadata {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    pushed_authorization_request_endpoint: Option<String>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    revocation_endpoint: Option<String>,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
}

const RESOURCE: &str = "protected-resource metadata";
const SERVER: &str = "authorization server metadata";

impl Resolver {
    /// Finds and validates the authorization server of a PDS: `GET {pds}/.well-known/oauth-protected-resource`,
    /// its `authorization_servers[0]`, then `GET {as}/.well-known/oauth-authorization-server`.
    pub async fn discover(&self, pds: &Url) -> Result<AuthorizationServer, Error> {
        let pds_origin = origin(pds);
        let url = join(pds, "/.well-known/oauth-protected-resource")?;
        let body = self.get(RESOURCE, &url, "application/json", self.config.max_body_bytes).await?;
        let invalid = |reason: String| Error::Invalid { what: RESOURCE, origin: pds_origin.clone(), reason };
        let metadata: ProtectedResource = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("not JSON of the expected shape ({e}){}", excerpt(&body))))?;
        if let Some(resource) = &metadata.resource
            && resource.trim_end_matches('/') != pds_origin
        {
            return Err(invalid(format!("`resource` is `{}`, not the PDS origin", excerpt_str(resource))));
        }
        let first = metadata
            .authorization_servers
            .first()
            .ok_or_else(|| invalid("`authorization_servers` is empty".to_owned()))?;
        let server = https_origin(first, self.config.allow_insecure_loopback)
            .map_err(|reason| invalid(format!("`authorization_servers[0]` {reason}")))?;
        self.authorization_server(&server).await
    }

    /// Fetches and validates the RFC 8414 metadata of the authorization server at `server` (an `https` origin).
    pub async fn authorization_server(&self, server: &Url) -> Result<AuthorizationServer, Error> {
        let server_origin = origin(server);
        let url = join(server, "/.well-known/oauth-authorization-server")?;
        let body = self.get(SERVER, &url, "application/json", self.config.max_body_bytes).await?;
        let metadata: ServerMetadata = serde_json::from_slice(&body).map_err(|e| Error::Invalid {
            what: SERVER,
            origin: server_origin.clone(),
            reason: format!("not JSON of the expected shape ({e}){}", excerpt(&body)),
        })?;
        validate(metadata, &server_origin, self.config.allow_insecure_loopback).map_err(|reason| Error::Invalid {
            what: SERVER,
            origin: server_origin.clone(),
            reason,
        })
    }
}

fn join(base: &Url, path: &str) -> Result<Url, Error> {
    base.join(path).map_err(|e| Error::Config(format!("metadata URL: {e}")))
}

fn excerpt_str(s: &str) -> String {
    excerpt(s.as_bytes()).trim_start_matches(": ").to_owned()
}

fn validate(m: ServerMetadata, server_origin: &str, loopback_http: bool) -> Result<AuthorizationServer, String> {
    let issuer = m.issuer.ok_or("`issuer` is missing")?;
    if issuer != server_origin && issuer != format!("{server_origin}/") {
        return Err(format!(
            "`issuer` is `{}` but the server is {server_origin}; refusing a mismatched issuer",
            excerpt_str(&issuer)
        ));
    }
    let endpoint = |name: &str, value: Option<String>| -> Result<Url, String> {
        let value = value.ok_or_else(|| format!("`{name}` is missing"))?;
        let url = Url::parse(&value).map_err(|e| format!("`{name}` is not a URL ({e})"))?;
        if url.scheme() != "https" && !(loopback_http && crate::identity::is_loopback_http(&url)) {
            return Err(format!("`{name}` must use https"));
        }
        Ok(url)
    };
    let authorization_endpoint = endpoint("authorization_endpoint", m.authorization_endpoint)?;
    let token_endpoint = endpoint("token_endpoint", m.token_endpoint)?;
    let par_endpoint = endpoint("pushed_authorization_request_endpoint", m.pushed_authorization_request_endpoint)
        .map_err(|e| {
            format!("{e}: the server does not support pushed authorization requests (PAR), which atproto requires")
        })?;
    if !m.require_pushed_authorization_requests {
        return Err("`require_pushed_authorization_requests` is not true, as atproto requires".to_owned());
    }
    let revocation_endpoint = m.revocation_endpoint.map(|v| endpoint("revocation_endpoint", Some(v))).transpose()?;
    let require = |name: &str, values: &[String], wanted: &str| {
        if values.iter().any(|v| v == wanted) { Ok(()) } else { Err(format!("`{name}` does not contain `{wanted}`")) }
    };
    require("dpop_signing_alg_values_supported", &m.dpop_signing_alg_values_supported, "ES256")?;
    require("scopes_supported", &m.scopes_supported, "atproto")?;
    require("code_challenge_methods_supported", &m.code_challenge_methods_supported, "S256")?;
    if m.token_endpoint_auth_methods_supported.is_empty() {
        return Err("`token_endpoint_auth_methods_supported` is missing".to_owned());
    }
    Ok(AuthorizationServer {
        issuer,
        authorization_endpoint,
        token_endpoint,
        par_endpoint,
        revocation_endpoint,
        token_endpoint_auth_methods: m.token_endpoint_auth_methods_supported,
        token_endpoint_auth_signing_algs: m.token_endpoint_auth_signing_alg_values_supported,
        scopes_supported: m.scopes_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like bsky.social's published metadata (trimmed).
    fn bsky_social() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://bsky.social",
            "scopes_supported": ["atproto", "transition:generic", "transition:chat.bsky"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "require_pushed_authorization_requests": true,
            "pushed_authorization_request_endpoint": "https://bsky.social/oauth/par",
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "ES256K"],
            "revocation_endpoint": "https://bsky.social/oauth/revoke",
            "dpop_signing_alg_values_supported": ["RS256", "ES256", "ES256K"],
            "client_id_metadata_document_supported": true,
            "authorization_endpoint": "https://bsky.social/oauth/authorize",
            "token_endpoint": "https://bsky.social/oauth/token"
        })
    }

    fn check(value: serde_json::Value) -> Result<AuthorizationServer, String> {
        let m: ServerMetadata = serde_json::from_value(value).map_err(|e| e.to_string())?;
        validate(m, "https://bsky.social", false)
    }

    fn without(field: &str) -> serde_json::Value {
        let mut v = bsky_social();
        if let Some(o) = v.as_object_mut() {
            o.remove(field);
        }
        v
    }

    #[test]
    fn bsky_social_metadata_is_accepted() {
        let server = check(bsky_social()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.issuer, "https://bsky.social");
        assert_eq!(server.par_endpoint.as_str(), "https://bsky.social/oauth/par");
        assert_eq!(server.revocation_endpoint.map(String::from).as_deref(), Some("https://bsky.social/oauth/revoke"));
        assert!(check(without("revocation_endpoint")).is_ok_and(|s| s.revocation_endpoint.is_none()));
    }

    #[test]
    fn missing_or_wrong_fields_are_refused() {
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "pushed_authorization_request_endpoint",
            "require_pushed_authorization_requests",
            "dpop_signing_alg_values_supported",
            "scopes_supported",
            "token_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
        ] {
            let e = check(without(field)).err().unwrap_or_default();
            assert!(e.contains(field), "without {field}: {e}");
        }
        let mut v = bsky_social();
        v["issuer"] = "https://evil.example".into();
        assert!(check(v).is_err_and(|e| e.contains("mismatched issuer")));
        let mut v = bsky_social();
        v["dpop_signing_alg_values_supported"] = serde_json::json!(["RS256"]);
        assert!(check(v).is_err_and(|e| e.contains("ES256")));
        let mut v = bsky_social();
        v["token_endpoint"] = "http://bsky.social/oauth/token".into();
        assert!(check(v).is_err_and(|e| e.contains("https")));
    }
}
