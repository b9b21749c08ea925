//! Several files as one import: a warehouse unload writes many part files
//! (`data_0_0_0.snappy.parquet`, `000000000000.parquet`, `part-00000.json.gz`), which land
//! together as one batch when the import is given their folder or a pattern (`unload/*.parquet`).

use std::path::{Path, PathBuf};

use super::detect::{FileFormat, file_format};
use super::error::{FileError, Result};
use super::remote::is_url;

/// The part files `source` names, in name order: every file of a local folder (hidden files
/// and markers such as `_SUCCESS` left out, and, with no format given, files of no known
/// format), or the files matching a `*`/`?` pattern in the last segment of a local path.
/// `None` when `source` is one file (or a URL).
pub(crate) fn expand(source: &str, format: Option<FileFormat>) -> Result<Option<Vec<PathBuf>>> {
    if is_url(source) {
        return Ok(None);
    }
    let path = Path::new(source);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (dir, pattern) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if name.contains(['*', '?']) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, Some(name))
    } else {
        return Ok(None);
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| FileError::io(&dir, e))?;
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::io(&dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path();
        if !file.is_file() {
            continue;
        }
        let wanted = match &pattern {
            Some(p) => matches(p, &file_name),
            None => {
                !file_name.starts_with(['.', '_'])
                    && (format.is_some() || file_format(&file, &file).is_ok())
            }
        };
        if wanted {
            parts.push(file);
        }
    }
    if parts.is_empty() {
        return Err(FileError::Parts {
            path: path.to_path_buf(),
            reason: match pattern {
                Some(_) => "no file matches the pattern".into(),
                None => "the folder holds no file to import".into(),
            },
        });
    }
    parts.sort();
    Ok(Some(parts))
}

/// The one format of every part (each told by its name, else its bytes).
pub(crate) fn common_format(source: &str, parts: &[PathBuf]) -> Result<FileFormat> {
    let mut found: Vec<(FileFormat, &Path)> = Vec::new();
    for p in parts {
        let f = file_format(p, p)?;
        if !found.iter().any(|(g, _)| *g == f) {
            found.push((f, p));
        }
    }
    match found.as_slice() {
        [(f, _)] => Ok(*f),
        _ => Err(FileError::Parts {
            path: PathBuf::from(source),
            reason: format!(
                "the parts are of several formats ({}): import them separately, or narrow the pattern",
                found
                    .iter()
                    .map(|(f, p)| format!("{f}: {}", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` any one.
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_part_names() {
        assert!(matches("*.parquet", "data_0_0_0.snappy.parquet"));
        assert!(matches("data_?_*.parquet", "data_0_1_0.parquet"));
        assert!(!matches("*.parquet", "data_0_0_0.parquet.crc"));
        assert!(matches("*", "x"));
        assert!(!matches("a*b", "acbd"));
    }

    #[test]
    fn a_folder_or_a_pattern_expands_to_its_parts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "data_0_1_0.parquet",
            "data_0_0_0.parquet",
            "_SUCCESS",
            ".data_0_0_0.parquet.crc",
            "notes.md",
        ] {
            std::fs::write(dir.path().join(name), b"PAR1").unwrap();
        }
        let folder = dir.path().display().to_string();
        let parts = expand(&folder, None).unwrap().unwrap();
        let names: Vec<_> = parts
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // notes.md starts with PAR1: its bytes say Parquet.
        assert_eq!(
            names,
            ["data_0_0_0.parquet", "data_0_1_0.parquet", "notes.md"]
        );
        let pattern = dir.path().join("data_*.parquet").display().to_string();
        assert_eq!(expand(&pattern, None).unwrap().unwrap().len(), 2);
        assert!(
            expand(
                &dir.path().join("data_0_0_0.parquet").display().to_string(),
                None
            )
            .unwrap()
            .is_none()
        );
        let none = dir.path().join("*.csv").display().to_string();
        assert!(
            expand(&none, None)
                .unwrap_err()
                .to_string()
                .contains("no file matches")
        );
        assert!(expand("s3://bucket/unload/", None).unwrap().is_none());
    }
}
