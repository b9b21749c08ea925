//! SQL helper functions registered in every session.
//!
//! | function | returns | what |
//! | --- | --- | --- |
//! | [`uuid5(a, b, ...)`](record_id) | Utf8 | deterministic record id of the parts |
//! | [`normalize_domain(email_or_url)`](normalize_domain()) | Utf8 | lower-case host without `www.` |
//! | [`normalize_company(name)`](normalize_company()) | Utf8 | company name for matching, legal forms removed |
//! | [`jaro_winkler(a, b)`](jaro_winkler()) | Float64 | string similarity in `[0, 1]` |
//! | [`stage_normalize(source, raw_stage)`](StageMap) | Utf8 | canonical deal stage from `seeds/stage_mappings.csv` |
//! | [`business_days(a, b)`](business_days()) | Int64 | weekdays from `a` (inclusive) to `b` (exclusive) |
//! | [`json_get(json, pointer)`](json_get()) | Utf8 | the value at a JSON Pointer of JSON text |
//! | [`stripe_mrr(items, currency)`](stripe_mrr()) | Float64 | monthly recurring amount of a Stripe subscription's items |
//! | [`minor_unit_scale(currency)`](minor_unit_scale()) | Float64 | minor units per major unit (1 for JPY, KRW, ...; else 100) |
//!
//! Every function is vectorized over Arrow arrays (Utf8, LargeUtf8 and Utf8View for text),
//! accepts scalar and array arguments alike, and maps a null argument to a null result.
//! `stage_normalize` needs the seed mapping when it is registered: [`register_with`] takes it
//! from [`UdfSeeds`]; [`register`] registers it with an empty mapping.

mod args;
mod business_days;
mod error;
mod jaro_winkler;
mod json_get;
mod normalize_company;
mod normalize_domain;
mod stage_normalize;
mod uuid5;

#[cfg(test)]
mod testing;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use business_days::business_days;
pub use error::SeedError;
pub use jaro_winkler::jaro_winkler;
pub use json_get::{json_get, minor_unit_scale, stripe_mrr};
pub use normalize_company::normalize_company;
pub use normalize_domain::normalize_domain;
pub use stage_normalize::{STAGE_MAPPINGS_FILE, StageMap, UdfSeeds};
pub use uuid5::{ID_NAMESPACE, record_id};

/// Registers the helpers in `ctx`, `stage_normalize` with no mappings (it returns null).
pub fn register(ctx: &SessionContext) {
    register_with(ctx, &UdfSeeds::default());
}

/// Registers the helpers in `ctx`, `stage_normalize` with the mappings of `seeds`.
pub fn register_with(ctx: &SessionContext, seeds: &UdfSeeds) {
    ctx.register_udf(ScalarUDF::new_from_impl(uuid5::Uuid5::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(
        normalize_domain::NormalizeDomain::default(),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(
        normalize_company::NormalizeCompany::default(),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(
        jaro_winkler::JaroWinkler::default(),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(
        stage_normalize::StageNormalize::new(seeds.stages().clone()),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(
        business_days::BusinessDays::default(),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(json_get::JsonGet::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(json_get::StripeMrr::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(json_get::MinorUnitScale::default()));
}
