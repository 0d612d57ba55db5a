//! [`BlueskyProvider`]: the atproto OAuth profile as a Tether provider.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tether_core::{
    AccountIdentity, ApiAnswer, AuthorizationHeaders, AuthorizationRequest, AuthorizationResponse, AuthorizationStart,
    ClientAuth, DpopNonces, EsKey, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderId,
    ProviderSettings, ProviderSpec, RevokeOutcome, SecretString, TokenSet, Url, async_trait, dpop_ath, dpop_proof,
    is_use_dpop_nonce, serde_json,
};

use crate::client::{BlueskySettings, CLIENT_METADATA_DOCUMENT, ClientIdentity, JWKS_DOCUMENT, scope_string};
use crate::discovery::AuthorizationServer;
use crate::identity::Did;
use crate::oauth::{push_authorization_request, request_tokens, resource_get, revoke};
use crate::resolver::{Resolver, ResolverConfig};
use crate::{PROVIDER_ID, ResolvedIdentity};

/// Bluesky's defaults. The endpoints are those of the `bsky.social` entryway, for the provider
/// table only: every flow discovers the authorization server of the user's own PDS.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://bsky.social/oauth/authorize",
    token_url: "https://bsky.social/oauth/token",
    revoke_url: Some("https://bsky.social/oauth/revoke"),
    default_scopes: &["atproto", "transition:generic"],
    pkce: PkceMode::S256,
    client_auth: ClientAuth::PrivateKeyJwt,
    account_id_field: "did",
    account_name_field: "handle",
    requires_client_secret: false,
    requires_client_id: false,
    login_hint_prompt: Some("Your Bluesky handle (like alice.bsky.social) or DID"),
    ..ProviderSpec::oauth2(PROVIDER_ID, "Bluesky")
};

/// The Bluesky (AT Protocol) provider. It keeps the servers' DPoP nonces (per origin) and a
/// resolver for the configured identity settings.
pub struct BlueskyProvider {
    nonces: DpopNonces,
    resolver: Mutex<Option<(ResolverConfig, Arc<Resolver>)>>,
}

impl Default for BlueskyProvider {
    fn default() -> Self {
        BlueskyProvider { nonces: DpopNonces::new(DpopNonces::DEFAULT_CAPACITY), resolver: Mutex::new(None) }
    }
}

impl std::fmt::Debug for BlueskyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueskyProvider").field("nonces", &self.nonces.len()).finish_non_exhaustive()
    }
}

/// What a flow keeps (sealed) between the pushed authorization request and the callback.
#[derive(Serialize, Deserialize)]
struct FlowState {
    verifier: String,
    /// The flow's DPoP key (private JWK); it becomes the connection's key.
    dpop_key: String,
    issuer: String,
    token_endpoint: Url,
    revocation_endpoint: Option<Url>,
    /// The account the user named (`None` when they chose it at the server).
    expected_did: Option<String>,
    handle: Option<String>,
    pds: Option<Url>,
    client_kid: Option<String>,
}

/// What a connection keeps besides its tokens (non-secret, in the token extras).
#[derive(Serialize, Deserialize)]
struct SessionInfo {
    did: String,
    handle: Option<String>,
    pds: Url,
    issuer: String,
    token_endpoint: Url,
    revocation_endpoint: Option<Url>,
    client_kid: Option<String>,
}

impl SessionInfo {
    fn from_tokens(tokens: &TokenSet) -> tether_core::Result<Self> {
        serde_json::from_value(serde_json::Value::Object(tokens.extra.clone())).map_err(|e| {
            tether_core::Error::Store(format!("the Bluesky session of this connection is incomplete ({e})"))
        })
    }

    fn into_extra(self) -> tether_core::Result<serde_json::Map<String, serde_json::Value>> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(tether_core::Error::Store("encoding a Bluesky session".to_owned())),
        }
    }
}

fn protocol(message: impl Into<String>) -> tether_core::Error {
    tether_core::Error::provider(PROVIDER_ID, ProviderErrorKind::Protocol, message)
}

fn rejected(message: impl Into<String>) -> tether_core::Error {
    tether_core::Error::provider(PROVIDER_ID, ProviderErrorKind::Rejected, message)
}

/// The connection's DPoP key, sealed at rest in the token secret column.
fn dpop_key(tokens: &TokenSet) -> tether_core::Result<EsKey> {
    let sealed = tokens
        .token_secret
        .as_ref()
        .ok_or_else(|| tether_core::Error::Store("this Bluesky connection has no DPoP key".to_owned()))?;
    EsKey::from_secret_jwk(sealed.expose_secret())
        .map_err(|e| tether_core::Error::Store(format!("the DPoP key of this connection is unusable: {e}")))
}

/// RFC 7636 S256: BASE64URL(SHA-256(verifier)), the same computation as a DPoP `ath`.
fn pkce_challenge(verifier: &str) -> String {
    dpop_ath(verifier)
}

impl BlueskyProvider {
    /// The resolver for `config`, built once and reused while the configuration stays the same.
    fn resolver(&self, config: &ResolverConfig) -> tether_core::Result<Arc<Resolver>> {
        let mut cached = self.resolver.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, r)) = cached.as_ref()
            && c == config
        {
            return Ok(r.clone());
        }
        let resolver = Arc::new(Resolver::new(config.clone())?);
        *cached = Some((config.clone(), resolver.clone()));
        Ok(resolver)
    }

    /// The authorization server a flow starts at: the one of the named account's PDS, or
    /// without a hint the configured default server (an authorization server, or a PDS naming
    /// one).
    async fn starting_server(
        &self,
        resolver: &Resolver,
        settings: &BlueskySettings,
        login_hint: Option<&str>,
    ) -> tether_core::Result<(AuthorizationServer, Option<ResolvedIdentity>)> {
        match login_hint {
            Some(hint) => {
                let identity = resolver.resolve_identity(hint).await?;
                let server = resolver.discover(&identity.pds).await?;
                Ok((server, Some(identity)))
            }
            None => match resolver.authorization_server(&settings.default_server).await {
                Ok(server) => Ok((server, None)),
                Err(first) => match resolver.discover(&settings.default_server).await {
                    Ok(server) => Ok((server, None)),
                    Err(_) => Err(first.into()),
                },
            },
        }
    }
}

/// Refuses a server that does not offer the client authentication Tether uses.
fn check_client_auth(server: &AuthorizationServer, settings: &BlueskySettings) -> tether_core::Result<()> {
    let (method, alg_ok) = match settings.client {
        ClientIdentity::Confidential { .. } => {
            ("private_key_jwt", server.token_endpoint_auth_signing_algs.iter().any(|a| a == "ES256"))
        }
        ClientIdentity::Loopback { .. } => ("none", true),
    };
    if !server.token_endpoint_auth_methods.iter().any(|m| m == method) || !alg_ok {
        return Err(rejected(format!("the authorization server {} does not accept {method} clients", server.issuer)));
    }
    Ok(())
}

#[async_trait]
impl Provider for BlueskyProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    fn check_settings(
        &self,
        id: &ProviderId,
        settings: &ProviderSettings,
        redirect_uri: &Url,
    ) -> tether_core::Result<()> {
        BlueskySettings::from_parts(id, settings, redirect_uri).map(|_| ())
    }

    fn authorization_url(
        &self,
        ctx: &ProviderContext<'_>,
        request: &AuthorizationRequest<'_>,
    ) -> tether_core::Result<Url> {
        let _ = (ctx, request);
        Err(tether_core::Error::provider(
            PROVIDER_ID,
            ProviderErrorKind::Unsupported,
            "Bluesky authorization requests are pushed (PAR): use start_authorization",
        ))
    }

    async fn start_authorization(
        &self,
        ctx: &ProviderContext<'_>,
        request: &AuthorizationRequest<'_>,
    ) -> tether_core::Result<AuthorizationStart> {
        let settings = BlueskySettings::from_context(ctx)?;
        let resolver = self.resolver(&settings.resolver)?;
        let (server, identity) = self.starting_server(&resolver, &settings, request.login_hint).await?;
        check_client_auth(&server, &settings)?;
        let verifier = request.pkce_verifier.ok_or_else(|| {
            tether_core::Error::Config("Bluesky needs PKCE; do not set providers.bluesky.pkce = false".into())
        })?;
        let key = EsKey::generate().map_err(|e| protocol(format!("generating a DPoP key: {e}")))?;
        let kid = settings.signing_kid();
        let scope = scope_string(request.scopes);
        let challenge = pkce_challenge(verifier.expose_secret());
        let request_uri = push_authorization_request(ctx.http, &self.nonces, &key, &server.par_endpoint, || {
            let mut form = settings.client_auth(&server.issuer, kid)?;
            form.extend([
                ("response_type", "code".to_owned()),
                ("redirect_uri", ctx.redirect_uri.to_string()),
                ("state", request.state.to_owned()),
                ("scope", scope.clone()),
                ("code_challenge", challenge.clone()),
                ("code_challenge_method", "S256".to_owned()),
            ]);
            if let Some(hint) = request.login_hint {
                form.push(("login_hint", hint.to_owned()));
            }
            Ok(form)
        })
        .await?;
        let mut url = server.authorization_endpoint.clone();
        url.query_pairs_mut().append_pair("client_id", settings.client_id()).append_pair("request_uri", &request_uri);
        let state = FlowState {
            verifier: verifier.expose_secret().to_owned(),
            dpop_key: key.to_secret_jwk().expose_secret().to_owned(),
            issuer: server.issuer.clone(),
            token_endpoint: server.token_endpoint.clone(),
            revocation_endpoint: server.revocation_endpoint.clone(),
            expected_did: identity.as_ref().map(|i| i.did.to_string()),
            handle: identity.as_ref().and_then(|i| i.handle.as_ref().map(ToString::to_string)),
            pds: identity.map(|i| i.pds),
            client_kid: kid.map(str::to_owned),
        };
        let flow_secret = serde_json::to_string(&state).map_err(|e| protocol(format!("encoding the flow: {e}")))?;
        Ok(AuthorizationStart { url, flow_secret: Some(SecretString::from(flow_secret)) })
    }

    async fn finish_authorization(
        &self,
        ctx: &ProviderContext<'_>,
        response: &AuthorizationResponse<'_>,
        flow_secret: Option<&SecretString>,
    ) -> tether_core::Result<TokenSet> {
        let flow: FlowState = flow_secret
            .and_then(|s| serde_json::from_str(s.expose_secret()).ok())
            .ok_or_else(|| protocol("this flow has no Bluesky state"))?;
        // RFC 9207: the answer must come from the server the flow started at.
        match response.issuer {
            Some(iss) if iss == flow.issuer => {}
            Some(iss) => {
                return Err(rejected(format!(
                    "the callback came from issuer `{}`, not {}",
                    iss.chars().take(100).collect::<String>(),
                    flow.issuer
                )));
            }
            None => return Err(protocol(format!("the callback from {} has no `iss`", flow.issuer))),
        }
        let settings = BlueskySettings::from_context(ctx)?;
        let key = EsKey::from_secret_jwk(&flow.dpop_key).map_err(|e| protocol(format!("the flow's DPoP key: {e}")))?;
        let issued = request_tokens(ctx.http, &self.nonces, &key, &flow.token_endpoint, "code exchange", || {
            let mut form = settings.client_auth(&flow.issuer, flow.client_kid.as_deref())?;
            form.extend([
                ("grant_type", "authorization_code".to_owned()),
                ("code", response.code.to_owned()),
                ("redirect_uri", ctx.redirect_uri.to_string()),
                ("code_verifier", flow.verifier.clone()),
            ]);
            Ok(form)
        })
        .await?;
        let did = Did::parse(&issued.sub).map_err(|e| protocol(format!("the token answer's `sub`: {e}")))?;
        // The account must be the one the user named; and the server must be the authority of
        // the account it vouches for: the DID's PDS names this issuer.
        let (handle, pds) = match (&flow.expected_did, flow.pds) {
            (Some(expected), Some(pds)) => {
                if expected != did.as_str() {
                    return Err(rejected(format!("signed in as {did}, not the account named ({expected})")));
                }
                (flow.handle, pds)
            }
            _ => {
                let resolver = self.resolver(&settings.resolver)?;
                let identity = resolver.resolve_identity(did.as_str()).await?;
                let server = resolver.discover(&identity.pds).await?;
                if server.issuer != flow.issuer {
                    return Err(rejected(format!(
                        "{did} is served by {}, not by {} that issued the tokens",
                        server.issuer, flow.issuer
                    )));
                }
                (identity.handle.map(|h| h.to_string()), identity.pds)
            }
        };
        let mut tokens = issued.tokens;
        tokens.token_secret = Some(SecretString::from(flow.dpop_key));
        tokens.extra = SessionInfo {
            did: did.to_string(),
            handle,
            pds,
            issuer: flow.issuer,
            token_endpoint: flow.token_endpoint,
            revocation_endpoint: flow.revocation_endpoint,
            client_kid: flow.client_kid,
        }
        .into_extra()?;
        Ok(tokens)
    }

    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> tether_core::Result<TokenSet> {
        let session = SessionInfo::from_tokens(current)?;
        let refresh_token = tether_core::current_refresh_token(ctx, current)?;
        let key = dpop_key(current)?;
        let settings = BlueskySettings::from_context(ctx)?;
        let issued = request_tokens(ctx.http, &self.nonces, &key, &session.token_endpoint, "refresh", || {
            let mut form = settings.client_auth(&session.issuer, session.client_kid.as_deref())?;
            form.extend([
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token.expose_secret().to_owned()),
            ]);
            Ok(form)
        })
        .await?;
        if issued.sub != session.did {
            return Err(protocol(format!("the refresh answer is for {}, not {}", issued.sub, session.did)));
        }
        let mut tokens = issued.tokens;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = current.refresh_token.clone();
        }
        tokens.token_secret = current.token_secret.clone();
        tokens.extra = current.extra.clone();
        Ok(tokens)
    }

    /// Asks the account's PDS whose session the token is (`com.atproto.server.getSession`, with
    /// DPoP): a liveness check (a refused token is `InvalidGrant`, so `verify` renews it or
    /// marks the connection `reauth_required`) and a check that it is the connection's DID. The
    /// name is the handle verified during the flow (the PDS's claim alone proves nothing).
    async fn fetch_account(
        &self,
        ctx: &ProviderContext<'_>,
        tokens: &TokenSet,
    ) -> tether_core::Result<AccountIdentity> {
        let session = SessionInfo::from_tokens(tokens)?;
        let url = session
            .pds
            .join("xrpc/com.atproto.server.getSession")
            .map_err(|e| protocol(format!("the PDS URL: {e}")))?;
        let answer = resource_get(ctx.http, &self.nonces, &dpop_key(tokens)?, &url, &tokens.access_token).await?;
        let kind = match answer.status {
            200 => None,
            401 | 403 => Some(ProviderErrorKind::InvalidGrant),
            s if s == 429 || s >= 500 => Some(ProviderErrorKind::Temporary { retry_after: None }),
            _ => Some(ProviderErrorKind::Protocol),
        };
        if let Some(kind) = kind {
            let message = format!("the PDS answered getSession with HTTP {}", answer.status);
            return Err(tether_core::Error::provider(PROVIDER_ID, kind, message));
        }
        let did = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("did").and_then(|d| d.as_str()).map(str::to_owned))
            .ok_or_else(|| protocol("the PDS's getSession answer names no DID"))?;
        if did != session.did {
            return Err(protocol(format!("the PDS says the token is {did}'s, not {}'s", session.did)));
        }
        Ok(AccountIdentity { name: Some(session.handle.unwrap_or_else(|| session.did.clone())), id: session.did })
    }

    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> tether_core::Result<RevokeOutcome> {
        let session = SessionInfo::from_tokens(tokens)?;
        let Some(endpoint) = &session.revocation_endpoint else { return Ok(RevokeOutcome::NotSupported) };
        let key = dpop_key(tokens)?;
        let settings = BlueskySettings::from_context(ctx)?;
        // Revoking the refresh token ends the whole session at the server.
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        revoke(ctx.http, &self.nonces, &key, endpoint, token, || {
            settings.client_auth(&session.issuer, session.client_kid.as_deref())
        })
        .await?;
        Ok(RevokeOutcome::Revoked)
    }

    fn api_base_url(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Option<Url> {
        let _ = ctx;
        tokens.extra.get("pds").and_then(|v| v.as_str()).and_then(|s| Url::parse(s).ok())
    }

    fn authorize_api_request(
        &self,
        ctx: &ProviderContext<'_>,
        tokens: &TokenSet,
        method: &str,
        url: &Url,
    ) -> tether_core::Result<AuthorizationHeaders> {
        let _ = ctx;
        let key = dpop_key(tokens)?;
        let token = tokens.access_token.expose_secret();
        let nonce = self.nonces.get(url);
        let proof = dpop_proof(&key, method, url.as_str(), nonce.as_deref(), Some(token))
            .map_err(|e| protocol(format!("signing a DPoP proof: {e}")))?;
        Ok(vec![("Authorization", format!("DPoP {token}")), ("DPoP", proof)])
    }

    fn api_answer(
        &self,
        ctx: &ProviderContext<'_>,
        url: &Url,
        status: u16,
        headers: &tether_core::http::HeaderMap,
    ) -> ApiAnswer {
        let _ = ctx;
        let learnt = self.nonces.update_from_headers(url, headers);
        if status == 401 && learnt && is_use_dpop_nonce(status, headers, &[]) {
            ApiAnswer::RetryWithFreshProof
        } else {
            ApiAnswer::Done
        }
    }

    fn public_document(&self, ctx: &ProviderContext<'_>, name: &str) -> Option<tether_core::Result<serde_json::Value>> {
        let settings = match BlueskySettings::from_context(ctx) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        match name {
            CLIENT_METADATA_DOCUMENT => Some(Ok(settings.client_metadata(ctx))),
            JWKS_DOCUMENT => Some(Ok(settings.jwks())),
            _ => None,
        }
    }
}
