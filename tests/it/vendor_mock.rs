//! Helpers for the vendor tests against mock servers on 127.0.0.1: a connection whose
//! credentials sit in fresh environment variables, and the checks every vendor shares.

use std::collections::BTreeMap;

use revlake::sources::source::Connection;
use revlake::sources::sync::StreamOutcome;
use wiremock::MockServer;

/// A connection named `name` of `source` to `server`; each credential gets a fresh variable
/// holding a fresh secret. Returns the connection and credential → secret value. Retries
/// back off 10 ms.
pub fn connection(
    server: &MockServer,
    source: &str,
    credentials: &[&str],
    streams: &[&str],
    options: &[(&str, toml::Value)],
) -> (Connection, BTreeMap<String, String>) {
    let mut vars = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for credential in credentials {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let var = format!("{}_{}_{suffix}", source, credential).to_uppercase();
        let secret = format!("{credential}-{suffix}");
        // SAFETY: each test sets its own uniquely named variables; no test reads another's.
        unsafe { std::env::set_var(&var, &secret) };
        vars.insert(credential.to_string(), var);
        secrets.insert(credential.to_string(), secret);
    }
    let mut table = toml::Table::new();
    table.insert("min_backoff_ms".into(), 10.into());
    for (k, v) in options {
        table.insert(k.to_string(), v.clone());
    }
    let c = Connection {
        name: format!("{source}_conn"),
        source: source.into(),
        base_url: Some(server.uri()),
        credentials: vars,
        streams: streams.iter().map(|s| s.to_string()).collect(),
        request_budget: None,
        options: table,
    };
    (c, secrets)
}

/// The outcome failed as not authorized, naming the credential's variable, never its value.
pub fn assert_refused(o: &StreamOutcome, c: &Connection, credential: &str, secret: &str) {
    let error = o.error.as_deref().expect("the stream fails");
    assert!(error.contains("not authorized"), "{error}");
    assert!(error.contains(&c.credentials[credential]), "{error}");
    assert!(!error.contains(secret), "{error}");
    assert_eq!(o.records, 0);
}

/// The outcome failed on a malformed page, without leaking `secret`.
pub fn assert_malformed(o: &StreamOutcome, secret: &str) {
    let error = o.error.as_deref().expect("the stream fails");
    assert!(error.contains("malformed page"), "{error}");
    assert!(!error.contains(secret), "{error}");
}
