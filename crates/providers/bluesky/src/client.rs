//! Who Tether is to an atproto authorization server: the client id (the URL of the client
//! metadata document Tether serves), the signing keys of its client assertions and the
//! documents it publishes; or, for local development, the `http://localhost` client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tether_core::{
    CLIENT_ASSERTION_TYPE, EsKey, ExposeSecret, ProviderContext, ProviderId, ProviderSettings, SecretString, Url,
    client_assertion, serde_json,
};

use crate::identity::is_loopback_http;
use crate::resolver::ResolverConfig;

/// Name of the client metadata document under `{public_url}/providers/{id}/`.
pub const CLIENT_METADATA_DOCUMENT: &str = "client-metadata.json";
/// Name of the JWKS document under `{public_url}/providers/{id}/`.
pub const JWKS_DOCUMENT: &str = "jwks.json";
/// Where a flow starts when the user gives no handle: Bluesky's own entryway.
pub const DEFAULT_SERVER: &str = "https://bsky.social";

/// One signing key of the client key ring.
pub(crate) struct ClientKey {
    pub(crate) kid: String,
    pub(crate) key: EsKey,
}

/// How Tether identifies itself to authorization servers.
pub(crate) enum ClientIdentity {
    /// A confidential client: `client_id` is the URL of the metadata document; requests carry
    /// a `private_key_jwt` assertion signed with a key of the ring (the first for new
    /// sessions; a session keeps the key it started with).
    Confidential { client_id: String, keys: Vec<ClientKey> },
    /// The atproto development client `http://localhost?redirect_uri=…&scope=…`: public, no
    /// client authentication, redirect URIs on `127.0.0.1` only, short sessions.
    Loopback { client_id: String },
}

/// The provider's settings, read from the `[providers.bluesky]` table.
pub(crate) struct BlueskySettings {
    pub(crate) client: ClientIdentity,
    /// `{public_url}/providers/{id}/` (documents are published under it).
    pub(crate) documents_base: String,
    pub(crate) client_name: String,
    pub(crate) client_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) tos_uri: Option<String>,
    pub(crate) policy_uri: Option<String>,
    pub(crate) default_server: Url,
    pub(crate) resolver: ResolverConfig,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSettings {
    client_keys: Vec<SecretString>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    default_server: Option<String>,
    plc_directory: Option<String>,
    handle_hosts: BTreeMap<String, String>,
    dns_nameserver: Option<String>,
    resolve_timeout_secs: Option<u64>,
    allow_insecure_loopback: bool,
}

/// `{public_url}` of the server, from the redirect URI `{public_url}/callback/{id}`.
fn public_url(id: &ProviderId, redirect_uri: &Url) -> String {
    let redirect = redirect_uri.as_str();
    let suffix = format!("/callback/{}", id.as_str());
    redirect.strip_suffix(&suffix).unwrap_or(redirect).to_owned()
}

fn config_error(key: &str, message: impl std::fmt::Display) -> tether_core::Error {
    tether_core::Error::Config(format!("providers.bluesky.{key}: {message}"))
}

impl BlueskySettings {
    /// Reads and checks the settings of the provider configured in `ctx`.
    pub(crate) fn from_context(ctx: &ProviderContext<'_>) -> tether_core::Result<Self> {
        Self::from_parts(ctx.id, ctx.settings, ctx.redirect_uri)
    }

    /// Reads and checks the settings of the provider configured as `id`.
    pub(crate) fn from_parts(
        id: &ProviderId,
        settings: &ProviderSettings,
        redirect_uri: &Url,
    ) -> tether_core::Result<Self> {
        let extra = serde_json::Value::Object(settings.extra.clone().into_iter().collect());
        let raw: RawSettings = serde_json::from_value(extra).map_err(|e| config_error("*", e))?;
        let public = public_url(id, redirect_uri);
        let documents_base = format!("{public}/providers/{}/", id.as_str());
        let public_parsed = Url::parse(&public).map_err(|e| config_error("public_url", e))?;
        let client = if raw.client_keys.is_empty() {
            loopback_client(settings, redirect_uri, &public_parsed)?
        } else {
            if public_parsed.scheme() != "https" && !(raw.allow_insecure_loopback && is_loopback_http(&public_parsed)) {
                return Err(config_error(
                    "client_keys",
                    "a confidential Bluesky client needs an https public_url (authorization servers fetch its client metadata there)",
                ));
            }
            let keys = raw
                .client_keys
                .iter()
                .enumerate()
                .map(|(i, k)| parse_client_key(i, k))
                .collect::<Result<Vec<_>, _>>()?;
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = keys.iter().find(|k| !seen.insert(k.kid.clone())) {
                return Err(config_error("client_keys", format!("two keys have the kid `{}`", dup.kid)));
            }
            ClientIdentity::Confidential { client_id: format!("{documents_base}{CLIENT_METADATA_DOCUMENT}"), keys }
        };
        let mut resolver =
            ResolverConfig { allow_insecure_loopback: raw.allow_insecure_loopback, ..Default::default() };
        if let Some(plc) = raw.plc_directory {
            resolver.plc_directory = Url::parse(&plc).map_err(|e| config_error("plc_directory", e))?;
        }
        for (host, base) in raw.handle_hosts {
            let base = Url::parse(&base).map_err(|e| config_error(&format!("handle_hosts.{host}"), e))?;
            resolver.host_overrides.insert(host.to_ascii_lowercase(), base);
        }
        if let Some(ns) = raw.dns_nameserver {
            let address: SocketAddr = ns
                .parse()
                .map_err(|_| config_error("dns_nameserver", "must be an IP address with a port (`127.0.0.1:53`)"))?;
            resolver.dns_nameserver = Some(address);
        }
        if let Some(secs) = raw.resolve_timeout_secs {
            resolver.timeout = Duration::from_secs(secs.clamp(1, 60));
        }
        let default_server = raw.default_server.as_deref().unwrap_or(DEFAULT_SERVER);
        let default_server = crate::identity::https_origin(default_server, raw.allow_insecure_loopback)
            .map_err(|reason| config_error("default_server", reason))?;
        Ok(BlueskySettings {
            client,
            documents_base,
            client_name: raw.client_name.unwrap_or_else(|| "Tether".to_owned()),
            client_uri: raw.client_uri,
            logo_uri: raw.logo_uri,
            tos_uri: raw.tos_uri,
            policy_uri: raw.policy_uri,
            default_server,
            resolver,
        })
    }

    /// The `client_id` sent to authorization servers.
    pub(crate) fn client_id(&self) -> &str {
        match &self.client {
            ClientIdentity::Confidential { client_id, .. } | ClientIdentity::Loopback { client_id } => client_id,
        }
    }

    /// The key that authenticates new sessions, by kid (`None` for the loopback client).
    pub(crate) fn signing_kid(&self) -> Option<&str> {
        match &self.client {
            ClientIdentity::Confidential { keys, .. } => keys.first().map(|k| k.kid.as_str()),
            ClientIdentity::Loopback { .. } => None,
        }
    }

    /// Client authentication parameters for a request to `issuer` with the key `kid` (a
    /// fresh assertion each time: assertions are single use). Empty for the loopback client.
    pub(crate) fn client_auth(
        &self,
        issuer: &str,
        kid: Option<&str>,
    ) -> tether_core::Result<Vec<(&'static str, String)>> {
        let mut form = vec![("client_id", self.client_id().to_owned())];
        if let ClientIdentity::Confidential { client_id, keys } = &self.client {
            let kid = kid.ok_or_else(|| {
                tether_core::Error::provider(
                    crate::PROVIDER_ID,
                    tether_core::ProviderErrorKind::InvalidGrant,
                    "this session was started without a client key; the user must connect again",
                )
            })?;
            let key = keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
                tether_core::Error::provider(
                    crate::PROVIDER_ID,
                    tether_core::ProviderErrorKind::InvalidGrant,
                    format!(
                        "the client key `{kid}` this session was authorized with is no longer in providers.bluesky.client_keys; the user must connect again"
                    ),
                )
            })?;
            let assertion = client_assertion(&key.key, &key.kid, client_id, issuer)
                .map_err(|e| tether_core::Error::Config(format!("signing a client assertion: {e}")))?;
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
            form.push(("client_assertion", assertion));
        }
        Ok(form)
    }

    /// The client metadata document (the body served at the client id URL).
    pub(crate) fn client_metadata(&self, ctx: &ProviderContext<'_>) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "client_id": self.client_id(),
            "client_name": self.client_name,
            "application_type": "web",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": scope_string(&ctx.settings.scopes),
            "redirect_uris": [ctx.redirect_uri.as_str()],
            "dpop_bound_access_tokens": true,
        });
        match &self.client {
            ClientIdentity::Confidential { .. } => {
                doc["token_endpoint_auth_method"] = "private_key_jwt".into();
                doc["token_endpoint_auth_signing_alg"] = "ES256".into();
                doc["jwks_uri"] = format!("{}{JWKS_DOCUMENT}", self.documents_base).into();
            }
            ClientIdentity::Loopback { .. } => {
                doc["token_endpoint_auth_method"] = "none".into();
            }
        }
        for (name, value) in [
            ("client_uri", &self.client_uri),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
        ] {
            if let Some(value) = value {
                doc[name] = value.as_str().into();
            }
        }
        doc
    }

    /// The public JWKS of the client key ring (empty for the loopback client).
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = match &self.client {
            ClientIdentity::Confidential { keys, .. } => {
                keys.iter().map(|k| serde_json::json!(k.key.public_jwk_with_kid(&k.kid))).collect()
            }
            ClientIdentity::Loopback { .. } => Vec::new(),
        };
        serde_json::json!({ "keys": keys })
    }
}

/// Scopes as one space-separated string, `atproto` first and always present.
pub(crate) fn scope_string(scopes: &[String]) -> String {
    let mut all = vec!["atproto"];
    all.extend(scopes.iter().map(String::as_str).filter(|s| *s != "atproto"));
    all.join(" ")
}

/// The development client: only for a server on `http://127.0.0.1` (or `[::1]`), as the
/// atproto spec requires of its redirect URIs.
fn loopback_client(
    settings: &ProviderSettings,
    redirect_uri: &Url,
    public: &Url,
) -> tether_core::Result<ClientIdentity> {
    let on_ip_loopback = public.scheme() == "http"
        && matches!(public.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(public.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    if !on_ip_loopback {
        return Err(config_error(
            "client_keys",
            "is empty: a server on a public URL is a confidential client and needs at least one ES256 key \
             (`tether keys bluesky-client-key` prints one); without keys only the development client on \
             public_url = http://127.0.0.1:PORT is available",
        ));
    }
    let mut client_id = Url::parse("http://localhost").map_err(|e| config_error("public_url", e))?;
    client_id
        .query_pairs_mut()
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("scope", &scope_string(&settings.scopes));
    // `Url` writes `http://localhost/?…`; the atproto form has no path.
    let client_id = client_id.as_str().replacen("http://localhost/?", "http://localhost?", 1);
    Ok(ClientIdentity::Loopback { client_id })
}

fn parse_client_key(index: usize, raw: &SecretString) -> tether_core::Result<ClientKey> {
    let key_name = format!("client_keys[{index}]");
    let key = EsKey::from_secret_jwk(raw.expose_secret()).map_err(|e| config_error(&key_name, e))?;
    let kid = serde_json::from_str::<serde_json::Value>(raw.expose_secret())
        .ok()
        .and_then(|v| v.get("kid").and_then(|k| k.as_str()).map(str::to_owned))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| key.thumbprint());
    Ok(ClientKey { kid, key })
}

/// A new client key as a private JWK with a `kid`, for `client_keys` (what
/// `tether keys bluesky-client-key` prints).
pub fn generate_client_key() -> tether_core::Result<SecretString> {
    let key = EsKey::generate().map_err(|e| tether_core::Error::Config(format!("generating a key: {e}")))?;
    let kid = format!("tether-{}", dated_suffix());
    let jwk: serde_json::Value = serde_json::from_str(key.to_secret_jwk().expose_secret())
        .map_err(|e| tether_core::Error::Config(format!("encoding a key: {e}")))?;
    let mut jwk = jwk;
    jwk["kid"] = kid.into();
    Ok(SecretString::from(jwk.to_string()))
}

/// `YYYYMMDD-xxxx`: a kid that sorts by creation and differs between keys made the same day.
fn dated_suffix() -> String {
    let suffix = tether_core::random_token(3).unwrap_or_default();
    format!("{}-{suffix}", chrono::Utc::now().format("%Y%m%d"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tether_core::{ProviderConfig, ProviderId, ProviderSettings, reqwest};

    use super::*;

    fn settings(
        public: &str,
        extra: serde_json::Value,
    ) -> tether_core::Result<(BlueskySettings, ProviderSettings, Url)> {
        let public = Url::parse(public).unwrap();
        let config = ProviderConfig {
            extra: extra.as_object().unwrap().clone().into_iter().collect::<BTreeMap<_, _>>(),
            ..Default::default()
        };
        let resolved = ProviderSettings::resolve("bluesky", &crate::SPEC, &config, &public)?;
        let redirect = Url::parse(&format!("{}/callback/bluesky", public.as_str().trim_end_matches('/'))).unwrap();
        let (id, http) = (ProviderId::parse("bluesky").unwrap(), reqwest::Client::new());
        let ctx = ProviderContext { id: &id, settings: &resolved, http: &http, redirect_uri: &redirect };
        let s = BlueskySettings::from_context(&ctx)?;
        Ok((s, resolved, redirect))
    }

    fn key_jwk(kid: Option<&str>) -> (String, EsKey) {
        let key = EsKey::generate().unwrap();
        let mut jwk: serde_json::Value = serde_json::from_str(key.to_secret_jwk().expose_secret()).unwrap();
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        (jwk.to_string(), key)
    }

    #[test]
    fn a_public_server_is_a_confidential_client_with_its_key_ring() {
        let (k1, key1) = key_jwk(Some("k1"));
        let (k2, key2) = key_jwk(None);
        let (s, resolved, redirect) =
            settings("https://tether.example", serde_json::json!({ "client_keys": [k1, k2] })).unwrap();
        assert_eq!(s.client_id(), "https://tether.example/providers/bluesky/client-metadata.json");
        assert_eq!(s.signing_kid(), Some("k1"), "the first key signs new sessions");
        let jwks = s.jwks();
        let kids: Vec<_> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kids, ["k1".to_owned(), key2.thumbprint()], "a key without kid is named by its thumbprint");
        assert!(!jwks.to_string().contains("\"d\""), "no private part is published");
        assert_eq!(jwks["keys"][0]["x"], key1.public_jwk().x);
        let (id, http) = (ProviderId::parse("bluesky").unwrap(), reqwest::Client::new());
        let ctx = ProviderContext { id: &id, settings: &resolved, http: &http, redirect_uri: &redirect };
        let doc = s.client_metadata(&ctx);
        assert_eq!(doc["jwks_uri"], "https://tether.example/providers/bluesky/jwks.json");
        assert_eq!(doc["scope"], "atproto transition:generic");
        let auth = s.client_auth("https://pds.example", Some("k1")).unwrap();
        assert_eq!(auth[1], ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
        // A session whose key left the ring must be connected again.
        let e = s.client_auth("https://pds.example", Some("gone")).unwrap_err();
        assert!(
            matches!(e, tether_core::Error::Provider { kind: tether_core::ProviderErrorKind::InvalidGrant, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("`gone`"), "{e}");
    }

    #[test]
    fn misconfigurations_are_named_and_keep_keys_out_of_messages() {
        let e = settings("https://tether.example", serde_json::json!({})).err().unwrap().to_string();
        assert!(e.contains("providers.bluesky.client_keys") && e.contains("tether keys bluesky-client-key"), "{e}");
        let (k, _) = key_jwk(Some("k"));
        let e = settings("http://tether.example", serde_json::json!({ "client_keys": [k] })).err().unwrap().to_string();
        assert!(e.contains("https public_url"), "{e}");
        let broken = r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB","d":"c2VjcmV0LXNjYWxhcg"}"#;
        let e = settings("https://tether.example", serde_json::json!({ "client_keys": [broken] }))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("client_keys[0]") && !e.contains("c2VjcmV0LXNjYWxhcg"), "{e}");
        let (a, _) = key_jwk(Some("same"));
        let (b, _) = key_jwk(Some("same"));
        let e =
            settings("https://tether.example", serde_json::json!({ "client_keys": [a, b] })).err().unwrap().to_string();
        assert!(e.contains("two keys have the kid `same`"), "{e}");
        let e = settings(
            "https://tether.example",
            serde_json::json!({ "client_keys": [k.clone()], "default_server": "http://bsky.social" }),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("providers.bluesky.default_server"), "{e}");
        let e = settings("http://localhost:8080", serde_json::json!({})).err().unwrap().to_string();
        assert!(e.contains("http://127.0.0.1:PORT"), "{e}");
    }

    #[test]
    fn the_development_client_lives_on_127_0_0_1() {
        let (s, _, _) = settings("http://127.0.0.1:8080", serde_json::json!({})).unwrap();
        assert_eq!(
            s.client_id(),
            "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback%2Fbluesky&scope=atproto+transition%3Ageneric"
        );
        assert_eq!(s.signing_kid(), None);
        assert_eq!(s.client_auth("https://pds.example", None).unwrap().len(), 1, "client_id only");
        assert_eq!(s.jwks()["keys"], serde_json::json!([]));
    }

    #[test]
    fn generated_client_keys_load_back() {
        let generated = generate_client_key().unwrap();
        let key = parse_client_key(0, &generated).unwrap();
        assert!(key.kid.starts_with("tether-2"), "{}", key.kid);
        assert_eq!(scope_string(&["transition:generic".into(), "atproto".into()]), "atproto transition:generic");
    }
}
