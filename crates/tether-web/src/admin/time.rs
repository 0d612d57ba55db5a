//! Times for people: "in 42 min", "3 h ago", computed on the server.

use chrono::{DateTime, Utc};

/// `t` relative to `now`: "in 42 s", "in 42 min", "in 5 h", "in 3 days", "42 min ago", ...
pub(crate) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs.abs() < 5 {
        return "just now".to_owned();
    }
    let amount = magnitude(secs.unsigned_abs());
    if secs > 0 { format!("in {amount}") } else { format!("{amount} ago") }
}

fn magnitude(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// The exact time, for tooltips: `2026-11-22 18:00:00 UTC`.
pub(crate) fn exact(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How an access-token expiry reads, and its tone (`ok`, `warn`, `bad`, `muted`).
pub(crate) fn expiry(
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    margin: std::time::Duration,
) -> (String, &'static str) {
    match expires_at {
        None => ("does not expire".to_owned(), "muted"),
        Some(t) if t <= now => (format!("expired {}", relative(t, now)), "bad"),
        Some(t) if (t - now).to_std().unwrap_or_default() <= margin => (relative(t, now), "warn"),
        Some(t) => (relative(t, now), "ok"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn reads_like_people_talk() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(relative(at(2), now), "just now");
        assert_eq!(relative(at(42), now), "in 42 s");
        assert_eq!(relative(at(42 * 60 + 30), now), "in 42 min");
        assert_eq!(relative(at(-3 * 3600 - 100), now), "3 h ago");
        assert_eq!(relative(at(-30 * 3600), now), "30 h ago");
        assert_eq!(relative(at(5 * 86_400), now), "in 5 days");
        assert_eq!(exact(now), "2026-11-22 12:00:00 UTC");
        let margin = std::time::Duration::from_secs(300);
        assert_eq!(expiry(None, now, margin), ("does not expire".to_owned(), "muted"));
        assert_eq!(expiry(Some(at(-7200)), now, margin), ("expired 2 h ago".to_owned(), "bad"));
        assert_eq!(expiry(Some(at(120)), now, margin), ("in 2 min".to_owned(), "warn"));
        assert_eq!(expiry(Some(at(3599)), now, margin), ("in 59 min".to_owned(), "ok"));
    }
}
