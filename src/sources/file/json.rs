//! JSON documents and lines: locating the records array of a document, reading its elements one
//! by one with the line each starts on, and parsing one object keeping its members' order.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::{FileError, Result};
use super::kind::Kind;
use super::read::{Body, Record, RecordReader, ScanStep};

/// Array keys preferred, in order, when an object holds several arrays.
const RECORD_KEYS: [&str; 5] = ["records", "results", "data", "items", "rows"];

/// A JSON object's members in document order.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Members, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object's members' names and kinds, without building their values (pass one): the kinds
/// [`Cell::kind`](super::kind::Cell::kind) gives the same values.
struct MemberKinds<'a>(Vec<(Cow<'a, str>, Kind)>);

impl<'de> Deserialize<'de> for MemberKinds<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MemberKinds<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<MemberKinds<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Name<'de>>()? {
                    let kind = map.next_value::<KindOf>()?;
                    out.push((key.0, kind.0));
                }
                Ok(MemberKinds(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The kind of one JSON value.
struct KindOf(Kind);

impl<'de> Deserialize<'de> for KindOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KindOf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::Boolean))
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::Int))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<KindOf, E> {
                Ok(KindOf(if i64::try_from(v).is_ok() {
                    Kind::Int
                } else {
                    Kind::Float
                }))
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::Float))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::of(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::Empty))
            }
            fn visit_none<E>(self) -> std::result::Result<KindOf, E> {
                Ok(KindOf(Kind::Empty))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<KindOf, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KindOf(Kind::Text))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<KindOf, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KindOf(Kind::Text))
            }
        }
        d.deserialize_any(V)
    }
}

/// Calls `member` with each member's name and kind of the object `text` (pass one).
pub(crate) fn scan_object(
    text: &[u8],
    member: &mut dyn FnMut(&str, Kind),
) -> std::result::Result<(), String> {
    let kinds = serde_json::from_slice::<MemberKinds>(text)
        .map_err(|e| format!("malformed JSON at column {}: {}", e.column(), message(&e)))?;
    for (name, kind) in &kinds.0 {
        member(name, *kind);
    }
    Ok(())
}

/// A serde_json message without its ` at line L column C` (positions are given by the caller).
fn message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parses one JSON object (an NDJSON line); the error says what and at which column.
pub(crate) fn parse_object(text: &[u8]) -> std::result::Result<Vec<(String, Value)>, String> {
    serde_json::from_slice::<Members>(text)
        .map(|m| m.0)
        .map_err(|e| format!("malformed JSON at column {}: {}", e.column(), message(&e)))
}

/// One value of `T` at the start of `text`, and how many bytes it took.
fn parse_one<'a, T: Deserialize<'a>>(
    text: &'a [u8],
) -> std::result::Result<(T, usize), serde_json::Error> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<T>();
    match stream.next() {
        Some(Ok(v)) => Ok((v, stream.byte_offset())),
        Some(Err(e)) => Err(e),
        None => Err(serde::de::Error::custom("unexpected end of input")),
    }
}

fn skip_ws(text: &[u8], mut pos: usize) -> usize {
    while pos < text.len() && matches!(text[pos], b' ' | b'\n' | b'\r' | b'\t') {
        pos += 1;
    }
    pos
}

fn line_at(text: &[u8], pos: usize) -> u64 {
    text[..pos.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// The offset of the records array: the document itself when it is an array, else the one
/// array member of the top-level object (with several, the first of `records`, `results`,
/// `data`, `items`, `rows`).
pub(crate) fn locate_records(text: &[u8], path: &Path) -> Result<usize> {
    let not_records = |reason: String| FileError::NotRecords {
        path: path.to_path_buf(),
        reason,
    };
    let malformed = |pos: usize, e: &serde_json::Error| FileError::Malformed {
        path: path.to_path_buf(),
        line: line_at(text, pos) + e.line().saturating_sub(1) as u64,
        reason: format!("malformed JSON: {}", message(e)),
    };
    let mut pos = skip_ws(text, 0);
    match text.get(pos) {
        Some(b'[') => return Ok(pos),
        Some(b'{') => {}
        None => return Err(not_records("the file is empty".into())),
        Some(_) => {
            return Err(not_records(
                "expected a JSON array of records, or an object holding one (for one object per line use --format ndjson)".into(),
            ));
        }
    }
    pos += 1;
    let mut arrays: Vec<(String, usize)> = Vec::new();
    loop {
        pos = skip_ws(text, pos);
        match text.get(pos) {
            Some(b'}') => break,
            Some(b'"') => {}
            _ => {
                return Err(FileError::Malformed {
                    path: path.to_path_buf(),
                    line: line_at(text, pos),
                    reason: "malformed JSON: expected a member name or `}`".into(),
                });
            }
        }
        let (key, n) = parse_one::<String>(&text[pos..]).map_err(|e| malformed(pos, &e))?;
        pos = skip_ws(text, pos + n);
        if text.get(pos) != Some(&b':') {
            return Err(FileError::Malformed {
                path: path.to_path_buf(),
                line: line_at(text, pos),
                reason: format!("malformed JSON: expected `:` after \"{key}\""),
            });
        }
        pos = skip_ws(text, pos + 1);
        let start = pos;
        let (_, n) = parse_one::<IgnoredAny>(&text[pos..]).map_err(|e| malformed(pos, &e))?;
        if text.get(start) == Some(&b'[') {
            arrays.push((key, start));
        }
        pos = skip_ws(text, pos + n);
        match text.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => break,
            _ => {
                return Err(FileError::Malformed {
                    path: path.to_path_buf(),
                    line: line_at(text, pos),
                    reason: "malformed JSON: expected `,` or `}`".into(),
                });
            }
        }
    }
    match arrays.len() {
        0 => Err(not_records(
            "the top-level object holds no array of records".into(),
        )),
        1 => Ok(arrays[0].1),
        _ => RECORD_KEYS
            .iter()
            .find_map(|k| arrays.iter().find(|(a, _)| a == k))
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                not_records(format!(
                    "the top-level object holds several arrays ({}): cannot tell which holds the records",
                    arrays
                        .iter()
                        .map(|(k, _)| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
    }
}

/// The elements of a records array, each an object.
pub(crate) struct JsonRecords {
    path: PathBuf,
    text: Arc<Vec<u8>>,
    pos: usize,
    line: u64,
    counted_to: usize,
    done: bool,
}

impl JsonRecords {
    /// Reads the array that opens at `start` (a `[`).
    pub(crate) fn new(path: PathBuf, text: Arc<Vec<u8>>, start: usize) -> Self {
        JsonRecords {
            path,
            text,
            pos: start + 1,
            line: 1,
            counted_to: 0,
            done: false,
        }
    }

    fn line_of(&mut self, pos: usize) -> u64 {
        self.line += self.text[self.counted_to..pos]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.counted_to = pos;
        self.line
    }

    fn malformed(&mut self, pos: usize, reason: String) -> FileError {
        FileError::Malformed {
            path: self.path.clone(),
            line: self.line_of(pos),
            reason,
        }
    }
}

impl JsonRecords {
    /// The next element, parsed by `parse` (its value and the bytes it took), with its line;
    /// `None` at the end of the array.
    fn element<R>(
        &mut self,
        parse: impl FnOnce(&[u8]) -> std::result::Result<(R, usize), serde_json::Error>,
    ) -> Result<Option<(u64, R)>> {
        if self.done {
            return Ok(None);
        }
        let text = self.text.clone();
        let pos = skip_ws(&text, self.pos);
        match text.get(pos) {
            Some(b']') => {
                self.done = true;
                return Ok(None);
            }
            None => {
                return Err(self.malformed(pos, "the records array is not closed".into()));
            }
            Some(_) => {}
        }
        let line = self.line_of(pos);
        let (value, n) = parse(&text[pos..]).map_err(|e| FileError::Malformed {
            path: self.path.clone(),
            line: line + e.line().saturating_sub(1) as u64,
            reason: format!("a record that is not a JSON object: {}", message(&e)),
        })?;
        let after = skip_ws(&text, pos + n);
        match text.get(after) {
            Some(b',') => self.pos = after + 1,
            Some(b']') => self.pos = after,
            None => {
                return Err(self.malformed(after, "the records array is not closed".into()));
            }
            _ => {
                return Err(self.malformed(after, "malformed JSON: expected `,` or `]`".into()));
            }
        }
        Ok(Some((line, value)))
    }
}

impl RecordReader for JsonRecords {
    fn scan_record(&mut self, member: &mut dyn FnMut(&str, Kind)) -> Result<ScanStep> {
        let scanned = self.element(|text| {
            let (kinds, n) = parse_one::<MemberKinds>(text)?;
            for (name, kind) in &kinds.0 {
                member(name, *kind);
            }
            Ok(((), n))
        })?;
        Ok(match scanned {
            Some(_) => ScanStep::Scanned,
            None => ScanStep::End,
        })
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        let Some((line, members)) = self.element(|text| parse_one::<Members>(text))? else {
            return Ok(None);
        };
        Ok(Some(Record {
            line,
            body: Body::Object {
                members: members.0,
                text: None,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(doc: &str) -> Result<Vec<(u64, Vec<String>)>> {
        let text = Arc::new(doc.as_bytes().to_vec());
        let start = locate_records(&text, Path::new("t.json"))?;
        let mut r = JsonRecords::new("t.json".into(), text, start);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            let Body::Object { members, .. } = rec.body else {
                panic!("object")
            };
            out.push((rec.line, members.into_iter().map(|(k, _)| k).collect()));
        }
        Ok(out)
    }

    #[test]
    fn arrays_of_objects_are_read_with_their_lines_and_key_order() {
        let got = records("[\n {\"b\": 1, \"a\": 2},\n {\"c\": [1, {\"d\": 2}]}\n]\n").unwrap();
        assert_eq!(
            got,
            [(2, vec!["b".into(), "a".into()]), (3, vec!["c".into()])]
        );
        assert!(records("[]").unwrap().is_empty());
    }

    #[test]
    fn the_one_array_of_an_object_holds_the_records() {
        let got =
            records("{\"totalSize\": 2, \"done\": true,\n\"records\": [{\"Id\": 1}, {\"Id\": 2}]}")
                .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        let got = records(
            "{\"paging\": {\"next\": {\"after\": 3}}, \"results\": [{\"id\": 1}], \"errors\": []}",
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let err = records("{\"a\": [1], \"b\": [2]}").unwrap_err().to_string();
        assert!(err.contains("several arrays (\"a\", \"b\")"), "{err}");
        let err = records("{\"a\": 1}").unwrap_err().to_string();
        assert!(err.contains("no array of records"), "{err}");
    }

    #[test]
    fn malformed_documents_name_the_line() {
        let err = records("[\n{\"a\": 1},\n{\"a\": 2,,}\n]")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.json:3:"), "{err}");
        let err = records("[\n{\"a\": 1},\n5\n]").unwrap_err().to_string();
        assert!(
            err.contains("t.json:3:") && err.contains("not a JSON object"),
            "{err}"
        );
        let err = records("[{\"a\": 1}").unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
        let err = records("\"text\"").unwrap_err().to_string();
        assert!(err.contains("expected a JSON array"), "{err}");
    }

    #[test]
    fn pass_one_kinds_match_the_kinds_of_the_values() {
        let text = br#"{"a": 1, "b": 1.5, "c": "2025-01-31", "d": null, "e": [1, {"z": 2}],
            "f": {"x": 1}, "g": true, "h": "x\"y", "big": 18446744073709551615, "k\"ey": "0042",
            "t": "2025-01-31T09:30:00Z", "n": -7}"#;
        let mut got = Vec::new();
        scan_object(text, &mut |n, k| got.push((n.to_string(), k))).unwrap();
        let want: Vec<(String, Kind)> = parse_object(text)
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), super::super::kind::Cell::of_json(v).kind()))
            .collect();
        assert_eq!(got, want);
        assert!(scan_object(b"[1]", &mut |_, _| {}).is_err());
    }

    #[test]
    fn lines_parse_as_objects_in_order() {
        let m = parse_object(br#"{"z": 1, "a": {"n": null}}"#).unwrap();
        assert_eq!(m[0].0, "z");
        assert_eq!(m[1].0, "a");
        let e = parse_object(br#"{"z": 1,"#).unwrap_err();
        assert!(e.starts_with("malformed JSON at column"), "{e}");
        assert!(parse_object(b"[1]").unwrap_err().contains("a JSON object"));
    }
}
