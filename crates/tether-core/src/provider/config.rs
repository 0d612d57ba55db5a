//! Provider configuration (`[providers.<id>]`) and its resolution against the spec.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::{ClientAuth, InstanceMode, PkceMode, ProviderSpec};
use crate::{ClientRegistration, Error, InstanceOrigin, InstancePolicy, Result};

/// Stands for the server's origin in the endpoints of a per-instance provider until they are
/// rebased on a connection's server ([`ProviderSettings::at_instance`]).
const INSTANCE_PLACEHOLDER: &str = "https://instance.invalid";

/// One `[providers.<id>]` table of the configuration file.
#[derive(Clone, Default, Deserialize)]
pub struct ProviderConfig {
    /// For a provider configured entirely from this table: `"generic"`. Otherwise the
    /// table name is the provider id.
    pub kind: Option<String>,
    /// OAuth client id. Numeric ids (Meta, Pinterest) are accepted unquoted too.
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default, deserialize_with = "lenient_secret")]
    pub client_secret: Option<SecretString>,
    /// Scopes to request by default (replaces the provider's defaults).
    pub scopes: Option<Vec<String>>,
    /// Authorization endpoint override.
    pub authorize_url: Option<String>,
    /// OAuth 1.0a request-token endpoint override.
    pub request_token_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// Userinfo endpoint override.
    pub userinfo_url: Option<String>,
    /// Revocation endpoint override.
    pub revoke_url: Option<String>,
    /// API base URL override.
    pub api_base_url: Option<String>,
    /// Client authentication override (`basic` or `post`).
    pub client_auth: Option<ClientAuth>,
    /// PKCE on (S256) or off.
    pub pkce: Option<bool>,
    /// Userinfo field holding the account id.
    pub account_id_field: Option<String>,
    /// Userinfo field holding the account display name.
    pub account_name_field: Option<String>,
    /// Scope separator override.
    pub scope_separator: Option<String>,
    /// Display name override (used by generic providers).
    pub display_name: Option<String>,
    /// Provider-specific settings.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Accepts a string or a number: environment variables carry no types, so a numeric client id
/// set in `TETHER_PROVIDERS__X__CLIENT_ID` arrives as a number.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        U(u64),
        I(i64),
        F(f64),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::S(s) => s,
        Text::U(n) => n.to_string(),
        Text::I(n) => n.to_string(),
        Text::F(n) => n.to_string(),
    }))
}

fn lenient_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(lenient_string(d)?.map(SecretString::from))
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("scopes", &self.scopes)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// The settings of one configured provider: spec defaults with configuration applied.
#[derive(Clone)]
pub struct ProviderSettings {
    /// Display name.
    pub display_name: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Option<SecretString>,
    /// Default scopes.
    pub scopes: Vec<String>,
    /// Authorization endpoint.
    pub authorize_url: Url,
    /// OAuth 1.0a request-token endpoint.
    pub request_token_url: Option<Url>,
    /// Token endpoint.
    pub token_url: Url,
    /// Userinfo endpoint.
    pub userinfo_url: Option<Url>,
    /// Revocation endpoint.
    pub revoke_url: Option<Url>,
    /// API base URL.
    pub api_base_url: Option<Url>,
    /// Client authentication.
    pub client_auth: ClientAuth,
    /// PKCE.
    pub pkce: PkceMode,
    /// Scope separator.
    pub scope_separator: String,
    /// Userinfo account-id field.
    pub account_id_field: String,
    /// Userinfo display-name field.
    pub account_name_field: String,
    /// Extra authorization parameters.
    pub extra_authorize_params: Vec<(String, String)>,
    /// Extra token parameters.
    pub extra_token_params: Vec<(String, String)>,
    /// Provider-specific settings from configuration.
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Per-instance providers: which servers are accepted (`None` for single-service providers).
    pub instances: Option<InstancePolicy>,
    /// The server these settings are rebased on ([`at_instance`](Self::at_instance)); `None`
    /// for single-service providers and for the configured (not yet rebased) settings.
    pub instance: Option<InstanceOrigin>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("display_name", &self.display_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("client_auth", &self.client_auth)
            .field("pkce", &self.pkce)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl ProviderSettings {
    /// Applies configuration `config` of the provider configured as `id` to `spec`.
    ///
    /// Fails with a message naming the configuration key when something required is missing
    /// or a URL is malformed.
    pub fn resolve(id: &str, spec: &ProviderSpec, config: &ProviderConfig, public_url: &Url) -> Result<Self> {
        let key = |k: &str| format!("providers.{id}.{k}");
        let per_instance = spec.instances == InstanceMode::PerInstance;
        // Per-instance providers get their client from each server's registration.
        let client_id = match config.client_id.clone().filter(|c| !c.trim().is_empty()) {
            Some(c) => c,
            None if per_instance || !spec.requires_client_id => String::new(),
            None => return Err(Error::Config(format!("{} is missing", key("client_id")))),
        };
        if spec.requires_client_secret && !per_instance && config.client_secret.is_none() {
            return Err(Error::Config(format!(
                "{} is missing (or set TETHER_PROVIDERS__{}__CLIENT_SECRET)",
                key("client_secret"),
                id.to_uppercase()
            )));
        }
        if config.client_auth == Some(ClientAuth::PrivateKeyJwt) && spec.client_auth != ClientAuth::PrivateKeyJwt {
            return Err(Error::Config(format!(
                "{} = \"private_key_jwt\" is only for providers that sign their own assertions (bluesky)",
                key("client_auth")
            )));
        }
        let base = public_url.as_str().trim_end_matches('/');
        let url = |name: &str, over: &Option<String>, default: &str| -> Result<Option<Url>> {
            let raw = over.as_deref().unwrap_or(default);
            if raw.is_empty() {
                return Ok(None);
            }
            if per_instance && !raw.starts_with("{instance}/") {
                return Err(Error::Config(format!(
                    "{} must start with {{instance}}/: the endpoints of {} are on each user's server",
                    key(name),
                    spec.display_name
                )));
            }
            let raw = raw.replace("{public_url}", base).replace("{instance}", INSTANCE_PLACEHOLDER);
            let parsed =
                Url::parse(&raw).map_err(|e| Error::Config(format!("{} is not a valid URL ({e})", key(name))))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::Config(format!("{} must be an http(s) URL", key(name))));
            }
            Ok(Some(parsed))
        };
        let required = |name: &str, over: &Option<String>, default: &str| -> Result<Url> {
            url(name, over, default)?.ok_or_else(|| Error::Config(format!("{} is missing", key(name))))
        };
        Ok(Self {
            display_name: config.display_name.clone().unwrap_or_else(|| spec.display_name.to_owned()),
            client_id,
            client_secret: config.client_secret.clone(),
            scopes: config
                .scopes
                .clone()
                .unwrap_or_else(|| spec.default_scopes.iter().map(|s| (*s).to_owned()).collect()),
            authorize_url: required("authorize_url", &config.authorize_url, spec.authorize_url)?,
            request_token_url: match spec.protocol {
                super::Protocol::OAuth1 => Some(required(
                    "request_token_url",
                    &config.request_token_url,
                    spec.request_token_url.unwrap_or(""),
                )?),
                _ => None,
            },
            token_url: required("token_url", &config.token_url, spec.token_url)?,
            userinfo_url: url("userinfo_url", &config.userinfo_url, spec.userinfo_url.unwrap_or(""))?,
            revoke_url: url("revoke_url", &config.revoke_url, spec.revoke_url.unwrap_or(""))?,
            api_base_url: url("api_base_url", &config.api_base_url, spec.api_base_url.unwrap_or(""))?,
            client_auth: config.client_auth.unwrap_or(spec.client_auth),
            pkce: match config.pkce {
                Some(true) => PkceMode::S256,
                Some(false) => PkceMode::None,
                None => spec.pkce,
            },
            scope_separator: config.scope_separator.clone().unwrap_or_else(|| spec.scope_separator.to_owned()),
            account_id_field: config.account_id_field.clone().unwrap_or_else(|| spec.account_id_field.to_owned()),
            account_name_field: config.account_name_field.clone().unwrap_or_else(|| spec.account_name_field.to_owned()),
            extra_authorize_params: pairs(spec.extra_authorize_params),
            extra_token_params: pairs(spec.extra_token_params),
            extra: config.extra.clone(),
            instances: per_instance.then(|| InstancePolicy::from_settings(id, &config.extra)).transpose()?,
            instance: None,
        })
    }

    /// These settings on one server of a per-instance provider: every endpoint rebased on
    /// `registration.instance`, and the client registered there.
    pub fn at_instance(&self, registration: &ClientRegistration) -> Result<Self> {
        let mut at = self.rebased(&registration.instance)?;
        at.client_id = registration.client.client_id.clone();
        at.client_secret = registration.client.client_secret.clone();
        Ok(at)
    }

    /// The endpoints of a per-instance provider rebased on `instance`, without a client (enough
    /// to know where its API is).
    pub fn rebased(&self, instance: &InstanceOrigin) -> Result<Self> {
        let origin = instance.as_str();
        let rebase = |url: &Url| -> Result<Url> {
            let rest = url
                .as_str()
                .strip_prefix(INSTANCE_PLACEHOLDER)
                .ok_or_else(|| Error::Config(format!("endpoint {} is not relative to the instance", url.as_str())))?;
            Url::parse(&format!("{origin}{rest}")).map_err(|e| Error::InvalidInstance(format!("{origin}: {e}")))
        };
        let rebase_opt = |url: &Option<Url>| url.as_ref().map(rebase).transpose();
        let mut at = self.clone();
        at.authorize_url = rebase(&self.authorize_url)?;
        at.token_url = rebase(&self.token_url)?;
        at.request_token_url = rebase_opt(&self.request_token_url)?;
        at.userinfo_url = rebase_opt(&self.userinfo_url)?;
        at.revoke_url = rebase_opt(&self.revoke_url)?;
        at.api_base_url = rebase_opt(&self.api_base_url)?;
        at.instance = Some(instance.clone());
        Ok(at)
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ProviderSpec = ProviderSpec {
        authorize_url: "https://example.com/authorize",
        token_url: "{public_url}/demo/token",
        ..ProviderSpec::oauth2("ex", "Example")
    };

    fn cfg() -> ProviderConfig {
        ProviderConfig {
            client_id: Some("id".into()),
            client_secret: Some(SecretString::from("s3cr3t".to_string())),
            ..Default::default()
        }
    }

    #[test]
    fn overrides_win_and_public_url_is_substituted() {
        let public = Url::parse("http://127.0.0.1:9999/").unwrap();
        let mut c = cfg();
        c.authorize_url = Some("http://127.0.0.1:1/auth".into());
        let s = ProviderSettings::resolve("ex", &SPEC, &c, &public).unwrap();
        assert_eq!(s.authorize_url.as_str(), "http://127.0.0.1:1/auth");
        assert_eq!(s.token_url.as_str(), "http://127.0.0.1:9999/demo/token");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn per_instance_endpoints_are_rebased_on_the_registered_server() {
        const MASTO: ProviderSpec = ProviderSpec {
            authorize_url: "{instance}/oauth/authorize",
            token_url: "{instance}/oauth/token",
            api_base_url: Some("{instance}/"),
            instances: InstanceMode::PerInstance,
            ..ProviderSpec::oauth2("masto", "Masto")
        };
        let public = Url::parse("https://tether.example/").unwrap();
        let s = ProviderSettings::resolve("masto", &MASTO, &ProviderConfig::default(), &public).unwrap();
        assert!(s.client_id.is_empty() && s.instances.is_some() && s.instance.is_none());
        let registration = ClientRegistration {
            id: uuid::Uuid::now_v7(),
            provider: crate::ProviderId::parse("masto").unwrap(),
            instance: InstanceOrigin::parse("example.org:8443", false).unwrap(),
            redirect_uri: Url::parse("https://tether.example/callback/masto").unwrap(),
            scopes: vec!["read".into()],
            client: crate::RegisteredClient {
                client_id: "cid".into(),
                client_secret: Some(SecretString::from("cs".to_string())),
            },
            created_at: chrono::Utc::now(),
        };
        let at = s.at_instance(&registration).unwrap();
        assert_eq!(at.authorize_url.as_str(), "https://example.org:8443/oauth/authorize");
        assert_eq!(at.api_base_url.unwrap().as_str(), "https://example.org:8443/");
        assert_eq!(at.client_id, "cid");
        let c =
            ProviderConfig { token_url: Some("https://elsewhere.example/oauth/token".into()), ..Default::default() };
        let e = ProviderSettings::resolve("masto", &MASTO, &c, &public).unwrap_err().to_string();
        assert!(e.contains("providers.masto.token_url must start with {instance}/"), "{e}");
    }

    #[test]
    fn missing_keys_are_named() {
        let public = Url::parse("http://127.0.0.1:9999/").unwrap();
        let mut c = cfg();
        c.client_secret = None;
        let e = ProviderSettings::resolve("ex", &SPEC, &c, &public).unwrap_err().to_string();
        assert!(e.contains("providers.ex.client_secret"), "{e}");
        let mut c = cfg();
        c.token_url = Some("not a url".into());
        let e = ProviderSettings::resolve("ex", &SPEC, &c, &public).unwrap_err().to_string();
        assert!(e.contains("providers.ex.token_url"), "{e}");
    }
}
