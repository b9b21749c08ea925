//! Signature schemes of the receivers: HubSpot v3, Stripe's `Stripe-Signature`, and revlake's own
//! `X-Revlake-Signature` (the scheme `alerts` signs outgoing webhooks with, used for Salesforce
//! relays and the generic receiver). Every check compares in constant time and refuses a
//! timestamp further than the tolerance from now, in either direction (a replay of an old
//! request, or a clock far off).

use base64::Engine;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// A signature or timestamp header is absent.
    #[error("the {header} header is missing")]
    Missing { header: &'static str },
    /// A header does not have the scheme's format.
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    /// The signed timestamp is further than the tolerance from now: a replay or a clock off.
    #[error(
        "the signed timestamp is {age_secs} s from now, more than the {tolerance_secs} s allowed"
    )]
    Stale { age_secs: i64, tolerance_secs: i64 },
    /// No signature matches the body under the configured secret.
    #[error("the signature does not match the body (wrong secret, or the body was altered)")]
    Mismatch,
}

impl VerifyError {
    /// Whether the request was refused for its timestamp (logged apart: a replay).
    pub fn is_stale(&self) -> bool {
        matches!(self, VerifyError::Stale { .. })
    }
}

fn mac(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length")
}

fn fresh(signed_secs: i64, now_secs: i64, tolerance_secs: i64) -> Result<(), VerifyError> {
    let age = now_secs.saturating_sub(signed_secs);
    if age.abs() > tolerance_secs {
        return Err(VerifyError::Stale {
            age_secs: age,
            tolerance_secs,
        });
    }
    Ok(())
}

fn integer(header: &'static str, value: &str) -> Result<i64, VerifyError> {
    value.trim().parse().map_err(|_| VerifyError::Malformed {
        header,
        reason: format!("`{value}` is not an integer timestamp"),
    })
}

/// HubSpot's timestamp header (milliseconds since the epoch).
pub const HUBSPOT_TIMESTAMP: &str = "X-HubSpot-Request-Timestamp";
/// HubSpot's v3 signature header.
pub const HUBSPOT_SIGNATURE: &str = "X-HubSpot-Signature-v3";

/// The percent-escapes HubSpot decodes in the request URI before signing it (its request
/// validation guide lists them); every other escape stays as sent.
const HUBSPOT_DECODED: [(&str, char); 12] = [
    ("%3A", ':'),
    ("%2F", '/'),
    ("%3F", '?'),
    ("%40", '@'),
    ("%21", '!'),
    ("%24", '$'),
    ("%27", '\''),
    ("%28", '('),
    ("%29", ')'),
    ("%2A", '*'),
    ("%2C", ','),
    ("%3B", ';'),
];

/// The URI HubSpot signs: the full URL the request was sent to (`base` is scheme and host, e.g.
/// `https://hooks.example.com`), with the escapes of its table decoded (either case of hex).
pub fn hubspot_uri(base: &str, path_and_query: &str) -> String {
    let raw = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        match HUBSPOT_DECODED
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(escape))
        {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks HubSpot's v3 signature: `base64(HMAC-SHA256(client secret, method + uri + body +
/// timestamp))`, the timestamp in milliseconds and at most `tolerance_secs` from `now_ms`.
#[allow(clippy::too_many_arguments)] // the parts of the request HubSpot signs, each named
pub fn hubspot_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_ms: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp = timestamp.ok_or(VerifyError::Missing {
        header: HUBSPOT_TIMESTAMP,
    })?;
    let signature = signature.ok_or(VerifyError::Missing {
        header: HUBSPOT_SIGNATURE,
    })?;
    let ms = integer(HUBSPOT_TIMESTAMP, timestamp)?;
    fresh(ms.div_euclid(1000), now_ms.div_euclid(1000), tolerance_secs)?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|e| VerifyError::Malformed {
            header: HUBSPOT_SIGNATURE,
            reason: format!("not base64: {e}"),
        })?;
    let mut m = mac(secret);
    m.update(method.as_bytes());
    m.update(uri.as_bytes());
    m.update(body);
    m.update(timestamp.trim().as_bytes());
    m.verify_slice(&expected).map_err(|_| VerifyError::Mismatch)
}

/// Stripe's signature header.
pub const STRIPE_SIGNATURE: &str = "Stripe-Signature";

/// Checks `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...]`: any `v1` equal to
/// `hex(HMAC-SHA256(endpoint secret, "<t>.<body>"))` passes (several appear while a secret is
/// rotated); other schemes (`v0`) are ignored. Returns `t`.
pub fn stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, VerifyError> {
    let header = header.ok_or(VerifyError::Missing {
        header: STRIPE_SIGNATURE,
    })?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = Some(integer(STRIPE_SIGNATURE, v)?),
            "v1" => candidates.push(v.trim()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| VerifyError::Malformed {
        header: STRIPE_SIGNATURE,
        reason: "no t=<timestamp> element".into(),
    })?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed {
            header: STRIPE_SIGNATURE,
            reason: "no v1=<signature> element".into(),
        });
    }
    fresh(t, now_secs, tolerance_secs)?;
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    let matches = candidates
        .iter()
        .any(|c| hex::decode(c).is_ok_and(|expected| m.clone().verify_slice(&expected).is_ok()));
    if matches {
        Ok(t)
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// revlake's timestamp header (Unix seconds).
pub const REVLAKE_TIMESTAMP: &str = "X-Revlake-Timestamp";
/// revlake's signature header: `sha256=<hex>` (or `v1=<hex>`, as `alerts` sends it).
pub const REVLAKE_SIGNATURE: &str = "X-Revlake-Signature";

/// Checks `X-Revlake-Signature` over `"<X-Revlake-Timestamp>.<body>"`: the scheme of
/// [`crate::alerts::sign`]. Returns the timestamp.
pub fn revlake(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, VerifyError> {
    let timestamp = timestamp.ok_or(VerifyError::Missing {
        header: REVLAKE_TIMESTAMP,
    })?;
    let signature = signature.ok_or(VerifyError::Missing {
        header: REVLAKE_SIGNATURE,
    })?;
    let t = integer(REVLAKE_TIMESTAMP, timestamp)?;
    let hexsig = signature
        .trim()
        .strip_prefix("sha256=")
        .or_else(|| signature.trim().strip_prefix("v1="))
        .ok_or_else(|| VerifyError::Malformed {
            header: REVLAKE_SIGNATURE,
            reason: "expected `sha256=<hex>`".into(),
        })?;
    let expected = hex::decode(hexsig).map_err(|e| VerifyError::Malformed {
        header: REVLAKE_SIGNATURE,
        reason: format!("not hex: {e}"),
    })?;
    fresh(t, now_secs, tolerance_secs)?;
    let mut m = mac(secret);
    m.update(timestamp.trim().as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&expected)
        .map_err(|_| VerifyError::Mismatch)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with Python's hmac module:
    //   import hmac, hashlib, base64
    //   src = "POST" + "https://hooks.example.com/api/webhooks/acme/hubspot?x=a:b" \
    //         + '[{"eventId":1}]' + "1700000000000"
    //   base64.b64encode(hmac.new(b"hs-secret", src.encode(), hashlib.sha256).digest())
    //   hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
    //   hmac.new(b"gen-secret", b'1700000000.{"id":"e1"}', hashlib.sha256).hexdigest()
    const HS_SIG: &str = "Hh3CYUDb1Q6T8JCXLYgZPnHXdpKQ8uVWKu+0h+SLlQc=";
    const STRIPE_SIG: &str = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";
    const STRIPE_OLD_SECRET_SIG: &str =
        "ef1b1b7e4b312671a75ef2a03e10529f7834a6528a49db77ad6568c8c8017843";
    const REVLAKE_SIG: &str = "340b765320840e1e0ed8267cab0887b4e4ed066a65c6d4b1ed2e2b5e4967b271";
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn hubspot_uri_decodes_only_the_listed_escapes() {
        assert_eq!(
            hubspot_uri(
                "https://hooks.example.com/",
                "/api/webhooks/acme/hubspot?x=a%3Ab"
            ),
            "https://hooks.example.com/api/webhooks/acme/hubspot?x=a:b"
        );
        assert_eq!(
            hubspot_uri("http://h", "/p?a=%2f%20%2C%"),
            "http://h/p?a=/%20,%"
        );
    }

    #[test]
    fn hubspot_v3_accepts_the_python_vector() {
        let uri = hubspot_uri(
            "https://hooks.example.com",
            "/api/webhooks/acme/hubspot?x=a%3Ab",
        );
        let check = |secret: &str, body: &[u8], now_ms: i64| {
            hubspot_v3(
                secret,
                "POST",
                &uri,
                body,
                Some("1700000000000"),
                Some(HS_SIG),
                now_ms,
                300,
            )
        };
        let body = br#"[{"eventId":1}]"#;
        assert_eq!(check("hs-secret", body, NOW * 1000 + 4_000), Ok(()));
        assert_eq!(check("other", body, NOW * 1000), Err(VerifyError::Mismatch));
        assert_eq!(
            check("hs-secret", br#"[{"eventId":2}]"#, NOW * 1000),
            Err(VerifyError::Mismatch)
        );
        assert!(
            check("hs-secret", body, (NOW + 301) * 1000)
                .unwrap_err()
                .is_stale()
        );
        assert_eq!(
            hubspot_v3("s", "POST", &uri, body, None, Some(HS_SIG), 0, 300),
            Err(VerifyError::Missing {
                header: HUBSPOT_TIMESTAMP
            })
        );
    }

    #[test]
    fn stripe_accepts_any_v1_while_a_secret_rotates() {
        let body = br#"{"id":"evt_1"}"#;
        let one = format!("t={NOW},v1={STRIPE_SIG}");
        assert_eq!(
            stripe("whsec_test", Some(&one), body, NOW + 10, 300),
            Ok(NOW)
        );
        // Both the old and new secret's signatures are sent during a rotation.
        let both = format!("t={NOW},v1={STRIPE_OLD_SECRET_SIG},v1={STRIPE_SIG},v0=ignored");
        assert_eq!(stripe("whsec_test", Some(&both), body, NOW, 300), Ok(NOW));
        assert_eq!(stripe("whsec_old", Some(&both), body, NOW, 300), Ok(NOW));
        assert_eq!(
            stripe("whsec_new", Some(&both), body, NOW, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(
            stripe("whsec_test", Some(&one), body, NOW + 301, 300)
                .unwrap_err()
                .is_stale()
        );
        assert!(matches!(
            stripe("whsec_test", Some("v1=abc"), body, NOW, 300),
            Err(VerifyError::Malformed { .. })
        ));
        assert!(matches!(
            stripe("whsec_test", Some(&format!("t={NOW}")), body, NOW, 300),
            Err(VerifyError::Malformed { .. })
        ));
    }

    #[test]
    fn revlake_scheme_matches_what_alerts_sign() {
        let body = br#"{"id":"e1"}"#;
        let ts = NOW.to_string();
        assert_eq!(crate::alerts::sign("gen-secret", &ts, body), REVLAKE_SIG);
        for prefix in ["sha256=", "v1="] {
            let sig = format!("{prefix}{REVLAKE_SIG}");
            assert_eq!(
                revlake("gen-secret", Some(&ts), Some(&sig), body, NOW - 5, 300),
                Ok(NOW)
            );
        }
        let sig = format!("sha256={REVLAKE_SIG}");
        assert_eq!(
            revlake("nope", Some(&ts), Some(&sig), body, NOW, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(
            revlake("gen-secret", Some(&ts), Some(&sig), body, NOW - 400, 300)
                .unwrap_err()
                .is_stale()
        );
        assert!(matches!(
            revlake("gen-secret", Some("soon"), Some(&sig), body, NOW, 300),
            Err(VerifyError::Malformed { .. })
        ));
        assert!(matches!(
            revlake("gen-secret", Some(&ts), Some(REVLAKE_SIG), body, NOW, 300),
            Err(VerifyError::Malformed { .. })
        ));
    }
}
