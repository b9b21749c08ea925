//! The messages a tap prints on stdout, one JSON object a line, in the Singer and Airbyte
//! protocols.

use serde_json::{Map, Value};

use super::config::Protocol;

/// One protocol message, both protocols folded into the same shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Singer `SCHEMA`: the stream's JSON schema and key; records of the stream follow.
    Schema {
        stream: String,
        schema: Value,
        key_properties: Vec<String>,
        bookmark_properties: Vec<String>,
    },
    /// A record (Singer `record`, Airbyte `record.data`).
    Record {
        stream: String,
        record: Map<String, Value>,
    },
    /// Singer `STATE.value`: the whole state document.
    State(Value),
    /// Airbyte `STATE.state`: a legacy, per-stream or global state, folded by [`AirbyteState`].
    AirbyteState(Value),
    /// Airbyte `CATALOG.catalog` (from `discover`).
    Catalog(Value),
    /// Airbyte `LOG`.
    Log { level: String, message: String },
    /// Airbyte `TRACE` of type `ERROR`: the source failed.
    Error { message: String },
    /// Accepted and ignored: Singer `ACTIVATE_VERSION`, Airbyte `SPEC`, `CONNECTION_STATUS`,
    /// `CONTROL`, non-error `TRACE`s.
    Ignored,
}

/// Parses one stdout line; `Err` says why it is malformed.
pub fn parse(protocol: Protocol, line: &str) -> Result<Message, String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| format!("not a JSON message ({e}): {}", clip(line)))?;
    let Value::Object(mut m) = value else {
        return Err(format!("not a JSON object: {}", clip(line)));
    };
    let kind = match m.get("type").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => return Err(format!("a message without `type`: {}", clip(line))),
    };
    match protocol {
        Protocol::Singer => singer(&kind, &mut m),
        Protocol::Airbyte => airbyte(&kind, &mut m),
    }
}

fn singer(kind: &str, m: &mut Map<String, Value>) -> Result<Message, String> {
    let stream = |m: &Map<String, Value>| {
        m.get("stream")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("a {kind} message without `stream`"))
    };
    match kind {
        "SCHEMA" => {
            let stream = stream(m)?;
            let schema = m
                .remove("schema")
                .ok_or("a SCHEMA message without `schema`")?;
            if !schema.is_object() {
                return Err(format!("the SCHEMA of {stream} is not an object"));
            }
            Ok(Message::Schema {
                stream,
                schema,
                key_properties: strings(m.get("key_properties"), "key_properties")?,
                bookmark_properties: strings(m.get("bookmark_properties"), "bookmark_properties")?,
            })
        }
        "RECORD" => {
            let stream = stream(m)?;
            match m.remove("record") {
                Some(Value::Object(record)) => Ok(Message::Record { stream, record }),
                _ => Err(format!(
                    "a RECORD of {stream} whose `record` is not an object"
                )),
            }
        }
        "STATE" => m
            .remove("value")
            .map(Message::State)
            .ok_or_else(|| "a STATE message without `value`".to_string()),
        "ACTIVATE_VERSION" => Ok(Message::Ignored),
        other => Err(format!("an unknown Singer message type {other:?}")),
    }
}

fn airbyte(kind: &str, m: &mut Map<String, Value>) -> Result<Message, String> {
    match kind {
        "RECORD" => {
            let Some(Value::Object(mut record)) = m.remove("record") else {
                return Err("a RECORD message without a `record` object".into());
            };
            let stream = record
                .get("stream")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or("a RECORD without `record.stream`")?;
            match record.remove("data") {
                Some(Value::Object(data)) => Ok(Message::Record {
                    stream,
                    record: data,
                }),
                _ => Err(format!(
                    "a RECORD of {stream} whose `data` is not an object"
                )),
            }
        }
        "STATE" => match m.remove("state") {
            Some(state @ Value::Object(_)) => Ok(Message::AirbyteState(state)),
            _ => Err("a STATE message without a `state` object".into()),
        },
        "CATALOG" => m
            .remove("catalog")
            .map(Message::Catalog)
            .ok_or_else(|| "a CATALOG message without `catalog`".to_string()),
        "LOG" => {
            let log = m.get("log");
            let text = |k: &str| {
                log.and_then(|l| l.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Ok(Message::Log {
                level: text("level"),
                message: text("message"),
            })
        }
        "TRACE" => {
            let trace = m.get("trace");
            if trace.and_then(|t| t.get("type")).and_then(Value::as_str) != Some("ERROR") {
                return Ok(Message::Ignored);
            }
            let error = trace.and_then(|t| t.get("error"));
            let message = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let internal = error
                .and_then(|e| e.get("internal_message"))
                .and_then(Value::as_str)
                .map(|i| format!(" ({i})"))
                .unwrap_or_default();
            Ok(Message::Error {
                message: format!("{message}{internal}"),
            })
        }
        "SPEC" | "CONNECTION_STATUS" | "CONTROL" => Ok(Message::Ignored),
        other => Err(format!("an unknown Airbyte message type {other:?}")),
    }
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("`{what}` must be a list of strings")),
        Some(_) => Err(format!("`{what}` must be a list of strings")),
    }
}

/// At most 120 characters of a line, for messages.
fn clip(line: &str) -> String {
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// An Airbyte source's state document across its STATE messages: the last legacy `data`, or
/// the latest state of each stream (and the global one) as the array of state messages the
/// source takes back with `--state`.
#[derive(Debug, Default)]
pub struct AirbyteState {
    legacy: Option<Value>,
    global: Option<Value>,
    /// (name, namespace) → the STREAM state message, in first-seen order.
    streams: Vec<((String, String), Value)>,
}

impl AirbyteState {
    /// Starts from a stored document.
    pub fn resume(stored: Option<&Value>) -> Self {
        let mut s = AirbyteState::default();
        match stored {
            Some(Value::Array(messages)) => {
                for m in messages {
                    s.fold(m);
                }
            }
            Some(other) => s.legacy = Some(other.clone()),
            None => {}
        }
        s
    }

    /// Adds one STATE message's `state` and returns the whole document.
    pub fn fold(&mut self, state: &Value) -> Value {
        match state.get("type").and_then(Value::as_str) {
            Some("STREAM") => {
                let d = state.pointer("/stream/stream_descriptor");
                let text = |k: &str| {
                    d.and_then(|d| d.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let key = (text("name"), text("namespace"));
                match self.streams.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => *v = state.clone(),
                    None => self.streams.push((key, state.clone())),
                }
            }
            Some("GLOBAL") => self.global = Some(state.clone()),
            _ => {
                self.legacy = Some(state.get("data").cloned().unwrap_or_else(|| state.clone()));
            }
        }
        self.document()
    }

    fn document(&self) -> Value {
        if self.streams.is_empty() && self.global.is_none() {
            return self.legacy.clone().unwrap_or(Value::Null);
        }
        Value::Array(
            self.global
                .iter()
                .cloned()
                .chain(self.streams.iter().map(|(_, v)| v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn singer_messages_parse_and_bad_lines_say_why() {
        let m = parse(
            Protocol::Singer,
            r#"{"type":"SCHEMA","stream":"users","schema":{"properties":{}},"key_properties":["id"]}"#,
        )
        .unwrap();
        assert!(
            matches!(m, Message::Schema { ref key_properties, .. } if key_properties == &["id"])
        );
        let m = parse(Protocol::Singer, r#"{"type":"STATE","value":{"a":1}}"#).unwrap();
        assert_eq!(m, Message::State(json!({"a": 1})));
        assert_eq!(
            parse(
                Protocol::Singer,
                r#"{"type":"ACTIVATE_VERSION","stream":"x","version":1}"#
            ),
            Ok(Message::Ignored)
        );
        assert!(
            parse(Protocol::Singer, "Starting tap v1.0")
                .unwrap_err()
                .contains("not a JSON")
        );
        assert!(
            parse(
                Protocol::Singer,
                r#"{"type":"RECORD","stream":"x","record":[1]}"#
            )
            .is_err()
        );
        assert!(
            parse(Protocol::Singer, r#"{"type":"NOPE"}"#)
                .unwrap_err()
                .contains("NOPE")
        );
    }

    #[test]
    fn airbyte_messages_parse_and_states_fold_per_stream() {
        let m = parse(
            Protocol::Airbyte,
            r#"{"type":"RECORD","record":{"stream":"users","data":{"id":1},"emitted_at":1}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Message::Record {
                stream: "users".into(),
                record: json!({"id": 1}).as_object().unwrap().clone()
            }
        );
        let e = parse(
            Protocol::Airbyte,
            r#"{"type":"TRACE","trace":{"type":"ERROR","error":{"message":"bad key"}}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            Message::Error {
                message: "bad key".into()
            }
        );

        let mut s = AirbyteState::resume(None);
        assert_eq!(s.fold(&json!({"data": {"users": 3}})), json!({"users": 3}));
        let a = json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"c": 1}}});
        let b = json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": "b"}, "stream_state": {"c": 5}}});
        let a2 = json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"c": 2}}});
        s.fold(&a);
        s.fold(&b);
        let doc = s.fold(&a2);
        assert_eq!(doc, json!([a2, b]));
        let mut resumed = AirbyteState::resume(Some(&doc));
        assert_eq!(resumed.fold(&b), json!([a2, b]));
    }
}
