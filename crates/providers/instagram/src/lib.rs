//! Instagram through the "Instagram API with Instagram Login" (Business Login for Instagram):
//! the token of a professional (Business or Creator) account, to publish media and read its
//! profile.
//!
//! Quirks handled here:
//! - the client id is the **Instagram App ID** (not the Meta App ID); id and secret go in the
//!   form body, no PKCE, comma-separated scopes;
//! - the code exchange (`POST https://api.instagram.com/oauth/access_token`) answers a
//!   short-lived token (one hour) and the account's `user_id`, either flat or wrapped in
//!   `{"data":[{…}]}` (both shapes are documented or used); the granted `permissions` become
//!   the connection's scopes. A `#_` Meta appends to the code is stripped;
//! - **no refresh token**: the short-lived token is traded at once for a long-lived one (60
//!   days) with `GET {api_base_url}access_token?grant_type=ig_exchange_token`, and the
//!   long-lived token is renewed with `GET {api_base_url}refresh_access_token?grant_type=ig_refresh_token`
//!   ahead of expiry. Instagram renews only a token that is **at least 24 hours old** and not
//!   expired: a forced refresh of a younger token is refused here (with the time it becomes
//!   renewable) instead of being sent; an expired token needs the user again;
//! - errors are Meta's Graph `{"error":{"message","type","code","error_subcode",…}}`, or
//!   `{"error_type","code","error_message"}` from `api.instagram.com`: code 190 (invalid or
//!   expired token, app removed) means the grant is dead; rate limits and transient errors are
//!   retried;
//! - the account is `GET /me?fields=user_id,username`: `user_id` is the professional account id
//!   (the one the content API and webhooks use), the name is `username`;
//! - Instagram Login tokens cannot be revoked through the API: disconnecting reports
//!   `revoked: false` with that reason (the user removes the app in Instagram's settings).
//!
//! The flow itself (exchange, renewal, Graph errors, no revocation) is
//! `tether-provider-meta-login`, shared with Threads; this crate describes Instagram in
//! [`PRODUCT`].
//!
//! Setup: see docs/providers/instagram.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::Duration;

use tether_core::{ClientAuth, PkceMode, ProviderSpec};
use tether_provider_meta_login::{MetaLoginProvider, MetaProduct};

pub use tether_provider_meta_login::LONG_LIVED_SINCE;

/// Instagram's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.instagram.com/oauth/authorize",
    token_url: "https://api.instagram.com/oauth/access_token",
    userinfo_url: Some("https://graph.instagram.com/v25.0/me?fields=user_id,username"),
    revoke_url: None,
    api_base_url: Some("https://graph.instagram.com/"),
    default_scopes: &["instagram_business_basic", "instagram_business_content_publish"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "user_id",
    account_name_field: "username",
    ..ProviderSpec::oauth2("instagram", "Instagram")
};

/// How old a long-lived token must be before Instagram renews it.
pub const MIN_RENEWAL_AGE: Duration = Duration::from_secs(24 * 3600);

/// Instagram in Meta's long-lived token login: `ig_exchange_token`, `ig_refresh_token`, no
/// revocation.
pub static PRODUCT: MetaProduct = MetaProduct {
    spec: &SPEC,
    name: "Instagram",
    exchange_grant: "ig_exchange_token",
    refresh_grant: "ig_refresh_token",
    min_renewal_age: MIN_RENEWAL_AGE,
    // Instagram documents one hour.
    short_lived: Duration::from_secs(3600),
    no_revocation: "Instagram has no endpoint to revoke Instagram Login tokens: the token stays valid until it \
                    expires unless the user removes the app in Instagram's settings (Apps and websites)",
};

/// The Instagram provider.
pub const PROVIDER: MetaLoginProvider = MetaLoginProvider::new(&PRODUCT);

tether_core::register_provider!(PROVIDER);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{
        AuthorizationRequest, Error, Provider, ProviderConfig, ProviderContext, ProviderErrorKind, ProviderId,
        ProviderSettings, SecretString, TokenSet, Url,
    };

    fn settings() -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("990602627938098".into()),
            client_secret: Some(SecretString::from("a1b2c3".to_owned())),
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("instagram", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
            .unwrap()
    }

    /// Runs `f` with a context on the default settings (no request is sent).
    fn with_ctx<T>(f: impl FnOnce(&ProviderContext<'_>) -> T) -> T {
        let (id, settings, http) =
            (ProviderId::parse("instagram").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/instagram").unwrap();
        f(&ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect })
    }

    #[test]
    fn authorization_url_has_comma_separated_scopes_and_no_pkce() {
        let verifier = SecretString::from("v".repeat(43));
        let url = with_ctx(|ctx| {
            let request = AuthorizationRequest {
                state: "st",
                scopes: &ctx.settings.scopes,
                pkce_verifier: Some(&verifier),
                login_hint: None,
            };
            PROVIDER.authorization_url(ctx, &request).unwrap()
        });
        assert_eq!(url.host_str(), Some("www.instagram.com"));
        assert_eq!(url.path(), "/oauth/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "990602627938098");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "instagram_business_basic,instagram_business_content_publish");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/instagram");
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("code_challenge"));
    }

    #[test]
    fn exchange_and_renewal_go_to_graph_instagram_with_the_ig_grants() {
        let short = TokenSet::bearer("IGAAshort");
        let (exchange, renewal) = with_ctx(|ctx| {
            (PROVIDER.exchange_request(ctx, &short).unwrap(), PROVIDER.renewal_request(ctx, &short).unwrap())
        });
        assert_eq!(
            exchange.url().as_str(),
            "https://graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret=a1b2c3&access_token=IGAAshort"
        );
        assert_eq!(
            renewal.url().as_str(),
            "https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token=IGAAshort"
        );
    }

    /// The output of a future that must finish without sending anything.
    fn ready<F: std::future::Future>(f: F) -> F::Output {
        match std::pin::pin!(f).poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("answered without a call"),
        }
    }

    #[test]
    fn refusals_speak_of_instagram() {
        let now = std::time::SystemTime::now();
        let mut young = TokenSet::bearer("IGAA");
        young.expires_at = Some((now + Duration::from_secs(60 * 86_400)).into());
        young
            .extra
            .insert(LONG_LIVED_SINCE.into(), json!(now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()));
        let refresh = with_ctx(|ctx| ready(PROVIDER.refresh(ctx, &young))).unwrap_err();
        let revoke = with_ctx(|ctx| ready(PROVIDER.revoke(ctx, &young))).unwrap_err();
        let Error::Provider { kind: ProviderErrorKind::Rejected, message, .. } = refresh else { panic!("{refresh:?}") };
        assert!(message.starts_with("Instagram renews a long-lived token only once it is 24 hours old"), "{message}");
        let Error::Provider { kind: ProviderErrorKind::Unsupported, message, .. } = revoke else {
            panic!("{revoke:?}")
        };
        assert_eq!(
            message,
            "Instagram has no endpoint to revoke Instagram Login tokens: the token stays valid until it expires \
             unless the user removes the app in Instagram's settings (Apps and websites)"
        );
    }
}
