//! How the pages write numbers: whole dollars with thousands separators, percentages with one
//! decimal, counts with separators. The same functions are the templates' filters.

/// `1234567.4` → `1,234,567`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let rounded = v.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// `1234567.4` → `$1,234,567`; `-5` → `-$5`.
pub fn money(v: f64) -> String {
    let t = thousands(v);
    match t.strip_prefix('-') {
        Some(rest) => format!("-${rest}"),
        None if t == "—" => t,
        None => format!("${t}"),
    }
}

/// A share in [0, 1] as `41.7%`.
pub fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", 100.0 * v)
    } else {
        "—".to_string()
    }
}

/// `$1.2M`, `$350k`: for chart axes.
pub fn short_money(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("${x:.1}{unit}")
}

/// The template filters: `money`, `pct`, `num` (no value prints `—`).
pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_filter("money", |v: Option<f64>| v.map_or("—".to_string(), money));
    env.add_filter("pct", |v: Option<f64>| v.map_or("—".to_string(), pct));
    env.add_filter("num", |v: Option<f64>| v.map_or("—".to_string(), thousands));
    env.add_filter("fixed1", |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or("—".to_string(), |x| format!("{x:.1}"))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_with_separators_and_signs() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(money(-1_234.0), "-$1,234");
        assert_eq!(money(f64::NAN), "—");
        assert_eq!(pct(0.41666), "41.7%");
        assert_eq!(short_money(1_250_000.0), "$1.2M");
    }
}
