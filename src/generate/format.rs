//! Low-level formatting shared by the writers: civil dates, timestamps, Salesforce and HubSpot
//! record ids, and a CSV output wrapper that counts rows and names its file in errors.
//!
//! Timestamps are `i64` seconds since the Unix epoch (UTC) and dates are `i64` days since the
//! epoch; both are formatted by hand into stack buffers because the writers format tens of
//! millions of them for a million-deal org.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::GeneratedFile;
use super::error::GenerateError;

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Seconds in an hour.
pub const HOUR: i64 = 3_600;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = u64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

/// The (year, month, day) of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

/// Day number of a chrono date.
pub fn day_of(date: chrono::NaiveDate) -> i64 {
    use chrono::Datelike;
    days_from_civil(i64::from(date.year()), date.month(), date.day())
}

/// True for Saturday and Sunday (day 0, 1970-01-01, was a Thursday).
pub fn is_weekend(day: i64) -> bool {
    (day + 3).rem_euclid(7) >= 5
}

/// Start of business hours, seconds after midnight UTC (13:00 UTC = 8:00 US Eastern).
pub const BUSINESS_OPEN: i64 = 13 * HOUR;
/// End of business hours (23:00 UTC).
pub const BUSINESS_CLOSE: i64 = 23 * HOUR;

/// The first business moment (weekday, 13:00–23:00 UTC) at or after `t`, spreading off-hours
/// times over the next business window. Never earlier than `t`; monotone within a day.
pub fn business_snap(t: i64) -> i64 {
    let mut day = t.div_euclid(DAY);
    let tod = t.rem_euclid(DAY);
    let tod = if tod < BUSINESS_OPEN {
        BUSINESS_OPEN + tod * 10 / 13
    } else if tod < BUSINESS_CLOSE {
        if !is_weekend(day) {
            return t;
        }
        tod
    } else {
        day += 1;
        BUSINESS_OPEN + (tod - BUSINESS_CLOSE) * 10
    };
    while is_weekend(day) {
        day += 1;
    }
    day * DAY + tod
}

/// A formatted date or timestamp on the stack.
#[derive(Clone, Copy)]
pub struct Stamp {
    buf: [u8; 24],
    len: u8,
}

impl Stamp {
    /// The formatted bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for Stamp {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

fn put(buf: &mut [u8], at: usize, value: u32, width: usize) {
    let mut v = value;
    for i in (0..width).rev() {
        buf[at + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn stamp(secs: i64, with_time: bool, seconds_style: bool) -> Stamp {
    let day = secs.div_euclid(DAY);
    let tod = secs.rem_euclid(DAY) as u32;
    let (y, m, d) = civil_from_days(day);
    let mut buf = [0u8; 24];
    put(&mut buf, 0, y.clamp(0, 9_999) as u32, 4);
    buf[4] = b'-';
    put(&mut buf, 5, m, 2);
    buf[7] = b'-';
    put(&mut buf, 8, d, 2);
    if !with_time {
        return Stamp { buf, len: 10 };
    }
    buf[10] = if seconds_style { b'T' } else { b' ' };
    put(&mut buf, 11, tod / 3_600, 2);
    buf[13] = b':';
    put(&mut buf, 14, tod / 60 % 60, 2);
    if !seconds_style {
        return Stamp { buf, len: 16 };
    }
    buf[16] = b':';
    put(&mut buf, 17, tod % 60, 2);
    buf[19..24].copy_from_slice(b".000Z");
    Stamp { buf, len: 24 }
}

/// Salesforce datetime: `YYYY-MM-DDTHH:MM:SS.000Z`.
pub fn sf_datetime(secs: i64) -> Stamp {
    stamp(secs, true, true)
}

/// ISO date `YYYY-MM-DD` of a day number.
pub fn date(day: i64) -> Stamp {
    stamp(day * DAY, false, false)
}

/// HubSpot export datetime: `YYYY-MM-DD HH:MM`.
pub fn hs_datetime(secs: i64) -> Stamp {
    stamp(secs, true, false)
}

/// Salesforce key prefixes of the exported objects.
pub mod prefix {
    pub const ACCOUNT: [u8; 3] = *b"001";
    pub const CONTACT: [u8; 3] = *b"003";
    pub const USER: [u8; 3] = *b"005";
    pub const OPPORTUNITY: [u8; 3] = *b"006";
    pub const OPPORTUNITY_HISTORY: [u8; 3] = *b"008";
    pub const OPPORTUNITY_CONTACT_ROLE: [u8; 3] = *b"00K";
    pub const TASK: [u8; 3] = *b"00T";
    pub const EVENT: [u8; 3] = *b"00U";
    pub const PERIOD: [u8; 3] = *b"026";
    pub const FORECASTING_QUOTA: [u8; 3] = *b"0J9";
    pub const FORECASTING_TYPE: [u8; 3] = *b"0Db";
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Added to every sequence number so ids look like a mature org's, not `...000001`.
const SF_SEQ_OFFSET: u64 = 2_400_000_000;

/// An 18-character Salesforce record id: key prefix (3), pod `8c`, reserved `0`, a 9-character
/// base-62 sequence number, and the 3-character case-safe checksum suffix.
#[derive(Clone, Copy)]
pub struct SfId([u8; 18]);

impl SfId {
    /// The id of the `seq`-th record (0-based) of the object with key prefix `prefix`.
    pub fn new(prefix: [u8; 3], seq: u64) -> Self {
        let mut b = [b'0'; 18];
        b[..3].copy_from_slice(&prefix);
        b[3] = b'8';
        b[4] = b'c';
        let mut n = seq + SF_SEQ_OFFSET;
        for slot in b[6..15].iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        for chunk in 0..3 {
            let mut bits = 0usize;
            for j in 0..5 {
                if b[chunk * 5 + j].is_ascii_uppercase() {
                    bits |= 1 << j;
                }
            }
            b[15 + chunk] = CHECKSUM[bits];
        }
        SfId(b)
    }
}

impl AsRef<[u8]> for SfId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// SplitMix64 finalizer: a fixed bijective scramble of a `u64`.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Base of HubSpot company record ids (10 digits).
pub const HS_COMPANY_BASE: u64 = 5_100_000_000;
/// Base of HubSpot contact record ids (11 digits).
pub const HS_CONTACT_BASE: u64 = 51_000_000_000;
/// Base of HubSpot deal record ids (10 digits).
pub const HS_DEAL_BASE: u64 = 9_200_000_000;
const HS_STEP: u64 = 13;

/// Numeric HubSpot record id of the `seq`-th record of a kind: increasing in `seq`, unique per
/// kind, with a salted jitter so the ids are not consecutive.
pub fn hs_id(base: u64, salt: u64, seq: u64) -> u64 {
    base + seq * HS_STEP + mix64(salt ^ base ^ seq) % HS_STEP
}

/// Decimal formatting of an unsigned integer on the stack.
pub struct Num {
    buf: [u8; 24],
    start: u8,
}

impl Num {
    /// `value` in decimal.
    pub fn new(value: u64) -> Self {
        let mut buf = [0u8; 24];
        let mut i = 20;
        let mut v = value;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Num {
            buf,
            start: i as u8,
        }
    }

    /// `value` in decimal followed by `.00` (Salesforce currency fields).
    pub fn money(value: u64) -> Self {
        let mut n = Num::new(value);
        n.buf[20..23].copy_from_slice(b".00");
        n.start |= 0x80;
        n
    }
}

impl AsRef<[u8]> for Num {
    fn as_ref(&self) -> &[u8] {
        let start = usize::from(self.start & 0x7f);
        let end = if self.start & 0x80 != 0 { 23 } else { 20 };
        &self.buf[start..end]
    }
}

/// `"true"` or `"false"`.
pub fn boolean(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// One export CSV: every field quoted, `\n` line ends, a header of the vendor's column names.
pub struct CsvOut {
    rel: &'static str,
    path: PathBuf,
    writer: csv::Writer<File>,
    rows: u64,
}

impl CsvOut {
    /// Creates (or truncates) `<root>/<rel>` and writes the header.
    pub fn create(root: &Path, rel: &'static str, header: &[&str]) -> Result<Self, GenerateError> {
        let path = root.join(rel);
        let file = File::create(&path).map_err(|source| GenerateError::Io {
            path: path.clone(),
            source,
        })?;
        let writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .buffer_capacity(1 << 17)
            .from_writer(file);
        let mut out = CsvOut {
            rel,
            path,
            writer,
            rows: 0,
        };
        for h in header {
            out.f(h)?;
        }
        out.writer
            .write_record(None::<&[u8]>)
            .map_err(|source| out.csv_err(source))?;
        Ok(out)
    }

    fn csv_err(&self, source: csv::Error) -> GenerateError {
        GenerateError::Csv {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one field of the current row.
    #[inline]
    pub fn f(&mut self, value: impl AsRef<[u8]>) -> Result<(), GenerateError> {
        match self.writer.write_field(value) {
            Ok(()) => Ok(()),
            Err(source) => Err(self.csv_err(source)),
        }
    }

    /// Writes an empty field.
    #[inline]
    pub fn empty(&mut self) -> Result<(), GenerateError> {
        self.f(b"")
    }

    /// Ends the current row.
    #[inline]
    pub fn end(&mut self) -> Result<(), GenerateError> {
        match self.writer.write_record(None::<&[u8]>) {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(source) => Err(self.csv_err(source)),
        }
    }

    /// Flushes the file and reports it.
    pub fn finish(mut self) -> Result<(&'static str, GeneratedFile), GenerateError> {
        if let Err(source) = self.writer.flush() {
            return Err(GenerateError::Io {
                path: self.path,
                source,
            });
        }
        Ok((
            self.rel,
            GeneratedFile {
                path: self.path,
                rows: self.rows,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_formats() {
        for day in [-1000, 0, 19_358, 20_453, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        let secs = days_from_civil(2024, 2, 29) * DAY + 13 * HOUR + 5 * 60 + 9;
        assert_eq!(sf_datetime(secs).as_bytes(), b"2024-02-29T13:05:09.000Z");
        assert_eq!(hs_datetime(secs).as_bytes(), b"2024-02-29 13:05");
        assert_eq!(date(days_from_civil(2023, 1, 1)).as_bytes(), b"2023-01-01");
        assert!(is_weekend(days_from_civil(2023, 1, 1))); // a Sunday
        assert!(!is_weekend(days_from_civil(2023, 1, 2)));
        let saturday_night = days_from_civil(2023, 1, 7) * DAY + 2 * HOUR;
        let snapped = business_snap(saturday_night);
        assert!(snapped > saturday_night);
        assert!(!is_weekend(snapped.div_euclid(DAY)));
        let tod = snapped.rem_euclid(DAY);
        assert!((BUSINESS_OPEN..BUSINESS_CLOSE).contains(&tod));
        let monday_noon_utc = days_from_civil(2023, 1, 9) * DAY + 14 * HOUR;
        assert_eq!(business_snap(monday_noon_utc), monday_noon_utc);
    }

    #[test]
    fn salesforce_ids_have_prefix_and_checksum() {
        let id = SfId::new(prefix::OPPORTUNITY, 12_345);
        let s = std::str::from_utf8(id.as_ref()).unwrap_or_default();
        assert_eq!(s.len(), 18);
        assert!(s.starts_with("0068c0"));
        // Known case-safe suffix rule: recompute from the 15-character id.
        let body = &s.as_bytes()[..15];
        for chunk in 0..3 {
            let bits: usize = (0..5)
                .filter(|j| body[chunk * 5 + j].is_ascii_uppercase())
                .map(|j| 1 << j)
                .sum();
            assert_eq!(s.as_bytes()[15 + chunk], CHECKSUM[bits]);
        }
        assert_ne!(
            SfId::new(prefix::OPPORTUNITY, 1).as_ref(),
            SfId::new(prefix::OPPORTUNITY, 2).as_ref()
        );
    }

    #[test]
    fn numbers_format() {
        assert_eq!(Num::new(0).as_ref(), b"0");
        assert_eq!(Num::new(1_234_567).as_ref(), b"1234567");
        assert_eq!(Num::money(12_500).as_ref(), b"12500.00");
        assert_eq!(Num::new(u64::MAX).as_ref(), u64::MAX.to_string().as_bytes());
        assert!(hs_id(HS_COMPANY_BASE, 7, 0) < hs_id(HS_COMPANY_BASE, 7, 1));
    }
}
