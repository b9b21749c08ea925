//! `json_get(json, pointer)`: one value out of a JSON text column (connectors land nested
//! vendor objects and arrays as JSON text, e.g. Stripe's `metadata` or Zendesk's
//! `domain_names`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder};
use arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use super::args::{Text, build_text, output, output_rows, text_args};

/// The value at the JSON Pointer `pointer` (RFC 6901: `/data/0/price/nickname`, `""` for the
/// whole document) of the JSON text `json`, as text: a string as itself, a number or boolean
/// as written, an object or array as compact JSON. `None` when the text is not JSON, the
/// pointer is not there, or the value is null.
///
/// ```
/// use revlake::sql::udf::json_get;
///
/// assert_eq!(json_get(r#"{"crm":{"id":"001A"}}"#, "/crm/id").as_deref(), Some("001A"));
/// assert_eq!(json_get(r#"["acme.com","acme.io"]"#, "/1").as_deref(), Some("acme.io"));
/// assert_eq!(json_get(r#"{"n":2.5}"#, "/n").as_deref(), Some("2.5"));
/// assert_eq!(json_get("not json", "/a"), None);
/// ```
pub fn json_get(json: &str, pointer: &str) -> Option<String> {
    let value: Value = serde_json::from_str(json).ok()?;
    text_of(value.pointer(pointer)?)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `json_get(json, pointer)` → Utf8: see [`json_get`].
///
/// ```sql
/// SELECT json_get(metadata, '/salesforce_account_id') FROM raw.stripe_customers;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct JsonGet {
    signature: Signature,
}

impl Default for JsonGet {
    fn default() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        "json_get"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let number_rows = args.number_rows;
        let args = text_args(args.args)?;
        let rows = output_rows(&args, number_rows);
        let [json, pointer] = take_function_args(self.name(), &args)?;
        let (json, pointer) = (Text::new(json)?, Text::new(pointer)?);
        let array = build_text(rows, |i, buf| match (json.get(i), pointer.get(i)) {
            (Some(j), Some(p)) => match json_get(j, p) {
                Some(v) => {
                    buf.push_str(&v);
                    true
                }
                None => false,
            },
            _ => false,
        });
        output(array, &args)
    }
}

/// Currencies Stripe counts in whole units rather than hundredths.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Minor units per major unit of `currency` (an ISO code, any case): 1 for the zero-decimal
/// currencies billing systems count in whole units (JPY, KRW, ...), else 100.
///
/// ```
/// use revlake::sql::udf::minor_unit_scale;
///
/// assert_eq!(minor_unit_scale("usd"), 100.0);
/// assert_eq!(minor_unit_scale(" JPY "), 1.0);
/// ```
pub fn minor_unit_scale(currency: &str) -> f64 {
    if ZERO_DECIMAL.contains(&currency.trim().to_ascii_lowercase().as_str()) {
        1.0
    } else {
        100.0
    }
}

/// Months in a billing period of `count` intervals.
fn months(interval: &str, count: f64) -> Option<f64> {
    let per = match interval {
        "day" => 12.0 / 365.0,
        "week" => 12.0 / 52.0,
        "month" => 1.0,
        "year" => 12.0,
        _ => return None,
    };
    (count > 0.0).then_some(count * per)
}

/// The monthly recurring amount, in the currency's major unit, of a Stripe subscription's
/// `items` list (`{"data": [{"price": {...}, "quantity": n}, ...]}`, as the subscriptions
/// API returns it): per item the price's `unit_amount` (or `unit_amount_decimal`) × quantity
/// over the months of its `recurring` interval × `interval_count`; items on a legacy `plan`
/// (`amount`, `interval`) count the same way. Metered and tiered prices (no unit amount) and
/// one-off prices add nothing. `None` when the text is not such a list.
///
/// ```
/// use revlake::sql::udf::stripe_mrr;
///
/// let items = r#"{"data":[{"quantity":3,"price":{"unit_amount":1000,
///     "recurring":{"interval":"month","interval_count":1}}},
///   {"quantity":1,"price":{"unit_amount":120000,
///     "recurring":{"interval":"year","interval_count":1}}}]}"#;
/// assert_eq!(stripe_mrr(items, "usd"), Some(130.0));
/// ```
pub fn stripe_mrr(items: &str, currency: &str) -> Option<f64> {
    let value: Value = serde_json::from_str(items).ok()?;
    let list = value.get("data").unwrap_or(&value).as_array()?;
    let minor = minor_unit_scale(currency);
    let mut total = 0.0;
    for item in list {
        let quantity = item.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
        let (amount, interval, count) = if let Some(price) = item.get("price") {
            let Some(recurring) = price.get("recurring").filter(|r| r.is_object()) else {
                continue;
            };
            let amount = price
                .get("unit_amount")
                .and_then(Value::as_f64)
                .or_else(|| {
                    price
                        .get("unit_amount_decimal")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                });
            (
                amount,
                recurring.get("interval").and_then(Value::as_str),
                recurring.get("interval_count").and_then(Value::as_f64),
            )
        } else if let Some(plan) = item.get("plan") {
            (
                plan.get("amount").and_then(Value::as_f64),
                plan.get("interval").and_then(Value::as_str),
                plan.get("interval_count").and_then(Value::as_f64),
            )
        } else {
            continue;
        };
        let (Some(amount), Some(m)) = (
            amount,
            interval.and_then(|i| months(i, count.unwrap_or(1.0))),
        ) else {
            continue;
        };
        total += amount * quantity / m / minor;
    }
    Some(total)
}

/// `stripe_mrr(items, currency)` → Float64: see [`stripe_mrr`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct StripeMrr {
    signature: Signature,
}

impl Default for StripeMrr {
    fn default() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for StripeMrr {
    fn name(&self) -> &str {
        "stripe_mrr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let number_rows = args.number_rows;
        let args = text_args(args.args)?;
        let rows = output_rows(&args, number_rows);
        let [items, currency] = take_function_args(self.name(), &args)?;
        let (items, currency) = (Text::new(items)?, Text::new(currency)?);
        let mut out = Float64Builder::with_capacity(rows);
        for i in 0..rows {
            out.append_option(
                items
                    .get(i)
                    .and_then(|s| stripe_mrr(s, currency.get(i).unwrap_or("usd"))),
            );
        }
        let array: ArrayRef = Arc::new(out.finish());
        output(array, &args)
    }
}

/// `minor_unit_scale(currency)` → Float64: see [`minor_unit_scale`]; null for a null currency.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct MinorUnitScale {
    signature: Signature,
}

impl Default for MinorUnitScale {
    fn default() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MinorUnitScale {
    fn name(&self) -> &str {
        "minor_unit_scale"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let number_rows = args.number_rows;
        let args = text_args(args.args)?;
        let rows = output_rows(&args, number_rows);
        let [currency] = take_function_args(self.name(), &args)?;
        let currency = Text::new(currency)?;
        let mut out = Float64Builder::with_capacity(rows);
        for i in 0..rows {
            out.append_option(currency.get(i).map(minor_unit_scale));
        }
        let array: ArrayRef = Arc::new(out.finish());
        output(array, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_reach_nested_values_and_misses_are_null() {
        let doc = r#"{"a":{"b":[10,{"c":"x"}]},"t":true,"z":null,"o":{"k":1}}"#;
        assert_eq!(json_get(doc, "/a/b/0").as_deref(), Some("10"));
        assert_eq!(json_get(doc, "/a/b/1/c").as_deref(), Some("x"));
        assert_eq!(json_get(doc, "/t").as_deref(), Some("true"));
        assert_eq!(json_get(doc, "/o").as_deref(), Some(r#"{"k":1}"#));
        assert_eq!(json_get(doc, "/z"), None);
        assert_eq!(json_get(doc, "/missing"), None);
        assert_eq!(json_get(doc, "/a/b/7"), None);
        assert_eq!(json_get("{broken", "/a"), None);
    }

    #[test]
    fn mrr_normalizes_intervals_quantities_and_currency_units() {
        // 2 seats at $25 a month, every 3 months: $50 / 3 per month.
        let quarterly = r#"{"data":[{"quantity":2,"price":{"unit_amount":2500,"recurring":{"interval":"month","interval_count":3}}}]}"#;
        assert!((stripe_mrr(quarterly, "usd").unwrap() - 50.0 / 3.0).abs() < 1e-9);
        // A legacy plan, yearly, in yen (zero-decimal): ¥120,000 a year.
        let plan = r#"{"data":[{"quantity":1,"plan":{"amount":120000,"interval":"year","interval_count":1}}]}"#;
        assert_eq!(stripe_mrr(plan, "JPY"), Some(10_000.0));
        // Metered (no unit amount) and one-off prices add nothing.
        let metered = r#"{"data":[{"price":{"unit_amount":null,"recurring":{"interval":"month"}}},{"price":{"unit_amount":500}}]}"#;
        assert_eq!(stripe_mrr(metered, "usd"), Some(0.0));
        // unit_amount_decimal carries sub-cent prices.
        let decimal = r#"{"data":[{"quantity":1000,"price":{"unit_amount_decimal":"0.5","recurring":{"interval":"month","interval_count":1}}}]}"#;
        assert_eq!(stripe_mrr(decimal, "usd"), Some(5.0));
        assert_eq!(stripe_mrr("[]", "usd"), Some(0.0));
        assert_eq!(stripe_mrr("\"text\"", "usd"), None);
    }
}
