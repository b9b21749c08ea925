//! Column names of landed data: source field names as snake_case identifiers.

use std::collections::HashSet;

/// Columns the lake adds to every landed record; a source field of the same name is prefixed
/// with `src_`.
pub const RESERVED: [&str; 6] = [
    "workspace_id",
    "source_data",
    "_synced_at",
    "_sync_id",
    "_source_file",
    "_source_record",
];

/// `StageName` → `stage_name`, `Record ID` → `record_id`,
/// `Date entered "Closed Won (Sales Pipeline)"` → `date_entered_closed_won_sales_pipeline`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && i > 0 {
                let prev = chars[i - 1];
                // `HTTPStatus` splits before `S`; a plural acronym (`IDs`, `URLs`) stays whole.
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars.get(i + 2).is_some_and(|n| n.is_lowercase());
                let boundary = prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next_lower);
                if boundary && !out.ends_with('_') {
                    out.push('_');
                }
            }
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let trimmed = out.trim_end_matches('_').to_string();
    let ascii: String = trimmed
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match ascii.chars().next() {
        None => String::new(),
        Some(c) if c.is_ascii_digit() => format!("c_{ascii}"),
        Some(_) => ascii,
    }
}

/// Unique snake_case column names for a header, keeping order: empty names become `column_N`,
/// repeats get `_2`, `_3`, and reserved names are prefixed with `src_`.
pub fn column_names(header: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut base = snake_case(h);
            if base.is_empty() {
                base = format!("column_{}", i + 1);
            }
            if RESERVED.contains(&base.as_str()) {
                base = format!("src_{base}");
            }
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_field_names_become_snake_case() {
        for (from, to) in [
            ("StageName", "stage_name"),
            ("Id", "id"),
            ("AccountId", "account_id"),
            ("SystemModstamp", "system_modstamp"),
            ("CurrencyIsoCode", "currency_iso_code"),
            ("IsWon", "is_won"),
            ("Record ID", "record_id"),
            ("HTTPStatus", "http_status"),
            ("Associated Company IDs", "associated_company_ids"),
            (
                "Date entered \"Closed Won (Sales Pipeline)\"",
                "date_entered_closed_won_sales_pipeline",
            ),
            ("Number of Employees", "number_of_employees"),
            ("2nd Owner", "c_2nd_owner"),
            ("Größe", "gr__e"),
        ] {
            assert_eq!(snake_case(from), to, "{from}");
        }
    }

    #[test]
    fn headers_get_unique_names() {
        let h: Vec<String> = ["Id", "ID", "", "workspace_id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            column_names(&h),
            ["id", "id_2", "column_3", "src_workspace_id"]
        );
    }
}
