//! Token requests to `/{tenant}/oauth2/v2.0/token` and Entra's error answers.

use std::time::{Duration, SystemTime};

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::{Map, Value};
use tether_core::{
    ClientAuth, Error, ExposeSecret, ProviderContext, ProviderErrorKind, Result, SecretString, TokenSet,
};

/// POSTs a token request with the configured client authentication and reads the answer.
pub(crate) async fn request(
    ctx: &ProviderContext<'_>,
    form: &[(&str, &str)],
    previous: Option<&TokenSet>,
) -> Result<TokenSet> {
    let id = ctx.id.as_str();
    let settings = ctx.settings;
    let mut form: Vec<(&str, &str)> = form.to_vec();
    form.push(("client_id", &settings.client_id));
    for (k, v) in &settings.extra_token_params {
        form.push((k, v));
    }
    let mut request = ctx.http.post(settings.token_url.clone()).header("Accept", "application/json");
    let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
    match (settings.client_auth, secret) {
        (ClientAuth::Basic, Some(secret)) => {
            // RFC 6749 section 2.3.1: form-encode the credentials before Basic encoding.
            request = request.basic_auth(form_encode(&settings.client_id), Some(form_encode(secret)));
        }
        (_, Some(secret)) => form.push(("client_secret", secret)),
        // A public client (mobile and desktop registrations): the client id alone.
        (_, None) => {}
    }
    let resp = request.form(&form).send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after },
            format!("token endpoint answered HTTP {status}"),
        ));
    }
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let doc: Option<Value> = tether_core::serde_json::from_slice(&body).ok();
    if status.is_success()
        && let Some(tokens) = doc.as_ref().and_then(|d| parse_token_response(d, previous))
    {
        return Ok(tokens);
    }
    let (kind, message) = classify_error(status, doc.as_ref());
    Err(Error::provider(id, kind, message))
}

/// A failed token request, classified. Everything that needs the user to sign in again is a
/// dead grant: `invalid_grant` (AADSTS70008 and 700082 expired, 50173 revoked by a password
/// change, 54005 code already used…), `interaction_required` (conditional access, MFA) and
/// `consent_required`. A wrong or expired client secret is the configuration's problem.
pub(crate) fn classify_error(status: StatusCode, doc: Option<&Value>) -> (ProviderErrorKind, String) {
    let field = |k: &str| doc.and_then(|d| d.get(k)).and_then(Value::as_str);
    let Some(error) = field("error").map(|e| clean(e, 60)) else {
        let kind = if status.is_success() { ProviderErrorKind::Protocol } else { ProviderErrorKind::Rejected };
        let what = if status.is_success() { "something that is not a token response" } else { "without an error code" };
        return (kind, format!("token endpoint answered HTTP {status} {what}"));
    };
    let aadsts = doc
        .and_then(|d| d.get("error_codes"))
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64);
    let kind = match error.as_str() {
        "invalid_grant" | "interaction_required" | "consent_required" | "login_required" => {
            ProviderErrorKind::InvalidGrant
        }
        "temporarily_unavailable" => ProviderErrorKind::Temporary { retry_after: None },
        _ => ProviderErrorKind::Rejected,
    };
    let description = field("error_description").map(summary).unwrap_or_default();
    let code = aadsts.map(|c| format!(" (AADSTS{c})")).unwrap_or_default();
    let hint = match aadsts {
        Some(7_000_215) => " — check providers.microsoft.client_secret (use the secret's Value, not its ID)",
        Some(7_000_222) => " — the client secret has expired: create a new one in the app registration",
        _ => "",
    };
    let description = if description.is_empty() { String::new() } else { format!(": {description}") };
    (kind, format!("token endpoint answered `{error}`{code}{description}{hint}"))
}

/// The useful part of an Entra error description: the `AADSTS…:` prefix (already reported),
/// the trace, correlation and timestamp lines and the control characters go.
fn summary(description: &str) -> String {
    let text = description.split(" Trace ID:").next().unwrap_or(description);
    let text = text.split("\r\n").next().unwrap_or(text);
    let text = match text.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("AADSTS") => rest,
        _ => text,
    };
    clean(text.trim(), 200)
}

/// Printable text, at most `max` characters (provider messages go into errors and events).
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A number of seconds given as a number or a string.
fn seconds(v: Option<&Value>) -> Option<Duration> {
    match v? {
        Value::Number(n) => n.as_u64().map(Duration::from_secs),
        Value::String(s) => s.trim().parse().ok().map(Duration::from_secs),
        _ => None,
    }
}

/// A point in time `d` from now, as a [`TokenSet`] stores it.
fn from_now<T: From<SystemTime>>(d: Duration) -> Option<T> {
    SystemTime::now().checked_add(d).map(T::from)
}

/// Reads a token response. Keeps the previous refresh token and scopes when the response does
/// not repeat them; non-secret extra fields (`ext_expires_in`) go to [`TokenSet::extra`], the
/// ID token is not kept.
pub(crate) fn parse_token_response(doc: &Value, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let obj = doc.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let new_refresh = obj.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    let refresh_token = new_refresh
        .map(|rt| SecretString::from(rt.to_owned()))
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let scopes = match obj.get("scope").and_then(Value::as_str) {
        Some(s) => Some(tether_core::oauth2_http::split_scopes(s)),
        None => previous.and_then(|p| p.scopes.clone()),
    };
    let mut extra: Map<String, Value> = obj.clone();
    extra.retain(|k, _| !k.contains("token") && !k.contains("secret") && k != "expires_in" && k != "scope");
    Some(TokenSet {
        access_token: SecretString::from(access_token.to_owned()),
        token_type: obj.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase(),
        refresh_token,
        token_secret: None,
        expires_at: seconds(obj.get("expires_in")).and_then(from_now),
        // Entra does not tell; the refresh token's life is sliding (90 days of inactivity).
        refresh_token_expires_at: None,
        scopes,
        extra,
    })
}

/// `application/x-www-form-urlencoded` encoding of one value (unreserved characters stay,
/// space is `+`, every other byte is `%XX`).
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;

    fn entra(error: &str, code: u64, description: &str) -> Value {
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: 1\r\nTimestamp: 2026-08-01 12:00:00Z"),
            "error_codes": [code], "timestamp": "2026-08-01 12:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333", "correlation_id": "1",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
        })
    }

    #[test]
    fn expired_revoked_and_interaction_required_grants_need_the_user() {
        let cases = [
            (
                "invalid_grant",
                70_008,
                "The provided authorization code or refresh token has expired due to inactivity.",
            ),
            ("invalid_grant", 700_082, "The refresh token has expired due to inactivity."),
            ("invalid_grant", 50_173, "The provided grant has expired due to it being revoked."),
            (
                "interaction_required",
                50_076,
                "Due to a configuration change made by your administrator, you must use multi-factor authentication.",
            ),
            ("consent_required", 65_001, "The user or administrator has not consented to use the application."),
        ];
        for (error, code, description) in cases {
            let (kind, message) = classify_error(StatusCode::BAD_REQUEST, Some(&entra(error, code, description)));
            assert_eq!(kind, ProviderErrorKind::InvalidGrant, "{error} {code}");
            assert!(message.contains(&format!("AADSTS{code}")) && message.contains(error), "{message}");
            assert!(!message.contains("Trace ID") && !message.contains('\n'), "{message}");
        }
        let (_, message) = classify_error(
            StatusCode::BAD_REQUEST,
            Some(&entra("invalid_grant", 70_008, "The refresh token has expired due to inactivity.")),
        );
        assert_eq!(
            message,
            "token endpoint answered `invalid_grant` (AADSTS70008): The refresh token has expired due to inactivity."
        );
    }

    #[test]
    fn client_secret_problems_are_not_the_users_and_say_what_to_fix() {
        let doc = entra("invalid_client", 7_000_215, "Invalid client secret provided.");
        let (kind, message) = classify_error(StatusCode::UNAUTHORIZED, Some(&doc));
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("client_secret"), "{message}");
        let doc = entra("invalid_client", 7_000_222, "The provided client secret keys for app are expired.");
        let (kind, message) = classify_error(StatusCode::UNAUTHORIZED, Some(&doc));
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("expired"), "{message}");
        let (kind, _) = classify_error(StatusCode::BAD_REQUEST, Some(&json!({"error": "temporarily_unavailable"})));
        assert!(matches!(kind, ProviderErrorKind::Temporary { .. }));
        let (kind, _) = classify_error(StatusCode::BAD_REQUEST, None);
        assert_eq!(kind, ProviderErrorKind::Rejected);
        let (kind, _) = classify_error(StatusCode::OK, Some(&json!({})));
        assert_eq!(kind, ProviderErrorKind::Protocol);
    }

    #[test]
    fn a_refresh_answer_replaces_the_refresh_token_and_drops_the_id_token() {
        let mut previous = TokenSet::bearer("EwB_old");
        previous.refresh_token = Some(SecretString::from("M.C5_old".to_owned()));
        let doc = json!({
            "token_type": "Bearer", "scope": "openid profile email User.Read", "expires_in": 4209,
            "ext_expires_in": 4209, "access_token": "EwB_new", "refresh_token": "M.C5_new", "id_token": "eyJ0eXAi.x.y"
        });
        let t = parse_token_response(&doc, Some(&previous)).unwrap();
        assert_eq!(t.access_token.expose_secret(), "EwB_new");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "M.C5_new");
        assert_eq!(t.token_type, "bearer");
        assert_eq!(t.scopes.unwrap(), ["openid", "profile", "email", "User.Read"]);
        assert!(t.expires_at.is_some());
        assert_eq!(t.extra.get("ext_expires_in"), Some(&json!(4209)));
        assert!(!t.extra.contains_key("id_token"));
        let t = parse_token_response(&json!({"access_token": "EwB_x", "expires_in": "3599"}), Some(&previous)).unwrap();
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "M.C5_old");
        assert!(parse_token_response(&json!({"error": "invalid_grant"}), None).is_none());
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("Abc8Q~x y+/"), "Abc8Q%7Ex+y%2B%2F");
    }
}
