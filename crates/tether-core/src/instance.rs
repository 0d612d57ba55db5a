//! Per-instance providers: one provider (Mastodon, and later other federated or self-hosted
//! software) served by many independent servers, where the user names their server and the
//! OAuth client is registered on each server dynamically.
//!
//! - [`InstanceOrigin`] is a validated server origin (`https://mastodon.social`).
//! - [`InstancePolicy`] is what the operator allows (`allow_insecure_instances`,
//!   `allowed_instances`, `blocked_instances`).
//! - [`ClientRegistration`] is the client a provider registered on one server for one redirect
//!   URI; [`ClientRegistrationStore`] keeps them so each server sees one registration.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use crate::{Error, ProviderId, Result};

/// Longest instance input accepted (a DNS name is at most 253 characters).
pub const INSTANCE_MAX: usize = 255;

/// The origin of one server of a per-instance provider: scheme, host and port, nothing else.
///
/// Its text form is the ASCII origin without a trailing slash (`https://mastodon.social`,
/// `https://example.org:8443`, IDNs in punycode); that is how it is stored and compared.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstanceOrigin {
    origin: String,
    host: String,
    name: String,
}

impl InstanceOrigin {
    /// Parses what a user or an application typed: a host name with an optional port
    /// (`mastodon.social`, `example.org:8443`) or an origin URL (`https://mastodon.social`, a
    /// trailing slash allowed). Paths, queries, fragments and user names are refused.
    ///
    /// Without `allow_insecure` only `https` on a DNS name with at least one dot is accepted
    /// (no IP addresses, no `localhost`); with it, `http` and any host (used with loopback test
    /// servers).
    ///
    /// ```
    /// use tether_core::InstanceOrigin;
    /// let i = InstanceOrigin::parse("Mastodon.Social", false).unwrap();
    /// assert_eq!(i.as_str(), "https://mastodon.social");
    /// assert_eq!(i.host(), "mastodon.social");
    /// assert!(InstanceOrigin::parse("https://mastodon.social/@alice", false).is_err());
    /// ```
    pub fn parse(input: &str, allow_insecure: bool) -> Result<Self> {
        let bad = |why: &str| Error::InvalidInstance(why.to_owned());
        let input = input.trim();
        if input.is_empty() {
            return Err(bad("the instance is empty: type your server's address, like mastodon.social"));
        }
        if input.len() > INSTANCE_MAX || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the instance must be a server address like mastodon.social"));
        }
        let with_scheme = if input.contains("://") { input.to_owned() } else { format!("https://{input}") };
        let url = Url::parse(&with_scheme).map_err(|_| bad("the instance is not a valid server address"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_insecure => {}
            "http" => return Err(bad("the instance must use https")),
            _ => return Err(bad("the instance must be an https address")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("the instance must not contain a user name or password"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || input.ends_with('?') {
            return Err(bad("the instance must be a server address only, without a path"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.');
                if !allow_insecure && (!d.contains('.') || d == "localhost" || d.ends_with(".localhost")) {
                    return Err(bad("the instance must be a public server name like mastodon.social"));
                }
                d.to_owned()
            }
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) if allow_insecure => {
                url.host_str().unwrap_or_default().to_owned()
            }
            Some(_) => return Err(bad("the instance must be a server name, not an IP address")),
            None => return Err(bad("the instance has no host")),
        };
        let with_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        Ok(Self { origin: format!("{}://{with_port}", url.scheme()), host: with_port, name: host })
    }

    /// The origin (`https://mastodon.social`), no trailing slash.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// The host with its port when it is not the default (`mastodon.social`,
    /// `example.org:8443`): the part that qualifies account ids and handles.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host name without the port.
    pub fn host_name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for InstanceOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

impl fmt::Debug for InstanceOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceOrigin({})", self.origin)
    }
}

/// Which servers users may connect to, from a per-instance provider's configuration table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InstancePolicy {
    /// Accept `http` origins and IP addresses (loopback test servers). Never in production.
    #[serde(default)]
    pub allow_insecure_instances: bool,
    /// When not empty, only these host names (and their subdomains) are accepted.
    #[serde(default)]
    pub allowed_instances: Vec<String>,
    /// Host names (and their subdomains) that are refused.
    #[serde(default)]
    pub blocked_instances: Vec<String>,
}

impl InstancePolicy {
    /// Reads the policy keys from a provider table's extra settings.
    pub fn from_settings(id: &str, extra: &std::collections::BTreeMap<String, serde_json::Value>) -> Result<Self> {
        let keys = ["allow_insecure_instances", "allowed_instances", "blocked_instances"];
        let subset: serde_json::Map<_, _> =
            extra.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut policy: Self = serde_json::from_value(serde_json::Value::Object(subset))
            .map_err(|e| Error::Config(format!("[providers.{id}]: instance settings: {e}")))?;
        for list in [&mut policy.allowed_instances, &mut policy.blocked_instances] {
            for name in list.iter_mut() {
                *name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            }
        }
        Ok(policy)
    }

    /// Parses `input` ([`InstanceOrigin::parse`]) and applies the allow and block lists.
    pub fn check(&self, input: &str) -> Result<InstanceOrigin> {
        let origin = InstanceOrigin::parse(input, self.allow_insecure_instances)?;
        let name = origin.host_name();
        let matches = |entry: &String| name == entry || name.ends_with(&format!(".{entry}"));
        if self.blocked_instances.iter().any(matches) {
            return Err(Error::InvalidInstance(format!("the server {} is not accepted here", origin.host())));
        }
        if !self.allowed_instances.is_empty() && !self.allowed_instances.iter().any(matches) {
            return Err(Error::InvalidInstance(format!(
                "the server {} is not one of the servers this application accepts",
                origin.host()
            )));
        }
        Ok(origin)
    }
}

/// The client credentials a server issued when a provider registered on it
/// ([`Provider::register_client`](crate::Provider::register_client)). `Debug` redacts the secret.
#[derive(Clone)]
pub struct RegisteredClient {
    /// The client id.
    pub client_id: String,
    /// The client secret, when the server issued one.
    pub client_secret: Option<SecretString>,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A client registered on one server for one redirect URI, as stored. `Debug` redacts the
/// secret.
#[derive(Clone)]
pub struct ClientRegistration {
    /// Row id.
    pub id: Uuid,
    /// The configured provider.
    pub provider: ProviderId,
    /// The server.
    pub instance: InstanceOrigin,
    /// The redirect URI registered (`{public_url}/callback/{provider}`).
    pub redirect_uri: Url,
    /// Scopes registered; flows may request these or fewer.
    pub scopes: Vec<String>,
    /// The credentials.
    pub client: RegisteredClient,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("instance", &self.instance)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("scopes", &self.scopes)
            .field("client", &self.client)
            .finish()
    }
}

/// Client registrations on the servers of per-instance providers.
///
/// Implementations seal the client secret like every other secret.
#[async_trait]
pub trait ClientRegistrationStore: Send + Sync {
    /// The registration for (provider, instance, redirect URI), if any.
    async fn client_registration(
        &self,
        provider: &ProviderId,
        instance: &InstanceOrigin,
        redirect_uri: &Url,
    ) -> Result<Option<ClientRegistration>>;

    /// Stores `registration` unless one exists for the same (provider, instance, redirect URI),
    /// atomically across processes, and returns the one stored: this one, or the one that was
    /// there first (whose credentials every caller must then use).
    async fn insert_client_registration(&self, registration: &ClientRegistration) -> Result<ClientRegistration>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_normalised_to_origins() {
        for (input, origin, host) in [
            ("mastodon.social", "https://mastodon.social", "mastodon.social"),
            ("  Mastodon.SOCIAL ", "https://mastodon.social", "mastodon.social"),
            ("https://mastodon.social/", "https://mastodon.social", "mastodon.social"),
            ("example.org:8443", "https://example.org:8443", "example.org:8443"),
            ("https://example.org:443", "https://example.org", "example.org"),
            ("bücher.example", "https://xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            let i = InstanceOrigin::parse(input, false).unwrap();
            assert_eq!((i.as_str(), i.host()), (origin, host), "{input}");
        }
        assert_eq!(InstanceOrigin::parse("example.org:8443", false).unwrap().host_name(), "example.org");
    }

    #[test]
    fn anything_but_an_origin_is_refused() {
        for bad in [
            "",
            "https://mastodon.social/@alice",
            "mastodon.social/path",
            "https://user@mastodon.social",
            "https://user:pw@mastodon.social",
            "mastodon.social?x=1",
            "mastodon.social#frag",
            "http://mastodon.social",
            "ftp://mastodon.social",
            "javascript:alert(1)",
            "localhost",
            "localhost:3000",
            "127.0.0.1",
            "[::1]:8080",
            "intranet",
            "masto don.social",
            "mastodon.social\nevil.example",
        ] {
            let e = InstanceOrigin::parse(bad, false).expect_err(bad);
            assert_eq!(e.code(), "invalid_instance", "{bad}");
        }
    }

    #[test]
    fn insecure_instances_are_opt_in() {
        let i = InstanceOrigin::parse("http://127.0.0.1:4567", true).unwrap();
        assert_eq!((i.as_str(), i.host(), i.host_name()), ("http://127.0.0.1:4567", "127.0.0.1:4567", "127.0.0.1"));
        assert!(InstanceOrigin::parse("http://127.0.0.1:4567", false).is_err());
    }

    #[test]
    fn allow_and_block_lists_match_hosts_and_subdomains() {
        let policy = InstancePolicy {
            allowed_instances: vec!["example.org".into()],
            blocked_instances: vec!["bad.example.org".into()],
            ..Default::default()
        };
        assert!(policy.check("example.org").is_ok());
        assert!(policy.check("social.example.org").is_ok());
        assert!(policy.check("x.bad.example.org").is_err());
        assert!(policy.check("notexample.org").is_err());
        assert!(policy.check("mastodon.social").is_err());
        let open = InstancePolicy { blocked_instances: vec!["spam.example".into()], ..Default::default() };
        assert!(open.check("mastodon.social").is_ok());
        assert_eq!(open.check("spam.example").unwrap_err().code(), "invalid_instance");
    }

    #[test]
    fn policy_reads_from_the_provider_table() {
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("allow_insecure_instances".to_owned(), serde_json::json!(true));
        extra.insert("blocked_instances".to_owned(), serde_json::json!(["Spam.Example."]));
        extra.insert("client_name".to_owned(), serde_json::json!("App"));
        let p = InstancePolicy::from_settings("mastodon", &extra).unwrap();
        assert!(p.allow_insecure_instances);
        assert_eq!(p.blocked_instances, vec!["spam.example".to_owned()]);
        extra.insert("allowed_instances".to_owned(), serde_json::json!("not a list"));
        assert!(InstancePolicy::from_settings("mastodon", &extra).is_err());
    }
}
