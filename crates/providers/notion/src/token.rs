//! JSON requests to Notion's OAuth endpoints (`/v1/oauth/token`, `/v1/oauth/revoke`) and
//! Notion's error answers.

use std::time::{Duration, SystemTime};

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::{Map, Value};
use tether_core::{
    ClientAuth, Error, ExposeSecret, ProviderContext, ProviderErrorKind, Result, SecretString, TokenSet, Url,
};

/// POSTs `body` (JSON) to the token endpoint and reads the token response.
pub(crate) async fn request(ctx: &ProviderContext<'_>, body: &Value, previous: Option<&TokenSet>) -> Result<TokenSet> {
    let doc = post(ctx, &ctx.settings.token_url, body).await?;
    parse_token_response(&doc, previous).ok_or_else(|| {
        Error::provider(
            ctx.id.as_str(),
            ProviderErrorKind::Protocol,
            "token endpoint answered something that is not a token response",
        )
    })
}

/// POSTs `body` as JSON with the client's credentials (HTTP Basic, or `client_id` and
/// `client_secret` in the body when `client_auth = "post"`) and `Notion-Version`; answers the
/// JSON document of a 2xx answer.
pub(crate) async fn post(ctx: &ProviderContext<'_>, url: &Url, body: &Value) -> Result<Value> {
    let id = ctx.id.as_str();
    let settings = ctx.settings;
    let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
    let mut body = body.clone();
    let mut request = ctx
        .http
        .post(url.clone())
        .header("Accept", "application/json")
        .header("Notion-Version", super::version(settings));
    match (settings.client_auth, &mut body) {
        (ClientAuth::Post, Value::Object(fields)) => {
            fields.insert("client_id".into(), Value::String(settings.client_id.clone()));
            if let Some(secret) = secret {
                fields.insert("client_secret".into(), Value::String(secret.to_owned()));
            }
        }
        _ => request = request.basic_auth(&settings.client_id, secret),
    }
    let answer = tether_core::send_request(ctx, request.json(&body)).await?;
    match answer.json() {
        Some(doc) if answer.status.is_success() => Ok(doc),
        _ => {
            let (kind, message) = classify_error(answer.status, &answer.body, answer.retry_after);
            Err(Error::provider(id, kind, format!("{} {message}", url.path())))
        }
    }
}

/// A failed answer, classified: `invalid_grant` (Notion's `code` or RFC 6749's `error`) is a
/// dead grant, and so is a 401 `unauthorized` of the API (the token no longer works); 5xx,
/// 429 and Notion's `rate_limited`/`service_unavailable` are worth a retry; anything else is
/// refused. The message keeps the status, the code and a short message, never the body.
pub(crate) fn classify_error(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> (ProviderErrorKind, String) {
    let doc = tether_core::serde_json::from_slice::<Value>(body).ok();
    let field =
        |k: &str| doc.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str).map(|s| tether_core::printable(s, 200));
    let code = field("code").or_else(|| field("error"));
    let message = field("message").or_else(|| field("error_description"));
    let kind = match code.as_deref() {
        _ if tether_core::is_temporary_status(status) => ProviderErrorKind::Temporary { retry_after },
        Some("rate_limited" | "service_unavailable" | "internal_server_error") => {
            ProviderErrorKind::Temporary { retry_after }
        }
        Some("invalid_grant") => ProviderErrorKind::InvalidGrant,
        // From the API, a 401 `unauthorized` means the token no longer works; from the OAuth
        // endpoints it means the client's credentials are wrong (configuration, not the user).
        Some("unauthorized") if status == StatusCode::UNAUTHORIZED && doc.as_ref().is_some_and(is_api_error) => {
            ProviderErrorKind::InvalidGrant
        }
        None if status.is_success() => ProviderErrorKind::Protocol,
        _ => ProviderErrorKind::Rejected,
    };
    let detail = match (code, message) {
        (Some(code), Some(message)) => format!(", `{code}`: {message}"),
        (Some(code), None) => format!(", `{code}`"),
        _ => String::new(),
    };
    (kind, format!("answered HTTP {status}{detail}"))
}

/// Whether a 401 document is the API's (bearer token refused) rather than the OAuth
/// endpoints' (client refused): the API's are `{"object":"error",…,"message":"API token is
/// invalid."}`.
fn is_api_error(doc: &Value) -> bool {
    doc.get("object").and_then(Value::as_str) == Some("error")
        && doc.get("message").and_then(Value::as_str).is_some_and(|m| m.contains("API token"))
}

/// Reads a token response. Keeps the previous refresh token and scopes when the response does
/// not repeat them; the installation's fields (`bot_id`, `workspace_id`, `workspace_name`,
/// `workspace_icon`, `owner`, `duplicated_template_id`) go to [`TokenSet::extra`].
pub(crate) fn parse_token_response(doc: &Value, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let obj = doc.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let refresh_token = obj
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|rt| SecretString::from(rt.to_owned()))
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let expires_at = tether_core::lenient_u64(obj.get("expires_in"))
        .and_then(|secs| SystemTime::now().checked_add(Duration::from_secs(secs)))
        .map(Into::into);
    let mut extra: Map<String, Value> = obj.clone();
    extra.retain(|k, _| !k.contains("token") && !k.contains("secret") && k != "expires_in" && k != "request_id");
    // A refresh answer may not repeat the installation: keep what the authorization said.
    if let Some(previous) = previous {
        for (k, v) in &previous.extra {
            extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(TokenSet {
        access_token: SecretString::from(access_token.to_owned()),
        token_type: obj.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase(),
        refresh_token,
        token_secret: None,
        expires_at,
        refresh_token_expires_at: None,
        // Notion has no scopes: the user picks the pages the integration may reach.
        scopes: previous.and_then(|p| p.scopes.clone()),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;

    #[test]
    fn the_code_exchange_answer_describes_the_installation() {
        let doc = json!({
            "access_token": "ntn_4b7", "token_type": "bearer", "refresh_token": "nrt_9c1",
            "bot_id": "16d84278-ab0e-484c-9bdd-b35da3bd8905", "workspace_name": "Acme Corp",
            "workspace_icon": "https://s3.example/icon.png", "workspace_id": "2b1a6e0c-3f4d-4c5e-8a9b-0c1d2e3f4a5b",
            "owner": {"type": "user", "user": {"object": "user", "id": "6794760a-1f15-45cd-9c65-0dfe42f5135a"}},
            "duplicated_template_id": null, "request_id": "9f1e2d3c-0000-4000-8000-000000000000"
        });
        let t = parse_token_response(&doc, None).unwrap();
        assert_eq!(t.access_token.expose_secret(), "ntn_4b7");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "nrt_9c1");
        assert!(t.expires_at.is_none(), "Notion access tokens carry no expiry");
        assert_eq!(t.extra["bot_id"], "16d84278-ab0e-484c-9bdd-b35da3bd8905");
        assert_eq!(t.extra["workspace_name"], "Acme Corp");
        assert!(t.extra.contains_key("owner") && !t.extra.contains_key("request_id"));
        assert!(!t.extra.keys().any(|k| k.contains("token")), "{:?}", t.extra.keys());
    }

    #[test]
    fn a_refresh_answer_replaces_the_refresh_token_and_keeps_the_installation() {
        let mut previous = TokenSet::bearer("ntn_old");
        previous.refresh_token = Some(SecretString::from("nrt_old".to_owned()));
        previous.extra.insert("workspace_name".into(), json!("Acme Corp"));
        let t = parse_token_response(&json!({"access_token": "ntn_new", "refresh_token": "nrt_new"}), Some(&previous))
            .unwrap();
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "nrt_new");
        assert_eq!(t.extra["workspace_name"], "Acme Corp");
        let t = parse_token_response(&json!({"access_token": "ntn_new", "expires_in": 3600}), Some(&previous)).unwrap();
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "nrt_old");
        assert!(t.expires_at.is_some());
        assert!(parse_token_response(&json!({"object": "error", "code": "invalid_grant"}), None).is_none());
    }

    #[test]
    fn errors_are_classified_in_notions_format_and_rfc_6749s() {
        let notion = br#"{"object":"error","status":400,"code":"invalid_grant","message":"Invalid code: this code has been revoked.","request_id":"x"}"#;
        let (kind, message) = classify_error(StatusCode::BAD_REQUEST, notion, None);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert_eq!(
            message,
            "answered HTTP 400 Bad Request, `invalid_grant`: Invalid code: this code has been revoked."
        );
        let rfc = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        assert_eq!(classify_error(StatusCode::BAD_REQUEST, rfc, None).0, ProviderErrorKind::InvalidGrant);
        let client = br#"{"object":"error","status":401,"code":"unauthorized","message":"Invalid client."}"#;
        assert_eq!(classify_error(StatusCode::UNAUTHORIZED, client, None).0, ProviderErrorKind::Rejected);
        let dead = br#"{"object":"error","status":401,"code":"unauthorized","message":"API token is invalid."}"#;
        assert_eq!(classify_error(StatusCode::UNAUTHORIZED, dead, None).0, ProviderErrorKind::InvalidGrant);
        let version = br#"{"object":"error","status":400,"code":"missing_version","message":"Notion-Version header failed validation."}"#;
        assert_eq!(classify_error(StatusCode::BAD_REQUEST, version, None).0, ProviderErrorKind::Rejected);
        let retry = Some(Duration::from_secs(2));
        let limited = br#"{"object":"error","status":429,"code":"rate_limited","message":"slow down"}"#;
        assert_eq!(
            classify_error(StatusCode::TOO_MANY_REQUESTS, limited, retry).0,
            ProviderErrorKind::Temporary { retry_after: retry }
        );
        let (kind, message) = classify_error(StatusCode::BAD_GATEWAY, b"<html>", None);
        assert_eq!(kind, ProviderErrorKind::Temporary { retry_after: None });
        assert_eq!(message, "answered HTTP 502 Bad Gateway");
    }
}
