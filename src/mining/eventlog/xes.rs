//! XES (IEEE 1849-2016) event logs: a streaming writer and a reader (plain or gzip).

use std::io::{BufRead, Write};
use std::path::Path;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event as XmlEvent};

use super::{Event, parse_timestamp};
use crate::mining::error::{MiningError, Result};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// An XES timestamp (`xs:dateTime`, UTC, microseconds).
pub fn xes_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000+00:00".into())
}

/// Writes an XES log trace by trace: declare the Concept, Time and Lifecycle extensions, the
/// global attributes and the activity classifier, then each case with its events in order.
pub struct XesWriter<W: Write> {
    out: W,
    open_trace: Option<String>,
}

impl<W: Write> XesWriter<W> {
    pub fn new(mut out: W, log_name: &str) -> std::io::Result<Self> {
        write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n\
<log xes.version=\"1849-2016\" xes.features=\"nested-attributes\" xmlns=\"http://www.xes-standard.org/\">\n\
\t<extension name=\"Concept\" prefix=\"concept\" uri=\"http://www.xes-standard.org/concept.xesext\"/>\n\
\t<extension name=\"Time\" prefix=\"time\" uri=\"http://www.xes-standard.org/time.xesext\"/>\n\
\t<extension name=\"Lifecycle\" prefix=\"lifecycle\" uri=\"http://www.xes-standard.org/lifecycle.xesext\"/>\n\
\t<global scope=\"trace\">\n\t\t<string key=\"concept:name\" value=\"__INVALID__\"/>\n\t</global>\n\
\t<global scope=\"event\">\n\t\t<string key=\"concept:name\" value=\"__INVALID__\"/>\n\
\t\t<date key=\"time:timestamp\" value=\"1970-01-01T00:00:00.000+00:00\"/>\n\
\t\t<string key=\"lifecycle:transition\" value=\"complete\"/>\n\t</global>\n\
\t<classifier name=\"Activity\" keys=\"concept:name\"/>\n\
\t<string key=\"concept:name\" value=\"{}\"/>\n",
            esc(log_name)
        )?;
        Ok(Self {
            out,
            open_trace: None,
        })
    }

    /// Appends an event; a new case id closes the open trace and opens another (events of a
    /// case must come together, in order).
    pub fn event(
        &mut self,
        case: &str,
        trace_attrs: &[(&str, &str)],
        activity: &str,
        micros: i64,
        attrs: &[(&str, &str)],
    ) -> std::io::Result<()> {
        if self.open_trace.as_deref() != Some(case) {
            if self.open_trace.is_some() {
                self.out.write_all(b"\t</trace>\n")?;
            }
            write!(
                self.out,
                "\t<trace>\n\t\t<string key=\"concept:name\" value=\"{}\"/>\n",
                esc(case)
            )?;
            for (k, v) in trace_attrs {
                writeln!(
                    self.out,
                    "\t\t<string key=\"{}\" value=\"{}\"/>",
                    esc(k),
                    esc(v)
                )?;
            }
            self.open_trace = Some(case.to_string());
        }
        write!(
            self.out,
            "\t\t<event>\n\t\t\t<string key=\"concept:name\" value=\"{}\"/>\n\
\t\t\t<date key=\"time:timestamp\" value=\"{}\"/>\n\
\t\t\t<string key=\"lifecycle:transition\" value=\"complete\"/>\n",
            esc(activity),
            xes_time(micros)
        )?;
        for (k, v) in attrs {
            writeln!(
                self.out,
                "\t\t\t<string key=\"{}\" value=\"{}\"/>",
                esc(k),
                esc(v)
            )?;
        }
        self.out.write_all(b"\t\t</event>\n")
    }

    /// Closes the log and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.open_trace.is_some() {
            self.out.write_all(b"\t</trace>\n")?;
        }
        self.out.write_all(b"</log>\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Where the reader is: inside the log, a trace or an event, and how deep in nested attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Log,
    Trace,
    Event,
}

/// Reads the events of an XES log in document order: each event's `concept:name` (activity)
/// and `time:timestamp`, its trace's `concept:name` (case; `trace N` when absent), and its
/// other top-level attributes. Nested attributes, globals, extensions and classifiers are
/// skipped. An event without activity or timestamp is an error naming the line.
pub fn read_xes<R: BufRead>(input: R, path: &Path) -> Result<Vec<Event>> {
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut scope = Scope::Log;
    // Depth of elements below the current log/trace/event that are not events or traces
    // (attribute children, globals, lists): their attributes are not the event's.
    let mut nested = 0usize;
    let mut trace_no = 0u64;
    let mut case: Option<String> = None;
    let mut trace_events: Vec<Event> = Vec::new();
    let mut event: Option<Event> = None;
    let mut event_line = 0u64;
    let mut saw_log = false;
    let line_of = |reader: &quick_xml::Reader<R>| -> u64 { reader.buffer_position() };
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| MiningError::BadEventLog {
                path: path.to_path_buf(),
                line: None,
                reason: format!("not well-formed XML at byte {}: {e}", line_of(&reader)),
            })?;
        let (start, empty) = match &ev {
            XmlEvent::Start(e) => (Some(e.clone()), false),
            XmlEvent::Empty(e) => (Some(e.clone()), true),
            XmlEvent::End(_) => (None, false),
            XmlEvent::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        match start {
            Some(e) => {
                let name = e.local_name().as_ref().to_string();
                match (name.as_str(), scope, nested) {
                    ("log", _, _) => saw_log = true,
                    ("trace", Scope::Log, 0) if !empty => {
                        scope = Scope::Trace;
                        trace_no += 1;
                        case = None;
                        trace_events.clear();
                    }
                    ("event", Scope::Trace, 0) if !empty => {
                        scope = Scope::Event;
                        event_line = line_of(&reader);
                        event = Some(Event::default());
                    }
                    (_, Scope::Trace, 0) | (_, Scope::Event, 0) => {
                        if let Some((key, value, kind)) = attribute(&e, path)? {
                            if scope == Scope::Trace {
                                if key == "concept:name" {
                                    case = Some(value);
                                }
                            } else if let Some(ev) = event.as_mut() {
                                match key.as_str() {
                                    "concept:name" => ev.activity = value,
                                    "time:timestamp" if kind == "date" => {
                                        ev.timestamp = parse_timestamp(&value).ok_or_else(|| {
                                            MiningError::BadEventLog {
                                                path: path.to_path_buf(),
                                                line: None,
                                                reason: format!(
                                                    "event at byte {event_line}: `{value}` is not an xs:dateTime"
                                                ),
                                            }
                                        })?;
                                        ev.has_timestamp = true;
                                    }
                                    _ => ev.attributes.push((key, value)),
                                }
                            }
                        }
                        if !empty {
                            nested += 1;
                        }
                    }
                    _ => {
                        if !empty {
                            nested += 1;
                        }
                    }
                }
            }
            None => {
                if nested > 0 {
                    nested -= 1;
                } else {
                    match scope {
                        Scope::Event => {
                            let ev = event.take().unwrap_or_default();
                            if ev.activity.is_empty() || !ev.has_timestamp {
                                return Err(MiningError::BadEventLog {
                                    path: path.to_path_buf(),
                                    line: None,
                                    reason: format!(
                                        "event at byte {event_line} in trace {trace_no} has no {}",
                                        if ev.activity.is_empty() {
                                            "concept:name"
                                        } else {
                                            "time:timestamp"
                                        }
                                    ),
                                });
                            }
                            trace_events.push(ev);
                            scope = Scope::Trace;
                        }
                        Scope::Trace => {
                            let name = case.take().unwrap_or_else(|| format!("trace {trace_no}"));
                            for mut ev in trace_events.drain(..) {
                                ev.case = name.clone();
                                events.push(ev);
                            }
                            scope = Scope::Log;
                        }
                        Scope::Log => {}
                    }
                }
            }
        }
        buf.clear();
    }
    if !saw_log {
        return Err(MiningError::BadEventLog {
            path: path.to_path_buf(),
            line: None,
            reason: "no <log> element: not an XES file".into(),
        });
    }
    Ok(events)
}

/// `(key, value, element name)` of an XES attribute element (`<string key=.. value=..>`).
fn attribute(e: &BytesStart<'_>, path: &Path) -> Result<Option<(String, String, String)>> {
    let kind = e.local_name().as_ref().to_string();
    if !matches!(
        kind.as_str(),
        "string" | "date" | "int" | "float" | "boolean" | "id"
    ) {
        return Ok(None);
    }
    let mut key = None;
    let mut value = None;
    for a in e.attributes() {
        let a = a.map_err(|err| MiningError::BadEventLog {
            path: path.to_path_buf(),
            line: None,
            reason: format!("bad attribute: {err}"),
        })?;
        let v = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| MiningError::BadEventLog {
                path: path.to_path_buf(),
                line: None,
                reason: format!("bad attribute value: {err}"),
            })?
            .into_owned();
        match a.key.local_name().as_ref() {
            "key" => key = Some(v),
            "value" => value = Some(v),
            _ => {}
        }
    }
    Ok(match (key, value) {
        (Some(k), Some(v)) => Some((k, v, kind)),
        _ => None,
    })
}
