//! Rendering mining results: the context-free matrix as a text table, the DFG as Graphviz DOT
//! and as a self-contained SVG (a layered layout computed here; no Graphviz needed).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::kernel::WorkspaceMining;
use super::order::StageOrder;

/// Stage names in display order: the stage order first, then the others by name.
pub fn display_order(m: &WorkspaceMining, order: &StageOrder) -> Vec<String> {
    let mut names: Vec<String> = m
        .dfg
        .iter()
        .flat_map(|r| [r.from_stage.clone(), r.to_stage.clone()])
        .chain(m.summary.starts.iter().map(|(s, _)| s.clone()))
        .collect();
    names.sort();
    names.dedup();
    let rank: HashMap<&str, usize> = order
        .stages()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    names.sort_by_key(|n| {
        (
            rank.get(n.as_str()).copied().unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}

/// The context-free matrix: one line per from-stage, `probability (count)` per to-stage.
pub fn matrix_table(m: &WorkspaceMining, order: &StageOrder) -> String {
    let stages = display_order(m, order);
    let cells: HashMap<(&str, &str), (f64, u64)> = m
        .matrix
        .iter()
        .filter(|r| r.context_level == 0)
        .map(|r| {
            (
                (r.from_stage.as_str(), r.to_stage.as_str()),
                (r.probability, r.count),
            )
        })
        .collect();
    let froms: Vec<&String> = stages
        .iter()
        .filter(|s| cells.keys().any(|(f, _)| f == &s.as_str()))
        .collect();
    let tos: Vec<&String> = stages
        .iter()
        .filter(|s| cells.keys().any(|(_, t)| t == &s.as_str()))
        .collect();
    let text = |f: &str, t: &str| match cells.get(&(f, t)) {
        Some((p, n)) => format!("{p:.3} ({n})"),
        None => ".".to_string(),
    };
    let first = froms
        .iter()
        .map(|s| s.len())
        .chain(["from \\ to".len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = tos
        .iter()
        .map(|t| {
            froms
                .iter()
                .map(|f| text(f, t).len())
                .chain([t.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<first$}", "from \\ to");
    for (t, w) in tos.iter().zip(&widths) {
        let _ = write!(out, "  {t:>w$}");
    }
    out.push('\n');
    for f in &froms {
        let _ = write!(out, "{f:<first$}");
        for (t, w) in tos.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", text(f, t));
        }
        out.push('\n');
    }
    out
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The DFG in Graphviz DOT: edges labelled with counts and median days, rework edges red and
/// dashed, width by frequency.
pub fn dfg_dot(m: &WorkspaceMining, order: &StageOrder) -> String {
    let max = m.dfg.iter().map(|r| r.count).max().unwrap_or(1).max(1) as f64;
    let starts: BTreeMap<&str, u64> = m
        .summary
        .starts
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "digraph dfg {{");
    let _ = writeln!(
        out,
        "  label={}; labelloc=t; rankdir=TB;",
        dot_id(&format!(
            "workspace {}: directly-follows graph",
            m.workspace
        ))
    );
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\"];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for s in display_order(m, order) {
        let label = match starts.get(s.as_str()) {
            Some(n) => format!("{s}\n(first stage of {n})"),
            None => s.clone(),
        };
        let _ = writeln!(out, "  {} [label={}];", dot_id(&s), dot_id(&label));
    }
    for r in &m.dfg {
        let mut label = r.count.to_string();
        if let Some(d) = r.median_duration_days {
            let _ = write!(label, "\n{d:.1} d");
        }
        let width = 1.0 + 4.0 * r.count as f64 / max;
        let style = if r.is_rework {
            ", color=\"#c0392b\", fontcolor=\"#c0392b\", style=dashed, constraint=false"
        } else if r.skipped_stages > 0 {
            ", color=\"#7f8c8d\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, penwidth={width:.2}{style}];",
            dot_id(&r.from_stage),
            dot_id(&r.to_stage),
            dot_id(&label)
        );
    }
    out.push_str("}\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 40.0;
const LAYER_GAP: f64 = 95.0;
const COL_GAP: f64 = 200.0;
const MARGIN: f64 = 230.0;
const SIDE_GAP: f64 = 300.0;

/// The DFG as SVG: stages in layers by the stage order (stages outside it by their distance
/// from the first stages; final stages outside it beside the last one), adjacent forward moves
/// as straight arrows, skips as arcs on the right, rework as red dashed arcs on the left.
pub fn dfg_svg(m: &WorkspaceMining, order: &StageOrder) -> String {
    let names = display_order(m, order);
    let rank: HashMap<&str, usize> = order
        .stages()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    // Layers: ranked stages compacted to 0.., others placed after their predecessors.
    let mut ranked: Vec<usize> = names
        .iter()
        .filter_map(|n| rank.get(n.as_str()).copied())
        .collect();
    ranked.sort();
    ranked.dedup();
    let mut layer: HashMap<&str, usize> = HashMap::new();
    for n in &names {
        if let Some(r) = rank.get(n.as_str()) {
            layer.insert(n, ranked.binary_search(r).unwrap_or(0));
        }
    }
    let starts: HashMap<&str, u64> = m
        .summary
        .starts
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    let has_out: std::collections::HashSet<&str> = m
        .dfg
        .iter()
        .filter(|r| r.from_stage != r.to_stage)
        .map(|r| r.from_stage.as_str())
        .collect();
    let last_ranked = ranked.len().saturating_sub(1);
    for n in &names {
        if !layer.contains_key(n.as_str()) && starts.contains_key(n.as_str()) && ranked.is_empty() {
            layer.insert(n, 0);
        }
    }
    // Relax: an unplaced stage goes one layer below its earliest placed predecessor.
    for _ in 0..names.len() {
        let mut changed = false;
        for r in &m.dfg {
            if layer.contains_key(r.to_stage.as_str()) {
                continue;
            }
            if !ranked.is_empty() && !has_out.contains(r.to_stage.as_str()) {
                layer.insert(&r.to_stage, last_ranked);
                changed = true;
                continue;
            }
            if let Some(l) = layer.get(r.from_stage.as_str()).copied() {
                layer.insert(&r.to_stage, l + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let max_layer = layer.values().copied().max().unwrap_or(0);
    for n in &names {
        layer.entry(n).or_insert(max_layer + 1);
    }
    // Final stages outside the order (lost outcomes) go to a side column on the right.
    let side: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !ranked.is_empty() && !rank.contains_key(n) && !has_out.contains(n))
        .collect();
    let mut rows: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for n in &names {
        if !side.contains(&n.as_str()) {
            rows.entry(layer[n.as_str()]).or_default().push(n);
        }
    }
    let widest = rows.values().map(|r| r.len()).max().unwrap_or(1) as f64;
    let side_w = if side.is_empty() {
        0.0
    } else {
        SIDE_GAP + NODE_W
    };
    let width = 2.0 * MARGIN + (widest - 1.0) * COL_GAP + NODE_W + side_w;
    let layers = rows.keys().copied().max().unwrap_or(0) as f64 + 1.0;
    let height = 70.0 + layers * LAYER_GAP + 30.0;
    let main_x = MARGIN + NODE_W / 2.0 + (widest - 1.0) * COL_GAP / 2.0;
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    for (l, row) in &rows {
        let span = (row.len() as f64 - 1.0) * COL_GAP;
        for (i, n) in row.iter().enumerate() {
            let cx = main_x - span / 2.0 + i as f64 * COL_GAP;
            let cy = 70.0 + *l as f64 * LAYER_GAP;
            pos.insert(n, (cx, cy));
        }
    }
    let side_x = main_x + (widest - 1.0) * COL_GAP / 2.0 + SIDE_GAP + NODE_W / 2.0;
    let span = (layers - 1.0) * LAYER_GAP;
    for (i, n) in side.iter().enumerate() {
        let cy = 70.0 + span * (i as f64 + 1.0) / (side.len() as f64 + 1.0);
        pos.insert(n, (side_x, cy));
    }

    let max = m.dfg.iter().map(|r| r.count).max().unwrap_or(1).max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\">"
    );
    out.push_str(
        "<defs>\
<marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><polygon points=\"0,0 10,5 0,10\" fill=\"#34495e\"/></marker>\
<marker id=\"arrow-rework\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><polygon points=\"0,0 10,5 0,10\" fill=\"#c0392b\"/></marker>\
</defs>\n",
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"{:.0}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" fill=\"#2c3e50\">{}</text>",
        width / 2.0,
        xml(&format!(
            "workspace {}: directly-follows graph ({} transitions)",
            m.workspace, m.summary.transitions
        ))
    );
    for r in &m.dfg {
        let (Some(&(ax, ay)), Some(&(bx, by))) =
            (pos.get(r.from_stage.as_str()), pos.get(r.to_stage.as_str()))
        else {
            continue;
        };
        let stroke = 1.0 + 5.0 * r.count as f64 / max;
        let (color, marker, dash) = if r.is_rework {
            ("#c0392b", "arrow-rework", " stroke-dasharray=\"6 4\"")
        } else {
            ("#34495e", "arrow", "")
        };
        let (la, lb) = (layer[r.from_stage.as_str()], layer[r.to_stage.as_str()]);
        let hw = NODE_W / 2.0;
        let hh = NODE_H / 2.0;
        let into_side = side.contains(&r.to_stage.as_str());
        let (path, lx, ly) = if into_side || side.contains(&r.from_stage.as_str()) {
            // Ends spread along the side node's edge by where the edge comes from.
            let dir = if into_side { 1.0 } else { -1.0 };
            let spread = |from_y: f64, at_y: f64| {
                at_y + ((from_y - at_y) / (height / 2.0)).clamp(-1.0, 1.0) * NODE_H * 0.4
            };
            let (sx, sy) = (ax + dir * hw, if into_side { ay } else { spread(by, ay) });
            let (ex, ey) = (bx - dir * hw, if into_side { spread(ay, by) } else { by });
            (
                format!("M{sx:.1},{sy:.1} L{ex:.1},{ey:.1}"),
                sx + 0.3 * (ex - sx),
                sy + 0.3 * (ey - sy) - 3.0,
            )
        } else if r.from_stage == r.to_stage {
            let (x, y) = (ax + hw, ay);
            (
                format!(
                    "M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                    x,
                    y - 8.0,
                    x + 45.0,
                    y - 30.0,
                    x + 45.0,
                    y + 30.0,
                    x,
                    y + 8.0
                ),
                x + 40.0,
                y,
            )
        } else if lb == la + 1 && (ax - bx).abs() < 1.0 {
            (
                format!("M{:.1},{:.1} L{:.1},{:.1}", ax, ay + hh, bx, by - hh),
                ax + 8.0,
                (ay + by) / 2.0,
            )
        } else if lb > la && (ax - bx).abs() >= 1.0 {
            // Forward to another column: a straight arrow.
            let (sx, sy) = (ax + if bx > ax { hw / 2.0 } else { -hw / 2.0 }, ay + hh);
            let (ex, ey) = (bx, by - hh);
            (
                format!("M{sx:.1},{sy:.1} L{ex:.1},{ey:.1}"),
                (sx + ex) / 2.0 + 6.0,
                (sy + ey) / 2.0,
            )
        } else {
            // Arcs: forward skips on the right, rework (and same-layer moves) on the left.
            let forward = lb > la;
            let side = if forward { 1.0 } else { -1.0 };
            let dist = (lb as f64 - la as f64).abs().max(1.0);
            let bulge = 40.0 + 22.0 * dist;
            let (sx, sy) = (ax + side * hw, ay);
            let (ex, ey) = (bx + side * hw, by);
            let (c1x, c2x) = (sx + side * bulge, ex + side * bulge);
            (
                format!("M{sx:.1},{sy:.1} C{c1x:.1},{sy:.1} {c2x:.1},{ey:.1} {ex:.1},{ey:.1}"),
                (sx + 3.0 * c1x + 3.0 * c2x + ex) / 8.0,
                (sy + ey) / 2.0,
            )
        };
        let _ = writeln!(
            out,
            "<path d=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{stroke:.2}\"{dash} marker-end=\"url(#{marker})\" opacity=\"0.85\"><title>{}</title></path>",
            xml(&format!(
                "{} → {}: {}{}",
                r.from_stage,
                r.to_stage,
                r.count,
                r.median_duration_days
                    .map(|d| format!(", median {d:.1} days"))
                    .unwrap_or_default()
            ))
        );
        let _ = writeln!(
            out,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"10\" fill=\"{color}\">{}</text>",
            r.count
        );
    }
    for n in &names {
        let (cx, cy) = pos[n.as_str()];
        let sub = match starts.get(n.as_str()) {
            Some(s) => format!("first stage of {s}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<g><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"8\" fill=\"#eef3fb\" stroke=\"#2c3e50\"/><text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" fill=\"#2c3e50\">{}</text><text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\" fill=\"#7f8c8d\">{}</text></g>",
            cx - NODE_W / 2.0,
            cy - NODE_H / 2.0,
            cy - 1.0,
            xml(n),
            cy + 12.0,
            xml(&sub)
        );
    }
    out.push_str("</svg>\n");
    out
}
