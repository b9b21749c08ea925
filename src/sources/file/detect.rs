//! What a file is: its format (from the extension inside any `.gz`, else the magic bytes), its
//! compression (gzip, decompressed as it is read), its text encoding (BOM, NUL bytes, UTF-8
//! validity) and, for delimited text, its delimiter (sniffed from the first records).

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;

use super::error::{FileError, Result};

/// Bytes read to detect the encoding and sniff the delimiter.
const SAMPLE_BYTES: usize = 64 * 1024;
/// Records the delimiter sniffer looks at.
const SNIFF_RECORDS: usize = 50;

/// The formats a file can be imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Delimited text with a header row; the delimiter is sniffed (`,` `;` tab `|`).
    Csv,
    /// Tab-separated text with a header row.
    Tsv,
    /// A JSON array of objects, or an object holding one such array (`{"records": [...]}`).
    Json,
    /// One JSON object per line (JSON Lines).
    Ndjson,
    /// An Excel workbook: the first sheet, or the one named with `--sheet`.
    Xlsx,
    /// Apache Parquet (a warehouse unload): columns keep their types; nested columns land as
    /// JSON text.
    Parquet,
}

impl FileFormat {
    /// The format an extension stands for: `.csv` `.txt`, `.tsv` `.tab`, `.json`, `.ndjson`
    /// `.jsonl`, `.xlsx` `.xlsm`, `.parquet` `.parq`; a gzipped text file by the extension
    /// before its `.gz` (`events.ndjson.gz`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = |p: &Path| {
            p.extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        };
        let mut ext = ext(path);
        if ext == "gz" || ext == "gzip" {
            let inner = ext_inside_gz(path);
            ext = match inner.as_str() {
                "xlsx" | "xlsm" | "" => format!("{inner}.gz"),
                _ => inner,
            };
        }
        match ext.as_str() {
            "csv" | "txt" => Ok(FileFormat::Csv),
            "tsv" | "tab" => Ok(FileFormat::Tsv),
            "json" => Ok(FileFormat::Json),
            "ndjson" | "jsonl" => Ok(FileFormat::Ndjson),
            "xlsx" | "xlsm" => Ok(FileFormat::Xlsx),
            "parquet" | "parq" | "pqt" => Ok(FileFormat::Parquet),
            _ => Err(FileError::UnknownFormat {
                path: path.to_path_buf(),
                extension: ext,
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Tsv => "tsv",
            FileFormat::Json => "json",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Xlsx => "xlsx",
            FileFormat::Parquet => "parquet",
        }
    }

    /// Whether the format is text (an encoding applies).
    pub fn is_text(self) -> bool {
        !matches!(self, FileFormat::Xlsx | FileFormat::Parquet)
    }
}

/// The extension before a `.gz` suffix (`json` of `events.json.gz`), lowercased.
fn ext_inside_gz(path: &Path) -> String {
    path.file_stem()
        .map(Path::new)
        .and_then(Path::extension)
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The first bytes of a Parquet file (and its last four).
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
/// The first two bytes of a gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The first `n` bytes of a file as stored (not decompressed).
fn head(path: &Path, n: usize) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| FileError::io(path, e))?;
    let mut buf = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::io(path, e))?;
    Ok(buf)
}

/// Whether the file is gzip-compressed (by its magic bytes, whatever its name).
pub(crate) fn is_gzip(path: &Path) -> Result<bool> {
    Ok(head(path, 2)? == GZIP_MAGIC)
}

/// The format of the file at `local`, named `name` (a URL's file name, or the path itself):
/// the extension (inside a `.gz`), else the magic bytes (`PAR1`: Parquet; gzip: the name's
/// inner extension). A `.json` file whose first lines are each one JSON object is NDJSON
/// (Amplitude names its gzipped NDJSON `*.json.gz`).
pub fn file_format(name: &Path, local: &Path) -> Result<FileFormat> {
    let format = match FileFormat::from_path(name) {
        Ok(f) => f,
        Err(unknown) => {
            if head(local, 4)?.as_slice() == PARQUET_MAGIC {
                return Ok(FileFormat::Parquet);
            }
            return Err(unknown);
        }
    };
    if format == FileFormat::Json {
        let (sample, truncated) = sample(local)?;
        let text = decode_sample(&sample, detect_encoding(&sample));
        if looks_like_ndjson(&text, truncated) {
            return Ok(FileFormat::Ndjson);
        }
    }
    Ok(format)
}

/// Whether text that starts with `sample` holds one JSON object per line: its first non-blank
/// line is a whole object, and so is the next (or it starts one, cut by the sample's end).
pub(crate) fn looks_like_ndjson(sample: &str, truncated: bool) -> bool {
    let mut lines = sample
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let is_object =
        |l: &str| l.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok();
    match (lines.next(), lines.next(), lines.next()) {
        (Some(first), Some(second), third) => {
            let cut = truncated && third.is_none();
            is_object(first) && (is_object(second) || (cut && second.starts_with('{')))
        }
        _ => false,
    }
}

/// A reader of the file's bytes, decompressed when it is gzip (any number of members); a
/// truncated or corrupt stream reads as an error naming the compressed byte offset reached.
pub(crate) fn open_raw(path: &Path) -> Result<Box<dyn Read + Send>> {
    let gzip = is_gzip(path)?;
    let file = std::fs::File::open(path).map_err(|e| FileError::io(path, e))?;
    if !gzip {
        return Ok(Box::new(file));
    }
    let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Counted {
        inner: file,
        read: consumed.clone(),
    };
    let decoder =
        flate2::bufread::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 16, counted));
    Ok(Box::new(Gunzip {
        decoder,
        consumed,
        produced: 0,
    }))
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// A gzip decoder whose errors say where in the stream they happened.
struct Gunzip<R: std::io::BufRead> {
    decoder: flate2::bufread::MultiGzDecoder<R>,
    consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    produced: u64,
}

impl<R: std::io::BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.decoder.read(buf) {
            Ok(n) => {
                self.produced += n as u64;
                Ok(n)
            }
            Err(e) => {
                let consumed = self.consumed.load(std::sync::atomic::Ordering::Relaxed);
                let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "truncated"
                } else {
                    "corrupt"
                };
                Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "gzip data is {what} (compressed bytes read: {consumed}, decompressed so far: {}): {e}",
                        self.produced
                    ),
                ))
            }
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text encodings a file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum TextEncoding {
    /// UTF-8, with or without a byte-order mark; a field that is not valid UTF-8 is read as
    /// Windows-1252.
    #[value(name = "utf-8")]
    #[serde(rename = "utf-8")]
    Utf8,
    #[value(name = "utf-16le")]
    #[serde(rename = "utf-16le")]
    Utf16Le,
    #[value(name = "utf-16be")]
    #[serde(rename = "utf-16be")]
    Utf16Be,
    /// Windows-1252 (the Western European ANSI code page, a superset of Latin-1).
    #[value(name = "windows-1252")]
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl TextEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf16Le => "utf-16le",
            TextEncoding::Utf16Be => "utf-16be",
            TextEncoding::Windows1252 => "windows-1252",
        }
    }

    fn encoding(self) -> Option<&'static Encoding> {
        match self {
            TextEncoding::Utf8 => None,
            TextEncoding::Utf16Le => Some(UTF_16LE),
            TextEncoding::Utf16Be => Some(UTF_16BE),
            TextEncoding::Windows1252 => Some(WINDOWS_1252),
        }
    }
}

impl std::fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first bytes of a file, and whether there is more.
pub(crate) fn sample(path: &Path) -> Result<(Vec<u8>, bool)> {
    let file = open_raw(path)?;
    let mut buf = Vec::with_capacity(SAMPLE_BYTES + 1);
    file.take(SAMPLE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::io(path, e))?;
    let truncated = buf.len() > SAMPLE_BYTES;
    buf.truncate(SAMPLE_BYTES);
    Ok((buf, truncated))
}

/// The encoding of text starting with `sample`: a byte-order mark decides; without one, NUL
/// bytes at every other position mean UTF-16 (little-endian when they follow the ASCII byte),
/// and bytes that are not valid UTF-8 mean Windows-1252.
pub fn detect_encoding(sample: &[u8]) -> TextEncoding {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8;
    }
    if sample.starts_with(&[0xFF, 0xFE]) {
        return TextEncoding::Utf16Le;
    }
    if sample.starts_with(&[0xFE, 0xFF]) {
        return TextEncoding::Utf16Be;
    }
    let head = &sample[..sample.len().min(4096)];
    let pairs = head.len() / 2;
    if pairs >= 2 {
        let even_nuls = head.iter().step_by(2).filter(|b| **b == 0).count();
        let odd_nuls = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
        // Mostly-ASCII UTF-16 has a NUL in nearly every code unit; a few NULs elsewhere in a
        // UTF-8 file do not reach a third.
        if odd_nuls * 3 > pairs && even_nuls * 10 < pairs {
            return TextEncoding::Utf16Le;
        }
        if even_nuls * 3 > pairs && odd_nuls * 10 < pairs {
            return TextEncoding::Utf16Be;
        }
    }
    match std::str::from_utf8(sample) {
        Ok(_) => TextEncoding::Utf8,
        // Only a multi-byte character cut at the end of the sample: still UTF-8.
        Err(e) if e.error_len().is_none() => TextEncoding::Utf8,
        Err(_) => TextEncoding::Windows1252,
    }
}

/// A reader of the file as UTF-8 bytes (decompressed, any byte-order mark removed). UTF-8 passes through
/// untouched: fields that are not valid UTF-8 are decoded one by one by [`field_text`].
pub(crate) fn open_text(path: &Path, encoding: TextEncoding) -> Result<Box<dyn Read + Send>> {
    let file = open_raw(path)?;
    let file = std::io::BufReader::with_capacity(1 << 20, file);
    let reader = DecodeReaderBytesBuilder::new()
        .encoding(encoding.encoding())
        .utf8_passthru(true)
        .bom_sniffing(encoding != TextEncoding::Utf8)
        .strip_bom(true)
        .build(file);
    Ok(Box::new(reader))
}

/// The decoded sample (for sniffing), without a byte-order mark.
pub(crate) fn decode_sample(sample: &[u8], encoding: TextEncoding) -> String {
    match encoding.encoding() {
        None => {
            let s = sample.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(sample);
            field_text(s).into_owned()
        }
        Some(enc) => enc.decode_with_bom_removal(sample).0.into_owned(),
    }
}

/// A field's text: UTF-8 when it is valid UTF-8, else Windows-1252 (an export saved in a
/// Western code page that slipped through detection).
pub(crate) fn field_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

/// The delimiters the sniffer chooses from, in order of preference on a tie.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The delimiter of delimited text starting with `sample`: among `,` `;` tab `|`, the one that
/// splits the header into the most fields while every complete record of the sample has the
/// same count (quotes respected). `None` when none occurs in the header.
pub fn sniff_delimiter(sample: &str, truncated: bool) -> Option<u8> {
    let mut best: Option<(u8, usize, usize)> = None; // (delimiter, consistent records, fields)
    for d in CANDIDATES {
        let mut counts = record_counts(sample, d);
        if truncated && counts.len() > 1 {
            counts.pop(); // the last record may be cut
        }
        let Some(&header) = counts.first() else {
            continue;
        };
        if header == 0 {
            continue;
        }
        let consistent = counts.iter().filter(|c| **c == header).count();
        let better = match best {
            None => true,
            Some((_, bc, bf)) => (consistent, header) > (bc, bf),
        };
        if better {
            best = Some((d, consistent, header));
        }
    }
    best.map(|(d, _, _)| d)
}

/// Per record (quotes respected, up to [`SNIFF_RECORDS`]), how many times `delimiter` occurs.
fn record_counts(text: &str, delimiter: u8) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut in_quotes = false;
    let mut count = 0;
    let mut any = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && counts.len() < SNIFF_RECORDS {
        let b = bytes[i];
        if b == b'"' {
            in_quotes = !in_quotes; // `""` inside quotes toggles twice
        } else if !in_quotes && b == delimiter {
            count += 1;
        } else if !in_quotes && (b == b'\n' || b == b'\r') {
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            if any || count > 0 {
                counts.push(count);
            }
            count = 0;
            any = false;
            i += 1;
            continue;
        }
        any = true;
        i += 1;
    }
    if (any || count > 0) && counts.len() < SNIFF_RECORDS {
        counts.push(count);
    }
    counts
}

/// `--delimiter`: one ASCII character, or `tab`, `\t`, `comma`, `semicolon`, `pipe`.
pub fn parse_delimiter(value: &str) -> Result<u8> {
    let d = match value {
        "tab" | "\\t" | "\t" => b'\t',
        "comma" => b',',
        "semicolon" => b';',
        "pipe" => b'|',
        v if v.len() == 1 && v.is_ascii() && v != "\"" && v != "\n" && v != "\r" => v.as_bytes()[0],
        _ => {
            return Err(FileError::BadDelimiter {
                value: value.to_string(),
            });
        }
    };
    Ok(d)
}

/// How a delimiter prints (`tab` for `\t`).
pub fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        d => (d as char).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if le { [0xFF, 0xFE] } else { [0xFE, 0xFF] });
        }
        for u in text.encode_utf16() {
            out.extend(if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn encodings_are_told_by_bom_nul_bytes_and_utf8_validity() {
        let text = "Id,Name\n1,Müller\n";
        assert_eq!(detect_encoding(text.as_bytes()), TextEncoding::Utf8);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend(text.as_bytes());
        assert_eq!(detect_encoding(&bom), TextEncoding::Utf8);
        assert_eq!(
            detect_encoding(&utf16(text, true, true)),
            TextEncoding::Utf16Le
        );
        assert_eq!(
            detect_encoding(&utf16(text, false, true)),
            TextEncoding::Utf16Be
        );
        assert_eq!(
            detect_encoding(&utf16(text, true, false)),
            TextEncoding::Utf16Le
        );
        assert_eq!(
            detect_encoding(&utf16(text, false, false)),
            TextEncoding::Utf16Be
        );
        let (latin, _, _) = WINDOWS_1252.encode(text);
        assert_eq!(detect_encoding(&latin), TextEncoding::Windows1252);
        // A multi-byte character cut by the end of the sample is still UTF-8.
        let cut = &"aé".as_bytes()[..2];
        assert_eq!(detect_encoding(cut), TextEncoding::Utf8);
    }

    #[test]
    fn a_field_that_is_not_utf8_reads_as_windows_1252() {
        assert_eq!(field_text(b"caf\xe9"), "café");
        assert_eq!(field_text("café".as_bytes()), "café");
    }

    #[test]
    fn the_delimiter_is_sniffed_from_consistent_records_respecting_quotes() {
        assert_eq!(sniff_delimiter("a,b,c\n1,2,3\n", false), Some(b','));
        assert_eq!(sniff_delimiter("a;b;c\n1,5;2;3\n", false), Some(b';'));
        assert_eq!(sniff_delimiter("a\tb\n1\t2\n", false), Some(b'\t'));
        assert_eq!(sniff_delimiter("a|b|c\n1|2|3\n", false), Some(b'|'));
        // Commas inside quotes (and a quoted newline) do not count.
        assert_eq!(
            sniff_delimiter("name;note\nx;\"a, b, c\nd, e\"\ny;\"f, g\"\n", false),
            Some(b';')
        );
        // A cut last record is ignored.
        assert_eq!(sniff_delimiter("a;b\n1;2\n3", true), Some(b';'));
        assert_eq!(sniff_delimiter("single\n1\n", false), None);
    }

    #[test]
    fn delimiters_parse_from_names_and_characters() {
        assert_eq!(parse_delimiter("tab").unwrap(), b'\t');
        assert_eq!(parse_delimiter("\\t").unwrap(), b'\t');
        assert_eq!(parse_delimiter(";").unwrap(), b';');
        assert!(parse_delimiter(",,").is_err());
        assert!(parse_delimiter("\"").is_err());
    }

    #[test]
    fn formats_come_from_extensions() {
        for (p, f) in [
            ("a.csv", FileFormat::Csv),
            ("a.TSV", FileFormat::Tsv),
            ("a.json", FileFormat::Json),
            ("a.jsonl", FileFormat::Ndjson),
            ("a.ndjson", FileFormat::Ndjson),
            ("a.xlsx", FileFormat::Xlsx),
        ] {
            assert_eq!(FileFormat::from_path(Path::new(p)).unwrap(), f, "{p}");
        }
        assert!(matches!(
            FileFormat::from_path(Path::new("a.dat")),
            Err(FileError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn gzip_and_parquet_formats_come_from_extensions_and_magic_bytes() {
        for (p, f) in [
            ("data_0_0_0.snappy.parquet", FileFormat::Parquet),
            ("events.ndjson.gz", FileFormat::Ndjson),
            ("events.JSON.GZ", FileFormat::Json),
            ("export.csv.gz", FileFormat::Csv),
            ("export.tsv.gz", FileFormat::Tsv),
            ("data.parquet.gz", FileFormat::Parquet),
        ] {
            assert_eq!(FileFormat::from_path(Path::new(p)).unwrap(), f, "{p}");
        }
        for p in ["a.gz", "a.xlsx.gz"] {
            assert!(FileFormat::from_path(Path::new(p)).is_err(), "{p}");
        }
        let dir = tempfile::tempdir().unwrap();
        // No extension: the bytes tell Parquet.
        let part = dir.path().join("000000000000");
        std::fs::write(&part, b"PAR1....PAR1").unwrap();
        assert_eq!(file_format(&part, &part).unwrap(), FileFormat::Parquet);
        // NDJSON named .json.gz (Amplitude), read through gzip.
        let events = dir.path().join("e.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        std::fs::write(&events, gz.finish().unwrap()).unwrap();
        assert!(is_gzip(&events).unwrap());
        assert_eq!(file_format(&events, &events).unwrap(), FileFormat::Ndjson);
        let mut text = String::new();
        open_raw(&events)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn json_documents_and_json_lines_are_told_apart() {
        assert!(looks_like_ndjson("{\"a\":1}\n{\"a\":2}\n", false));
        assert!(looks_like_ndjson("{\"a\":1}\n{\"a\":", true));
        assert!(!looks_like_ndjson("{\"records\": [{\"a\": 1}]}", false));
        assert!(!looks_like_ndjson("{\n  \"records\": []\n}\n", false));
        assert!(!looks_like_ndjson("[{\"a\":1},\n{\"a\":2}]", false));
    }

    #[test]
    fn a_truncated_gzip_stream_reads_as_an_error_saying_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..5000 {
            std::io::Write::write_all(&mut gz, format!("{{\"id\":{i}}}\n").as_bytes()).unwrap();
        }
        let bytes = gz.finish().unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 50]).unwrap();
        let mut out = Vec::new();
        let err = open_raw(&path)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("gzip data is truncated"), "{err}");
        assert!(err.contains("compressed bytes read"), "{err}");
    }
}
