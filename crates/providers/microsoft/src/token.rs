//! Entra's token error answers (the requests are the core's [`tether_core::request_tokens`]).

use tether_core::ProviderErrorKind;
use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;

/// [`classify_error`] for a raw answer body, as [`tether_core::request_tokens`] hands it over.
pub(crate) fn classify(status: StatusCode, body: &[u8]) -> (ProviderErrorKind, String) {
    let doc = tether_core::serde_json::from_slice::<Value>(body).ok();
    classify_error(status, doc.as_ref())
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
    fn raw_answers_are_read_before_classifying() {
        let body = entra("invalid_grant", 700_082, "The refresh token has expired due to inactivity.").to_string();
        let (kind, message) = classify(StatusCode::BAD_REQUEST, body.as_bytes());
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("AADSTS700082"), "{message}");
        let (kind, message) = classify(StatusCode::FORBIDDEN, b"<html>blocked</html>");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(!message.contains("html"), "no body in messages: {message}");
    }
}
