//! Deterministic deal-like files for the landing benchmark (`revlake bench landing`): the same
//! records as NDJSON and as CSV, 15 columns of ids, names, amounts, dates, timestamps and
//! booleans. Record `i` depends only on `i`, so every run writes the same bytes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The columns of a benchmark record, in order.
pub const COLUMNS: [&str; 15] = [
    "id",
    "account_id",
    "owner_id",
    "name",
    "stage",
    "amount",
    "currency",
    "probability",
    "close_date",
    "created_at",
    "last_modified_at",
    "is_closed",
    "is_won",
    "lead_source",
    "type",
];

const STAGES: [&str; 8] = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const SOURCES: [&str; 5] = [
    "Web",
    "Partner Referral",
    "Cold Call",
    "Trade Show",
    "Email",
];
const COMPANIES: [&str; 6] = [
    "Acme",
    "Globex",
    "Initech, Inc.",
    "Umbrella \"Health\"",
    "Stark Industries",
    "Wayne Enterprises",
];

/// The files written.
#[derive(Debug, Clone)]
pub struct BenchFiles {
    pub ndjson: PathBuf,
    pub csv: PathBuf,
    pub records: u64,
    pub ndjson_bytes: u64,
    pub csv_bytes: u64,
}

/// SplitMix64: a well-mixed 64-bit value of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The values of record `i` (text, already formatted).
struct Deal {
    id: String,
    account_id: String,
    owner_id: String,
    name: String,
    stage: &'static str,
    amount: String,
    currency: &'static str,
    probability: u32,
    close_date: String,
    created_at: String,
    last_modified_at: String,
    is_closed: bool,
    is_won: bool,
    lead_source: &'static str,
    kind: &'static str,
}

fn civil(days: i64) -> (i64, u32, u32) {
    // Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn timestamp(seconds: i64) -> String {
    let (y, m, d) = civil(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn deal(i: u64) -> Deal {
    let r = mix(i);
    let r2 = mix(r);
    let stage_i = (r % STAGES.len() as u64) as usize;
    let stage = STAGES[stage_i];
    let created = 1_672_531_200 + (r2 % (2 * 365 * 86_400)) as i64; // 2023-01-01 + up to 2 years
    let modified = created + ((r >> 20) % (120 * 86_400)) as i64;
    let close = created / 86_400 + 30 + ((r >> 40) % 180) as i64;
    let (cy, cm, cd) = civil(close);
    let cents = 100_000 + (r2 >> 16) % 25_000_000;
    Deal {
        id: format!("D{i:09}"),
        account_id: format!("A{:07}", (r >> 8) % 200_000),
        owner_id: format!("U{:04}", (r2 >> 8) % 400),
        name: format!(
            "{} - Expansion {}",
            COMPANIES[((r >> 12) % COMPANIES.len() as u64) as usize],
            i % 1000
        ),
        stage,
        amount: format!("{}.{:02}", cents / 100, cents % 100),
        currency: if r2.is_multiple_of(10) { "EUR" } else { "USD" },
        probability: [10, 20, 40, 50, 75, 90, 100, 0][stage_i],
        close_date: format!("{cy:04}-{cm:02}-{cd:02}"),
        created_at: timestamp(created),
        last_modified_at: timestamp(modified),
        is_closed: stage_i >= 6,
        is_won: stage_i == 6,
        lead_source: SOURCES[((r >> 24) % SOURCES.len() as u64) as usize],
        kind: if (r >> 32).is_multiple_of(3) {
            "Existing Business"
        } else {
            "New Business"
        },
    }
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// Writes `deals.ndjson` and `deals.csv` of `records` records into `dir`.
pub fn write_deal_files(dir: &Path, records: u64) -> std::io::Result<BenchFiles> {
    std::fs::create_dir_all(dir)?;
    let ndjson = dir.join("deals.ndjson");
    let csv = dir.join("deals.csv");
    let mut nd = BufWriter::with_capacity(1 << 20, std::fs::File::create(&ndjson)?);
    let mut cs = BufWriter::with_capacity(1 << 20, std::fs::File::create(&csv)?);
    writeln!(cs, "{}", COLUMNS.join(","))?;
    let mut line = String::with_capacity(512);
    for i in 0..records {
        let d = deal(i);
        line.clear();
        let text: [&str; 15] = [
            &d.id,
            &d.account_id,
            &d.owner_id,
            &d.name,
            d.stage,
            &d.amount,
            d.currency,
            "",
            &d.close_date,
            &d.created_at,
            &d.last_modified_at,
            "",
            "",
            d.lead_source,
            d.kind,
        ];
        for (n, v) in text.iter().enumerate() {
            if n > 0 {
                line.push(',');
            }
            match n {
                7 => line.push_str(&d.probability.to_string()),
                11 => line.push_str(if d.is_closed { "true" } else { "false" }),
                12 => line.push_str(if d.is_won { "true" } else { "false" }),
                _ => csv_field(&mut line, v),
            }
        }
        line.push('\n');
        cs.write_all(line.as_bytes())?;

        line.clear();
        line.push('{');
        for (n, (name, v)) in COLUMNS.iter().zip(text).enumerate() {
            if n > 0 {
                line.push(',');
            }
            line.push('"');
            line.push_str(name);
            line.push_str("\":");
            match n {
                5 => line.push_str(&d.amount),
                7 => line.push_str(&d.probability.to_string()),
                11 => line.push_str(if d.is_closed { "true" } else { "false" }),
                12 => line.push_str(if d.is_won { "true" } else { "false" }),
                _ => super::read::push_json_string(&mut line, v),
            }
        }
        line.push_str("}\n");
        nd.write_all(line.as_bytes())?;
    }
    nd.flush()?;
    cs.flush()?;
    drop((nd, cs));
    Ok(BenchFiles {
        ndjson_bytes: std::fs::metadata(&ndjson)?.len(),
        csv_bytes: std::fs::metadata(&csv)?.len(),
        ndjson,
        csv,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_files_are_deterministic_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_deal_files(&dir.path().join("a"), 50).unwrap();
        let b = write_deal_files(&dir.path().join("b"), 50).unwrap();
        assert_eq!(
            std::fs::read(&a.ndjson).unwrap(),
            std::fs::read(&b.ndjson).unwrap()
        );
        let text = std::fs::read_to_string(&a.ndjson).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 15);
        }
        let mut csv = ::csv::Reader::from_path(&a.csv).unwrap();
        assert_eq!(csv.records().count(), 50);
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_738_315_800), "2025-01-31T09:30:00Z");
    }
}
