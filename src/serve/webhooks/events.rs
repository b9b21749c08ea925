//! The senders' bodies: split into events (id, deal, payload) when received, and read as
//! changes to apply when processed.
//!
//! | source | body | event id | deal |
//! | --- | --- | --- | --- |
//! | hubspot | JSON array of `{eventId, subscriptionType, objectId, propertyName, propertyValue, occurredAt}` | `eventId` | `objectId` of `deal.*` |
//! | stripe | one event `{id, type, created, data: {object}}` | `id` | none |
//! | salesforce | a CDC event `{ChangeEventHeader: {entityName, recordIds, changeType, transactionKey, sequenceNumber, commitTimestamp}, <Field>: value}` or an outbound message `{notificationId, sObject: {type, Id, <Field>: value}}`, or an array of them | `transactionKey:sequenceNumber` / `notificationId` | the Opportunity's id |
//! | generic | `{id, source: hubspot\|salesforce, object_id, properties: {column: value}, occurred_at}` | `id` | `source:object_id` |

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::serve::queue::NewEvent;

/// A receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hubspot,
    Stripe,
    Salesforce,
    Generic,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hubspot => "hubspot",
            Source::Stripe => "stripe",
            Source::Salesforce => "salesforce",
            Source::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Source::Hubspot,
            Source::Stripe,
            Source::Salesforce,
            Source::Generic,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The CRM whose raw deal table a change lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Crm {
    Hubspot,
    Salesforce,
}

impl Crm {
    pub fn as_str(self) -> &'static str {
        match self {
            Crm::Hubspot => "hubspot",
            Crm::Salesforce => "salesforce",
        }
    }
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Properties of a deal's raw row (`None`: cleared), as of `occurred_at`.
    Deal {
        crm: Crm,
        id: String,
        properties: Vec<(String, Option<String>)>,
        occurred_at: Option<DateTime<Utc>>,
    },
    /// A Stripe event, landed as a row of `raw.stripe_webhook_events`.
    Stripe {
        id: String,
        kind: String,
        created: Option<DateTime<Utc>>,
        object_id: Option<String>,
        object_type: Option<String>,
    },
    /// Verified and kept, but not applied in real time: why.
    Ignore(String),
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn millis(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .or_else(|| crate::sources::records::parse_timestamp(s)),
        _ => None,
    }
}

fn required<'v>(o: &'v Map<String, Value>, key: &str, what: &str) -> Result<&'v Value, String> {
    o.get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("{what} has no `{key}`"))
}

fn object<'v>(v: &'v Value, what: &str) -> Result<&'v Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} is not a JSON object"))
}

/// The events of a verified body, or why the body is malformed (a 400).
pub fn split(source: Source, body: &[u8]) -> Result<Vec<NewEvent>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    match source {
        Source::Hubspot => {
            let items = value
                .as_array()
                .ok_or("a HubSpot webhook body is a JSON array of events")?;
            if items.is_empty() {
                return Err("the body holds no events".into());
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let what = format!("event [{i}]");
                    let o = object(item, &what)?;
                    let id = text(required(o, "eventId", &what)?).unwrap_or_default();
                    let kind = required(o, "subscriptionType", &what)?
                        .as_str()
                        .ok_or_else(|| format!("{what}: subscriptionType is not text"))?;
                    let object_id = text(required(o, "objectId", &what)?).unwrap_or_default();
                    Ok(NewEvent {
                        event_id: format!("hubspot:{id}"),
                        deal_key: kind
                            .starts_with("deal.")
                            .then(|| format!("hubspot:{object_id}")),
                        payload: item.to_string(),
                    })
                })
                .collect()
        }
        Source::Stripe => {
            let o = object(&value, "the Stripe event")?;
            let id = required(o, "id", "the Stripe event")?
                .as_str()
                .ok_or("the Stripe event's id is not text")?;
            required(o, "type", "the Stripe event")?;
            Ok(vec![NewEvent {
                event_id: format!("stripe:{id}"),
                deal_key: None,
                payload: value.to_string(),
            }])
        }
        Source::Salesforce => {
            let items: Vec<&Value> = match &value {
                Value::Array(a) if a.is_empty() => return Err("the body holds no events".into()),
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| salesforce_event(item, i))
                .collect()
        }
        Source::Generic => {
            let o = object(&value, "the event")?;
            let id = text(required(o, "id", "the event")?).unwrap_or_default();
            let crm = required(o, "source", "the event")?
                .as_str()
                .ok_or("the event's source is not text")?;
            if crm != "hubspot" && crm != "salesforce" {
                return Err(format!(
                    "the event's source `{crm}` is not hubspot or salesforce"
                ));
            }
            let object_id = text(required(o, "object_id", "the event")?).unwrap_or_default();
            object(
                required(o, "properties", "the event")?,
                "the event's properties",
            )?;
            Ok(vec![NewEvent {
                event_id: format!("generic:{id}"),
                deal_key: Some(format!("{crm}:{object_id}")),
                payload: value.to_string(),
            }])
        }
    }
}

fn salesforce_event(item: &Value, i: usize) -> Result<NewEvent, String> {
    let what = format!("event [{i}]");
    let o = object(item, &what)?;
    if let Some(header) = o.get("ChangeEventHeader") {
        let h = object(header, &format!("{what}'s ChangeEventHeader"))?;
        let entity = h.get("entityName").and_then(Value::as_str).unwrap_or("");
        let record = h
            .get("recordIds")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(text)
            .ok_or_else(|| format!("{what}: ChangeEventHeader has no recordIds"))?;
        let id = match o.get("replayId").and_then(text) {
            Some(r) => r,
            None => format!(
                "{}:{}",
                text(required(h, "transactionKey", &what)?).unwrap_or_default(),
                h.get("sequenceNumber").and_then(text).unwrap_or_default()
            ),
        };
        return Ok(NewEvent {
            event_id: format!("salesforce:{id}"),
            deal_key: (entity == "Opportunity").then(|| format!("salesforce:{record}")),
            payload: item.to_string(),
        });
    }
    let id = text(required(o, "notificationId", &what)?).unwrap_or_default();
    let s = object(required(o, "sObject", &what)?, &format!("{what}'s sObject"))?;
    let kind = s.get("type").and_then(Value::as_str).unwrap_or("");
    let record = text(required(s, "Id", &format!("{what}'s sObject"))?).unwrap_or_default();
    Ok(NewEvent {
        event_id: format!("salesforce:{id}"),
        deal_key: (kind == "Opportunity").then(|| format!("salesforce:{record}")),
        payload: item.to_string(),
    })
}

/// What a queued event (its payload as stored) changes.
pub fn change(source: &str, payload: &str) -> Change {
    let Ok(v) = serde_json::from_str::<Value>(payload) else {
        return Change::Ignore("the stored payload is not JSON".into());
    };
    let get = |k: &str| v.get(k);
    match source {
        "hubspot" => {
            let kind = get("subscriptionType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let id = get("objectId").and_then(text).unwrap_or_default();
            match kind {
                "deal.propertyChange" => {
                    let Some(name) = get("propertyName").and_then(Value::as_str) else {
                        return Change::Ignore("deal.propertyChange without propertyName".into());
                    };
                    Change::Deal {
                        crm: Crm::Hubspot,
                        id,
                        properties: vec![(name.to_string(), get("propertyValue").and_then(text))],
                        occurred_at: millis(get("occurredAt")),
                    }
                }
                other => Change::Ignore(format!(
                    "HubSpot {other} events are not applied in real time: the next sync lands the record"
                )),
            }
        }
        "salesforce" => {
            if let Some(h) = get("ChangeEventHeader") {
                let entity = h.get("entityName").and_then(Value::as_str).unwrap_or("");
                let change_type = h.get("changeType").and_then(Value::as_str).unwrap_or("");
                if entity != "Opportunity" || !matches!(change_type, "UPDATE" | "GAP_UPDATE") {
                    return Change::Ignore(format!(
                        "Salesforce {entity} {change_type} events are not applied in real time: the next sync lands the record"
                    ));
                }
                let id = h
                    .get("recordIds")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(text)
                    .unwrap_or_default();
                let properties = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str() != "ChangeEventHeader" && k.as_str() != "replayId")
                    .map(|(k, val)| (k.clone(), text(val)))
                    .collect();
                return Change::Deal {
                    crm: Crm::Salesforce,
                    id,
                    properties,
                    occurred_at: millis(h.get("commitTimestamp")),
                };
            }
            let Some(s) = get("sObject").and_then(Value::as_object) else {
                return Change::Ignore("no sObject".into());
            };
            if s.get("type").and_then(Value::as_str) != Some("Opportunity") {
                return Change::Ignore(
                    "outbound messages of objects other than Opportunity are not applied in real time"
                        .into(),
                );
            }
            Change::Deal {
                crm: Crm::Salesforce,
                id: s.get("Id").and_then(text).unwrap_or_default(),
                properties: s
                    .iter()
                    .filter(|(k, _)| k.as_str() != "type" && k.as_str() != "Id")
                    .map(|(k, val)| (k.clone(), text(val)))
                    .collect(),
                occurred_at: s
                    .get("LastModifiedDate")
                    .and_then(Value::as_str)
                    .and_then(crate::sources::records::parse_timestamp),
            }
        }
        "generic" => {
            let crm = match get("source").and_then(Value::as_str) {
                Some("hubspot") => Crm::Hubspot,
                Some("salesforce") => Crm::Salesforce,
                _ => return Change::Ignore("unknown source".into()),
            };
            Change::Deal {
                crm,
                id: get("object_id").and_then(text).unwrap_or_default(),
                properties: get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, val)| (k.clone(), text(val)))
                    .collect(),
                occurred_at: millis(get("occurred_at")),
            }
        }
        "stripe" => {
            let object = v.pointer("/data/object");
            Change::Stripe {
                id: get("id").and_then(text).unwrap_or_default(),
                kind: get("type").and_then(text).unwrap_or_default(),
                created: get("created")
                    .and_then(Value::as_i64)
                    .and_then(|s| DateTime::from_timestamp(s, 0)),
                object_id: object.and_then(|o| o.get("id")).and_then(text),
                object_type: object.and_then(|o| o.get("object")).and_then(text),
            }
        }
        other => Change::Ignore(format!("unknown source {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_bodies_split_into_events_with_their_deal() {
        let body = br#"[{"eventId":11,"subscriptionType":"deal.propertyChange","objectId":42,"propertyName":"dealstage","propertyValue":"closedwon","occurredAt":1700000000000},
                        {"eventId":12,"subscriptionType":"contact.creation","objectId":7}]"#;
        let events = split(Source::Hubspot, body).unwrap();
        assert_eq!(events[0].event_id, "hubspot:11");
        assert_eq!(events[0].deal_key.as_deref(), Some("hubspot:42"));
        assert_eq!(events[1].deal_key, None);
        assert_eq!(
            change("hubspot", &events[0].payload),
            Change::Deal {
                crm: Crm::Hubspot,
                id: "42".into(),
                properties: vec![("dealstage".into(), Some("closedwon".into()))],
                occurred_at: DateTime::from_timestamp_millis(1_700_000_000_000),
            }
        );
        assert!(matches!(
            change("hubspot", &events[1].payload),
            Change::Ignore(_)
        ));
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        assert!(
            split(Source::Hubspot, b"{")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            split(Source::Hubspot, b"[]")
                .unwrap_err()
                .contains("no events")
        );
        assert!(
            split(Source::Hubspot, br#"[{"eventId":1}]"#)
                .unwrap_err()
                .contains("subscriptionType")
        );
        assert!(
            split(Source::Stripe, br#"{"type":"x"}"#)
                .unwrap_err()
                .contains("`id`")
        );
        assert!(
            split(
                Source::Generic,
                br#"{"id":"1","source":"pipedrive","object_id":"2","properties":{}}"#
            )
            .unwrap_err()
            .contains("pipedrive")
        );
    }

    #[test]
    fn salesforce_cdc_and_outbound_messages_name_the_opportunity() {
        let cdc = br#"{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"UPDATE","transactionKey":"tk1","sequenceNumber":2,"commitTimestamp":1700000000000},"StageName":"Closed Won"}"#;
        let e = &split(Source::Salesforce, cdc).unwrap()[0];
        assert_eq!(e.event_id, "salesforce:tk1:2");
        assert_eq!(e.deal_key.as_deref(), Some("salesforce:006A"));
        let Change::Deal { properties, .. } = change("salesforce", &e.payload) else {
            panic!("a deal change");
        };
        assert_eq!(
            properties,
            vec![("StageName".into(), Some("Closed Won".into()))]
        );
        let outbound =
            br#"[{"notificationId":"n1","sObject":{"type":"Opportunity","Id":"006B","Amount":5}}]"#;
        let e = &split(Source::Salesforce, outbound).unwrap()[0];
        assert_eq!(e.event_id, "salesforce:n1");
        assert_eq!(e.deal_key.as_deref(), Some("salesforce:006B"));
    }
}
