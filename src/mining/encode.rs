//! Dense integer codes for strings: stage names as `u16` (through Arrow's dictionary cast, one
//! lookup per distinct value of a batch), deal ids as `u32` (a hash index probed in parallel).

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt16Type};
use rayon::prelude::*;

use super::error::{MiningError, Result};

/// The code of a missing value (NULL stage, unknown deal).
pub const NONE16: u16 = u16::MAX;
/// The code of a missing deal.
pub const NONE32: u32 = u32::MAX;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Names to dense `u16` codes, in first-seen order.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    names: Vec<String>,
    index: FastMap<String, u16>,
}

impl Dict {
    /// The most names a dictionary holds (`u16::MAX` is [`NONE16`]).
    pub const MAX: usize = u16::MAX as usize;

    pub fn new() -> Self {
        Self::default()
    }

    /// The code of `name`, added when new; `None` when the dictionary is full.
    pub fn code(&mut self, name: &str) -> Option<u16> {
        if let Some(c) = self.index.get(name) {
            return Some(*c);
        }
        if self.names.len() >= Self::MAX {
            return None;
        }
        let c = self.names.len() as u16;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), c);
        Some(c)
    }

    /// The code of `name` if known.
    pub fn get(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }

    pub fn name(&self, code: u16) -> &str {
        &self.names[code as usize]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Appends the codes of a string array (Utf8, LargeUtf8, Utf8View or a dictionary of them)
    /// to `out`, NULL as [`NONE16`].
    ///
    /// The array is cast to `Dictionary(UInt16, _)` by Arrow (its hash kernel finds the distinct
    /// values), then only the batch's dictionary is looked up here and the keys are remapped.
    pub fn encode(&mut self, array: &dyn Array, out: &mut Vec<u16>) -> Result<()> {
        let prepared = Self::prepare(array)?;
        self.extend(&prepared, out)
    }

    /// The dictionary cast of [`Dict::encode`], the costly half: it needs no dictionary, so
    /// batches can be prepared in parallel and then added in order with [`Dict::extend`].
    pub fn prepare(array: &dyn Array) -> Result<Prepared> {
        let value_type = match array.data_type() {
            DataType::Dictionary(_, v) => v.as_ref().clone(),
            other => other.clone(),
        };
        let dict = cast(
            array,
            &DataType::Dictionary(Box::new(DataType::UInt16), Box::new(value_type)),
        )
        .map_err(MiningError::arrow("a stage dictionary"))?;
        if StrCol::new(dict.as_dictionary::<UInt16Type>().values().as_ref()).is_none() {
            return Err(not_strings(array)());
        }
        Ok(Prepared(dict))
    }

    /// Appends the codes of a prepared array to `out`, adding its new names.
    pub fn extend(&mut self, prepared: &Prepared, out: &mut Vec<u16>) -> Result<()> {
        let dict = prepared.0.as_dictionary::<UInt16Type>();
        let values = StrCol::new(dict.values().as_ref()).ok_or_else(not_strings(&prepared.0))?;
        let mut remap = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            let code = match values.get(i) {
                None => NONE16,
                Some(name) => self.code(name).ok_or(MiningError::TooManyStages {
                    workspace: String::new(),
                    max: Self::MAX,
                })?,
            };
            remap.push(code);
        }
        let keys = dict.keys();
        out.reserve(keys.len());
        if keys.null_count() == 0 {
            out.extend(keys.values().iter().map(|k| remap[*k as usize]));
        } else {
            out.extend(keys.iter().map(|k| k.map_or(NONE16, |k| remap[k as usize])));
        }
        Ok(())
    }
}

/// A string column cast to a `u16` dictionary, ready for [`Dict::extend`].
pub struct Prepared(arrow::array::ArrayRef);

/// A string column of any of Arrow's string layouts, resolved once.
#[derive(Clone, Copy)]
pub(crate) enum StrCol<'a> {
    Utf8(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    View(&'a arrow::array::StringViewArray),
}

impl<'a> StrCol<'a> {
    /// The column, or `None` when `array` is not Utf8, LargeUtf8 or Utf8View.
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        if let Some(a) = array.as_string_opt::<i32>() {
            return Some(StrCol::Utf8(a));
        }
        if let Some(a) = array.as_string_opt::<i64>() {
            return Some(StrCol::Large(a));
        }
        array.as_string_view_opt().map(StrCol::View)
    }

    /// The value at `i`, `None` when NULL.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            StrCol::Utf8(a) => a.len(),
            StrCol::Large(a) => a.len(),
            StrCol::View(a) => a.len(),
        }
    }
}

/// Deal ids to dense `u32` codes: the ids of `staging.deals` first (codes `0..known`), then
/// ids met only in the history (cases of an imported event log, deleted deals).
///
/// Ids in the canonical lowercase hyphenated UUID form (every id revlake's models give) are kept
/// as `u128` keys: no allocation per id and a cheap hash. Any other id (an event log's case
/// names, an uppercase UUID) keeps its text as the key, so two ids share a code exactly when
/// their strings are equal.
#[derive(Debug, Default)]
pub struct DealIndex {
    uuids: FastMap<u128, u32>,
    others: FastMap<Box<str>, u32>,
    len: u32,
    known: u32,
}

/// The key of an id: its UUID bits when it is a canonical lowercase hyphenated UUID.
enum Key<'a> {
    Uuid(u128),
    Text(&'a str),
}

impl<'a> Key<'a> {
    #[inline]
    fn of(id: &'a str) -> Self {
        parse_uuid(id.as_bytes()).map_or(Key::Text(id), Key::Uuid)
    }
}

/// The bits of `8-4-4-4-12` lowercase hex, `None` for anything else (uppercase included, so a
/// UUID key always round-trips to the same text).
#[inline]
fn parse_uuid(b: &[u8]) -> Option<u128> {
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

impl DealIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the ids of `array` (deals rows, in order); returns the codes (a repeated id keeps
    /// its first code).
    pub fn insert_all(&mut self, array: &dyn Array) -> Result<Vec<u32>> {
        let ids = StrCol::new(array).ok_or_else(not_strings(array))?;
        self.uuids.reserve(ids.len());
        let mut codes = Vec::with_capacity(array.len());
        for i in 0..ids.len() {
            codes.push(ids.get(i).map_or(NONE32, |id| self.insert(id)));
        }
        self.known = self.len;
        Ok(codes)
    }

    /// The code of one id, added when new.
    pub fn insert(&mut self, id: &str) -> u32 {
        let next = self.len;
        let code = match Key::of(id) {
            Key::Uuid(k) => *self.uuids.entry(k).or_insert(next),
            Key::Text(t) => match self.others.get(t) {
                Some(c) => *c,
                None => {
                    self.others.insert(t.into(), next);
                    next
                }
            },
        };
        if code == next {
            self.len += 1;
        }
        code
    }

    #[inline]
    fn get(&self, id: &str) -> Option<u32> {
        match Key::of(id) {
            Key::Uuid(k) => self.uuids.get(&k).copied(),
            Key::Text(t) => self.others.get(t).copied(),
        }
    }

    /// Codes of a deal-id column: probed in parallel; ids not seen yet get new codes
    /// (`add_unknown`) or [`NONE32`].
    pub fn probe(&mut self, array: &dyn Array, add_unknown: bool) -> Result<Vec<u32>> {
        let mut codes = self.lookup(array)?;
        if add_unknown {
            let ids = StrCol::new(array).ok_or_else(not_strings(array))?;
            for (i, c) in codes.iter_mut().enumerate() {
                if *c == NONE32
                    && let Some(id) = ids.get(i)
                {
                    *c = self.insert(id);
                }
            }
        }
        Ok(codes)
    }

    /// Codes of a deal-id column without adding any: [`NONE32`] for NULL and unknown ids.
    /// Takes `&self`, so batches can be looked up in parallel.
    pub fn lookup(&self, array: &dyn Array) -> Result<Vec<u32>> {
        let ids = StrCol::new(array).ok_or_else(not_strings(array))?;
        Ok((0..ids.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| ids.get(i).and_then(|id| self.get(id)).unwrap_or(NONE32))
            .collect())
    }

    /// All codes given (deals, then ids only in the history).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Codes of `staging.deals` rows (the others came from the history only).
    pub fn known(&self) -> usize {
        self.known as usize
    }
}

fn not_strings(array: &dyn Array) -> impl FnOnce() -> MiningError + '_ {
    move || MiningError::Arrow {
        what: "a string column",
        source: arrow::error::ArrowError::CastError(format!(
            "deal ids are {}, not strings",
            array.data_type()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray, StringViewArray};

    use super::*;

    #[test]
    fn stages_encode_through_the_dictionary_cast_with_nulls() {
        let mut dict = Dict::new();
        let mut out = Vec::new();
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("lead"),
            None,
            Some("demo"),
            Some("lead"),
        ]));
        dict.encode(a.as_ref(), &mut out).unwrap();
        let b: ArrayRef = Arc::new(StringViewArray::from(vec![Some("demo"), Some("won")]));
        dict.encode(b.as_ref(), &mut out).unwrap();
        assert_eq!(out, [0, NONE16, 1, 0, 1, 2]);
        assert_eq!(dict.names(), ["lead", "demo", "won"]);
    }

    #[test]
    fn deal_ids_probe_known_then_add_history_only_ids() {
        let mut index = DealIndex::new();
        let deals = StringArray::from(vec!["d1", "d2", "d1"]);
        assert_eq!(index.insert_all(&deals).unwrap(), [0, 1, 0]);
        let history = StringArray::from(vec![Some("d2"), Some("x"), None, Some("x")]);
        assert_eq!(
            index.probe(&history, false).unwrap(),
            [1, NONE32, NONE32, NONE32]
        );
        assert_eq!(index.probe(&history, true).unwrap(), [1, 2, NONE32, 2]);
        assert_eq!((index.known(), index.len()), (2, 3));
    }

    #[test]
    fn uuid_ids_and_other_ids_share_codes_only_when_their_text_is_equal() {
        let lower = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let upper = "0F8FAD5B-D9CB-469F-A165-70867728950E";
        let mut index = DealIndex::new();
        let deals = StringArray::from(vec![lower, "case-1", lower]);
        assert_eq!(index.insert_all(&deals).unwrap(), [0, 1, 0]);
        // The uppercase spelling is another id (its text differs); near-UUIDs stay text.
        let history = StringViewArray::from(vec![
            Some(upper),
            Some(lower),
            Some("0f8fad5b-d9cb-469f-a165-70867728950"),
            Some("0f8fad5b_d9cb-469f-a165-70867728950e"),
            Some("case-1"),
            Some(upper),
        ]);
        assert_eq!(index.probe(&history, true).unwrap(), [2, 0, 3, 4, 1, 2]);
        assert_eq!((index.known(), index.len()), (2, 5));
        assert_eq!(
            parse_uuid(lower.as_bytes()),
            Some(0x0f8fad5bd9cb469fa16570867728950e)
        );
        assert_eq!(parse_uuid(upper.as_bytes()), None);
    }
}
