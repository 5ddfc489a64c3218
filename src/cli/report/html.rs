//! The report as one HTML page: its styles inline and its charts drawn here as inline
//! SVG, so it opens anywhere with no network (and prints) — no script, no font, no
//! stylesheet, no image to fetch. The tables are the CSV files' (`tables`).

use std::fmt::Write as _;

use serde_json::Value;

use super::tables::{self, DECISIONS, Table, cell, date, items};

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 36.0;
const COLOURS: [&str; 8] = [
    "#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096", "#d69e2e", "#319795",
];

/// Text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A line of a chart: its name and a value per label (`None`: no point).
struct Series {
    name: String,
    values: Vec<Option<f64>>,
}

/// The smallest of 1, 2 or 5 × 10ⁿ at or above `max`.
fn nice(max: f64) -> f64 {
    let max = max.max(1.0);
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The frame: horizontal grid lines with their values, labels along the bottom.
fn frame(out: &mut String, top: f64, labels: &[String], x: impl Fn(usize) -> f64) {
    let plot = H - TOP - BOTTOM;
    for k in 0..=4 {
        let y = TOP + plot * f64::from(k) / 4.0;
        let v = top * f64::from(4 - k) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e2e8f0"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(v)
        );
    }
    let step = labels.len().div_ceil(8).max(1);
    for (i, l) in labels.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text>"#,
            x(i),
            H - BOTTOM + 16.0,
            esc(l)
        );
    }
}

fn legend(names: &[&str]) -> String {
    let mut out = String::from(r#"<p class="legend">"#);
    for (i, n) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            COLOURS[i % COLOURS.len()],
            esc(n)
        );
    }
    out.push_str("</p>");
    out
}

fn svg_open(title: &str) -> String {
    format!(
        r#"<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title)
    )
}

fn lines(title: &str, labels: &[String], series: &[Series]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let top = nice(max);
    let plot = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |i: usize| LEFT + plot.0 * (i as f64 + 0.5) / labels.len().max(1) as f64;
    let y = |v: f64| TOP + plot.1 * (1.0 - v / top);
    let mut out = svg_open(title);
    frame(&mut out, top, labels, x);
    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // A gap (no value) breaks the line.
        for run in s
            .values
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .split(|(_, v)| v.is_none())
        {
            let points: Vec<String> = run
                .iter()
                .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(*i), y(v))))
                .collect();
            match points.as_slice() {
                [] => {}
                [one] => {
                    let (cx, cy) = one.split_once(',').unwrap_or(("0", "0"));
                    let _ = write!(
                        out,
                        r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>"#
                    );
                }
                many => {
                    let _ = write!(
                        out,
                        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                        many.join(" ")
                    );
                }
            }
        }
    }
    out.push_str("</svg>");
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    out + &legend(&names)
}

fn bars(title: &str, labels: &[String], values: &[f64]) -> String {
    let top = nice(values.iter().copied().fold(0.0, f64::max));
    let plot = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let slot = plot.0 / labels.len().max(1) as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let mut out = svg_open(title);
    frame(&mut out, top, labels, x);
    for (i, v) in values.iter().enumerate() {
        let h = plot.1 * v / top;
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
            x(i) - slot * 0.35,
            TOP + plot.1 - h,
            slot * 0.7,
            COLOURS[0],
            esc(&labels[i]),
            number(*v)
        );
    }
    out.push_str("</svg>");
    out
}

/// Rows a table shows before it is folded away (click to open).
const FOLD_ROWS: usize = 31;

fn table(t: &Table) -> String {
    let mut out = String::new();
    if t.rows.len() > FOLD_ROWS {
        let _ = write!(out, "<details><summary>{} rows</summary>", t.rows.len());
    }
    out.push_str("<div class=\"wide\"><table><thead><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if t.rows.len() > FOLD_ROWS {
        out.push_str("</details>");
    }
    out
}

/// The cohort table with each share shaded by its size.
fn heat(t: &Table) -> String {
    let mut out = String::from("<div class=\"wide\"><table class=\"heat\"><thead><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            match c.parse::<f64>() {
                Ok(share) if i >= 2 => {
                    let _ = write!(
                        out,
                        r#"<td style="background:rgba(43,108,176,{:.2})">{:.1}%</td>"#,
                        share.clamp(0.0, 1.0) * 0.85,
                        share * 100.0
                    );
                }
                _ => {
                    let _ = write!(out, "<td>{}</td>", esc(c));
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:800px;color:#1a202c}\
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #e2e8f0}\
table{border-collapse:collapse;margin:.6rem 0;font-size:12px}th,td{border:1px solid #e2e8f0;padding:2px 6px;text-align:right;white-space:nowrap}\
.wide{overflow-x:auto}summary{cursor:pointer;color:#2b6cb0;font-size:12px}\
th{background:#f7fafc}td:first-child,th:first-child{text-align:left}\
.axis{font-size:10px;fill:#4a5568}.legend span{margin-right:1rem;font-size:12px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}.note{color:#4a5568;font-size:12px}";

/// The page.
pub(super) fn page(f: &Value) -> String {
    let all: Vec<(&str, Table)> = tables::all(f);
    let t = |name: &str| {
        all.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| table(t))
            .unwrap_or_default()
    };
    let (o, usage, tiers) = (&f["overview"], &f["usage"], &f["tiers"]);
    let mut p = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Roster usage report {} to {}</title><style>{STYLE}</style></head><body>",
        esc(&cell(&f["from"])),
        esc(&cell(&f["to"]))
    );
    let _ = write!(
        p,
        "<h1>Usage report, {} to {}</h1><p class=\"note\">Generated {}. Every figure is the server's analytics endpoints' (report.json holds their answers; the tables are also CSV files). docs/analytics.md says how each is computed.</p>",
        esc(&cell(&f["from"])),
        esc(&cell(&f["to"])),
        esc(&cell(&o["generated_at"]))
    );

    p.push_str("<h2>Users and activity now</h2>");
    let tier_names: Vec<String> = ["free", "premium", "enterprise", "vip"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let by_tier: Vec<f64> = tier_names
        .iter()
        .map(|n| num(&o["users_by_tier"][n]).unwrap_or(0.0))
        .collect();
    p.push_str(&bars("users by tier", &tier_names, &by_tier));
    p.push_str(&t("overview"));

    p.push_str("<h2>Tier distribution and migrations</h2>");
    let weeks: Vec<String> = items(&tiers["weeks"])
        .iter()
        .map(|w| date(&w["start"]))
        .collect();
    let series: Vec<Series> = tier_names
        .iter()
        .map(|n| Series {
            name: n.clone(),
            values: items(&tiers["weeks"])
                .iter()
                .map(|w| num(&w["users_by_tier"][n]))
                .collect(),
        })
        .collect();
    p.push_str(&lines("users by tier at each week's end", &weeks, &series));
    p.push_str(&t("tiers"));
    p.push_str(&t("migrations"));

    let days = items(&usage["days"]);
    let labels: Vec<String> = days
        .iter()
        .map(|d| date(&d["day"]).get(5..).unwrap_or("").to_owned())
        .collect();
    p.push_str("<h2>Sign-ups, logins and active users per day</h2>");
    let signups: Vec<Series> = tier_names
        .iter()
        .map(|n| Series {
            name: format!("sign-ups {n}"),
            values: days.iter().map(|d| num(&d["signups"][n])).collect(),
        })
        .collect();
    p.push_str(&lines("sign-ups per day by tier", &labels, &signups));
    let daily = vec![
        Series {
            name: "active users".into(),
            values: days.iter().map(|d| num(&d["active_users"])).collect(),
        },
        Series {
            name: "logins".into(),
            values: days
                .iter()
                .map(|d| Some(num(&d["security_events"]["login_succeeded"]).unwrap_or(0.0)))
                .collect(),
        },
    ];
    p.push_str(&lines("active users and logins per day", &labels, &daily));
    let _ = write!(
        p,
        "<p class=\"note\">{} sign-ups and {} logins in the period. Active users are those consenting to analytics; days older than five weeks have no daily figure (histories keep weeks there).</p>",
        cell(&usage["signups"]),
        cell(&usage["logins"])
    );
    p.push_str(&t("daily"));

    p.push_str("<h2>Security events and risk decisions</h2>");
    let kinds: Vec<Series> = tables::security_kinds(usage)
        .into_iter()
        .map(|k| Series {
            values: days
                .iter()
                .map(|d| Some(num(&d["security_events"][&k]).unwrap_or(0.0)))
                .collect(),
            name: k,
        })
        .collect();
    if kinds.is_empty() {
        p.push_str("<p class=\"note\">No security events in the period.</p>");
    }
    p.push_str(&lines("security events per day by kind", &labels, &kinds));
    let decisions: Vec<Series> = DECISIONS
        .iter()
        .map(|k| Series {
            name: (*k).to_owned(),
            values: days
                .iter()
                .map(|d| Some(num(&d["risk_decisions"][*k]).unwrap_or(0.0)))
                .collect(),
        })
        .collect();
    p.push_str(&lines("risk decisions per day", &labels, &decisions));

    p.push_str("<h2>Engagement</h2>");
    let e = &usage["engagement"];
    let bins = items(&e["bins"]);
    let bin_labels: Vec<String> = bins
        .iter()
        .map(|b| format!("{}–{}", cell(&b["from"]), cell(&b["to"])))
        .collect();
    let bin_users: Vec<f64> = bins
        .iter()
        .map(|b| num(&b["users"]).unwrap_or(0.0))
        .collect();
    p.push_str(&bars("users by engagement score", &bin_labels, &bin_users));
    let _ = write!(
        p,
        "<p class=\"note\">{} users scored now; mean {}, median {}.</p>",
        cell(&e["users"]),
        cell(&e["mean"]),
        cell(&e["median"])
    );
    p.push_str(&t("engagement"));

    p.push_str("<h2>Retention cohorts (by sign-up week)</h2><p class=\"note\">week_i: the share of the cohort active in its i-th week; empty where that week has not ended.</p>");
    if let Some((_, c)) = all.iter().find(|(n, _)| *n == "cohorts") {
        p.push_str(&heat(c));
    }

    p.push_str("<h2>Segments</h2>");
    if f["segments"]["model"].is_null() {
        p.push_str("<p class=\"note\">No segmentation trained yet.</p>");
    }
    p.push_str(&t("segments"));

    p.push_str("<h2>Churn model</h2>");
    if f["churn"]["model"].is_null() {
        p.push_str("<p class=\"note\">No churn model in force yet.</p>");
    } else {
        let rel = items(&f["churn"]["model"]["evaluation"]["reliability"]);
        let rel_labels: Vec<String> = rel.iter().map(|b| cell(&b["lower"])).collect();
        let rel_series = vec![
            Series {
                name: "predicted".into(),
                values: rel.iter().map(|b| num(&b["predicted"])).collect(),
            },
            Series {
                name: "observed".into(),
                values: rel.iter().map(|b| num(&b["observed"])).collect(),
            },
        ];
        p.push_str(&lines(
            "reliability: predicted and observed churn by bin",
            &rel_labels,
            &rel_series,
        ));
    }
    p.push_str(&t("churn_model"));
    p.push_str(&t("churn_features"));
    p.push_str(&t("churn_at_risk"));

    p.push_str("<h2>Feature usage</h2>");
    let feats = items(&usage["features"]);
    let f_labels: Vec<String> = feats.iter().map(|x| cell(&x["feature"])).collect();
    let f_users: Vec<f64> = feats
        .iter()
        .map(|x| num(&x["users_in_period"]).unwrap_or(0.0))
        .collect();
    p.push_str(&bars(
        "users of each tier feature in the period",
        &f_labels,
        &f_users,
    ));
    p.push_str(&t("features"));
    p.push_str("</body></html>\n");
    p
}
