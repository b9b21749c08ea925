//! The weekly executive digest: one self-contained HTML page (inline CSS, no scripts, no
//! network) with the pipeline by segment, quarter win-rate trends, the health index, the open
//! alerts and the riskiest deals. Every interpolated text goes through [`escape`].

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::alerts::AlertRow;
use super::score::{DealScore, Method};
use super::trends::{DealFact, HealthIndex, quarter_label, quarter_of, segment_quarter};

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the digest shows.
pub struct DigestInput<'a> {
    pub workspace: &'a str,
    pub as_of: DateTime<Utc>,
    pub method: &'a Method,
    pub scores: &'a [DealScore],
    pub facts: &'a [DealFact],
    pub health: Option<&'a HealthIndex>,
    pub alerts: &'a [AlertRow],
}

const CSS: &str = "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2933;max-width:1100px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d9e2ec;padding-bottom:4px}\
.muted{color:#627d98;font-size:13px}.cards{display:flex;gap:12px;flex-wrap:wrap}\
.card{border:1px solid #d9e2ec;border-radius:6px;padding:10px 14px;min-width:140px}\
.card b{display:block;font-size:20px}table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{border-bottom:1px solid #e4e7eb;padding:6px 8px;text-align:left}th{background:#f5f7fa}\
td.n{text-align:right}.down{color:#c62828}.up{color:#2e7d32}\
.sev-critical{color:#c62828;font-weight:bold}.sev-warning{color:#b26a00}.sev-info{color:#486581}";

fn money(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("${:.1}M", x / 1e6)
    } else if x.abs() >= 1e3 {
        format!("${:.0}K", x / 1e3)
    } else {
        format!("${x:.0}")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_string(), |x| format!("{:.0}%", 100.0 * x))
}

/// The digest page.
pub fn render(input: &DigestInput<'_>) -> String {
    let mut h = String::new();
    let scores = input.scores;
    let avg_risk = if scores.is_empty() {
        0.0
    } else {
        scores.iter().map(|s| f64::from(s.deal_risk)).sum::<f64>() / scores.len() as f64
    };
    let pipeline: f64 = scores.iter().filter_map(|s| s.amount).sum();
    let high = scores.iter().filter(|s| s.deal_risk > 75).count();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Weekly digest: {ws}</title><style>{CSS}</style></head><body>\
         <h1>Weekly executive digest: {ws}</h1><p class=\"muted\">As of {as_of}. Scores by {method}.</p>",
        ws = escape(input.workspace),
        as_of = input.as_of.format("%Y-%m-%d %H:%M UTC"),
        method = escape(&match input.method {
            Method::Model { version } => format!("the risk model (version {version})"),
            Method::Rules { reason } => format!("transparent rules ({reason})"),
        }),
    );
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card\"><b>{}</b>open deals</div><div class=\"card\"><b>{}</b>open pipeline</div>\
         <div class=\"card\"><b>{avg_risk:.0}</b>average risk</div><div class=\"card\"><b>{high}</b>deals at risk &gt; 75</div>\
         <div class=\"card\"><b>{}</b>pipeline health index</div></div>",
        scores.len(),
        money(pipeline),
        input
            .health
            .map_or("–".to_string(), |x| format!("{:.0}", x.index)),
    );

    // By segment.
    let q = quarter_of(input.as_of.timestamp() as f64);
    let current: BTreeMap<String, _> = segment_quarter(input.facts, q).into_iter().collect();
    let prior: BTreeMap<String, _> = segment_quarter(input.facts, q - 1).into_iter().collect();
    let mut segments: BTreeMap<&str, Vec<&DealScore>> = BTreeMap::new();
    for s in scores {
        segments.entry(&s.segment).or_default().push(s);
    }
    for name in current.keys().chain(prior.keys()) {
        segments.entry(name).or_default();
    }
    let _ = write!(
        h,
        "<h2>By segment</h2><table><tr><th>segment</th><th>open deals</th><th>pipeline</th><th>avg risk</th>\
         <th>risk &gt; 75</th><th>avg velocity</th><th>win rate {}</th><th>win rate {}</th><th>change</th></tr>",
        quarter_label(q),
        quarter_label(q - 1)
    );
    for (segment, deals) in &segments {
        let n = deals.len() as f64;
        let avg = |f: fn(&DealScore) -> f64| {
            if deals.is_empty() {
                "–".to_string()
            } else {
                format!("{:.2}", deals.iter().map(|s| f(s)).sum::<f64>() / n)
            }
        };
        let now = current.get(*segment).and_then(|s| s.win_rate());
        let then = prior.get(*segment).and_then(|s| s.win_rate());
        let change = match (now, then) {
            (Some(a), Some(b)) => {
                let d = 100.0 * (a - b);
                format!(
                    "<span class=\"{}\">{d:+.0} pts</span>",
                    if d < 0.0 { "down" } else { "up" }
                )
            }
            _ => "–".to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{change}</td></tr>",
            escape(segment),
            deals.len(),
            money(deals.iter().filter_map(|s| s.amount).sum()),
            avg(|s| f64::from(s.deal_risk)).replace(".00", ""),
            deals.iter().filter(|s| s.deal_risk > 75).count(),
            avg(|s| s.velocity_score),
            pct(now),
            pct(then),
        );
    }
    h.push_str("</table>");

    if let Some(health) = input.health {
        let _ = write!(
            h,
            "<h2>Pipeline health index: {:.0}/100{}</h2><table><tr><th>component</th><th>last 90 days</th><th>prior 90 days</th><th>score</th></tr>",
            health.index,
            health
                .previous
                .map_or(String::new(), |p| format!(" (previous period {p:.0})"))
        );
        for c in &health.components {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.0}</td></tr>",
                escape(c.name),
                c.current,
                c.prior,
                c.score
            );
        }
        h.push_str("</table>");
    }

    let open: Vec<&AlertRow> = input.alerts.iter().filter(|a| a.status == "open").collect();
    let _ = write!(h, "<h2>Open alerts ({})</h2>", open.len());
    if open.is_empty() {
        h.push_str("<p class=\"muted\">None.</p>");
    } else {
        h.push_str("<table><tr><th>severity</th><th>alert</th><th>audience</th><th>first seen</th><th>new</th></tr>");
        let mut open = open;
        open.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.title.cmp(&b.title)));
        for a in open.iter().take(50) {
            let _ = write!(
                h,
                "<tr><td class=\"sev-{sev}\">{sev}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.title),
                escape(&a.audience),
                a.first_seen.format("%Y-%m-%d"),
                if a.is_new { "new" } else { "" },
                sev = escape(&a.severity),
            );
        }
        h.push_str("</table>");
    }

    let mut riskiest: Vec<&DealScore> = scores.iter().collect();
    riskiest.sort_by(|a, b| {
        b.deal_risk
            .cmp(&a.deal_risk)
            .then(b.amount.unwrap_or(0.0).total_cmp(&a.amount.unwrap_or(0.0)))
    });
    h.push_str("<h2>Riskiest deals</h2><table><tr><th>deal</th><th>segment</th><th>stage</th><th>amount</th><th>risk</th><th>top factors</th></tr>");
    for s in riskiest.iter().take(10) {
        let factors: Vec<String> = s.factors.iter().map(|f| escape(&f.text)).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&s.deal_name),
            escape(&s.segment),
            escape(&s.stage),
            s.amount.map_or("–".to_string(), money),
            s.deal_risk,
            factors.join("<br>")
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralizes_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn digest_is_self_contained_and_escapes_names() {
        let method = Method::Rules {
            reason: "few deals".into(),
        };
        let html = render(&DigestInput {
            workspace: "acme",
            as_of: "2025-12-31T00:00:00Z".parse().unwrap(),
            method: &method,
            scores: &[],
            facts: &[DealFact {
                id: "d".into(),
                segment: "<b>smb</b>".into(),
                created_at: Some(1.7e9),
                closed_at: Some(1_767_000_000.0),
                won: true,
                amount: 10.0,
                moves: Vec::new(),
            }],
            health: None,
            alerts: &[],
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("&lt;b&gt;smb&lt;/b&gt;"));
        assert!(!html.contains("<b>smb"));
        assert!(!html.contains("http"), "no network references");
        assert!(html.contains("transparent rules (few deals)"));
    }
}
