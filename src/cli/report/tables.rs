//! The report's tables, read from the figures' JSON: each written as a CSV file and shown
//! in the HTML page, so the two always say the same.

use serde_json::Value;

/// A table: a header row and rows of cells.
pub(super) struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as CSV.
    pub fn to_csv(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.headers).map_err(|e| e.to_string())?;
        for r in &self.rows {
            w.write_record(r).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }
}

/// A cell: a number as JSON writes it (a fraction to four places), a string as is,
/// nothing for `null`.
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            let s = format!("{x:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        other => other.to_string(),
    }
}

/// The date part of a time.
pub(super) fn date(v: &Value) -> String {
    let s = cell(v);
    s.get(..10).unwrap_or(&s).to_owned()
}

pub(super) fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

const TIERS: [&str; 4] = ["free", "premium", "enterprise", "vip"];

fn overview(o: &Value) -> Table {
    let mut t = Table::new(&["metric", "value"]);
    for (name, v) in [
        ("users", &o["users"]),
        ("consenting", &o["consenting"]),
        ("dau", &o["dau"]),
        ("wau", &o["wau"]),
        ("mau", &o["mau"]),
        ("stickiness", &o["stickiness"]),
        ("events_today", &o["events"]["today"]),
        ("events_last_7_days", &o["events"]["last_7_days"]),
        ("events_last_30_days", &o["events"]["last_30_days"]),
        ("listening_minutes_30_days", &o["listening_minutes_30_days"]),
    ] {
        t.push(vec![name.to_owned(), cell(v)]);
    }
    for tier in TIERS {
        t.push(vec![
            format!("users_{tier}"),
            cell(&o["users_by_tier"][tier]),
        ]);
    }
    t
}

fn tiers(r: &Value) -> (Table, Table) {
    let mut weeks = Table::new(&["week", "free", "premium", "enterprise", "vip", "unknown"]);
    let mut moves = Table::new(&["week", "from", "to", "count"]);
    for w in items(&r["weeks"]) {
        let mut row = vec![date(&w["start"])];
        row.extend(TIERS.iter().map(|t| cell(&w["users_by_tier"][t])));
        row.push(cell(&w["unknown"]));
        weeks.push(row);
        for m in items(&w["migrations"]) {
            moves.push(vec![
                date(&w["start"]),
                cell(&m["from"]),
                cell(&m["to"]),
                cell(&m["count"]),
            ]);
        }
    }
    (weeks, moves)
}

/// Security event kinds seen in the period, in name order.
pub(super) fn security_kinds(usage: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = items(&usage["days"])
        .iter()
        .filter_map(|d| d["security_events"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// The risk decisions, in the engine's order.
pub(super) const DECISIONS: [&str; 3] = ["allow", "require_mfa", "deny"];

fn daily(usage: &Value) -> Table {
    let kinds = security_kinds(usage);
    let mut headers: Vec<String> = vec!["day".into()];
    headers.extend(TIERS.iter().map(|t| format!("signups_{t}")));
    headers.push("active_users".into());
    headers.extend(kinds.iter().cloned());
    headers.extend(DECISIONS.iter().map(|d| format!("risk_{d}")));
    let mut t = Table {
        headers,
        rows: Vec::new(),
    };
    for d in items(&usage["days"]) {
        let mut row = vec![date(&d["day"])];
        row.extend(TIERS.iter().map(|tier| cell(&d["signups"][tier])));
        row.push(cell(&d["active_users"]));
        let count = |v: &Value| v.as_u64().unwrap_or(0).to_string();
        row.extend(kinds.iter().map(|k| count(&d["security_events"][k])));
        row.extend(DECISIONS.iter().map(|k| count(&d["risk_decisions"][k])));
        t.push(row);
    }
    t
}

fn engagement(usage: &Value) -> Table {
    let mut t = Table::new(&["from", "to", "users"]);
    for b in items(&usage["engagement"]["bins"]) {
        t.push(vec![cell(&b["from"]), cell(&b["to"]), cell(&b["users"])]);
    }
    t
}

fn features(usage: &Value) -> Table {
    let mut t = Table::new(&[
        "feature",
        "users_in_period",
        "free",
        "premium",
        "enterprise",
        "vip",
        "users",
        "uses",
    ]);
    for f in items(&usage["features"]) {
        let mut row = vec![cell(&f["feature"]), cell(&f["users_in_period"])];
        let by = &f["users_in_period_by_tier"];
        row.extend(
            TIERS
                .iter()
                .map(|k| by[k].as_u64().unwrap_or(0).to_string()),
        );
        row.push(cell(&f["users"]));
        row.push(cell(&f["uses"]));
        t.push(row);
    }
    t
}

fn cohorts(c: &Value) -> Table {
    let periods = c["periods"].as_u64().unwrap_or(0);
    let mut headers = vec!["start".to_owned(), "size".to_owned()];
    headers.extend((0..periods).map(|i| format!("week_{i}")));
    let mut t = Table {
        headers,
        rows: Vec::new(),
    };
    for row in items(&c["cohorts"]) {
        let mut cells = vec![date(&row["start"]), cell(&row["size"])];
        cells.extend(items(&row["retention"]).iter().map(cell));
        t.push(cells);
    }
    t
}

fn segments(s: &Value) -> Table {
    let model = &s["model"];
    let names: Vec<String> = items(&model["features"])
        .iter()
        .map(|f| cell(&f[0]))
        .collect();
    let mut headers = vec!["id".to_owned(), "name".to_owned(), "size".to_owned()];
    headers.extend(names);
    let mut t = Table {
        headers,
        rows: Vec::new(),
    };
    for seg in items(&model["segments"]) {
        let mut row = vec![cell(&seg["id"]), cell(&seg["name"]), cell(&seg["size"])];
        row.extend(items(&seg["centroid"]).iter().map(cell));
        t.push(row);
    }
    t
}

fn churn(c: &Value) -> [Table; 4] {
    let m = &c["model"];
    let e = &m["evaluation"];
    let mut card = Table::new(&["metric", "value"]);
    if !m.is_null() {
        for (name, v) in [
            ("version", &m["version"]),
            ("trained_at", &m["trained_at"]),
            ("horizon_days", &m["horizon_days"]),
            ("training_rows", &m["training_rows"]),
            ("holdout_rows", &e["rows"]),
            ("base_rate", &m["base_rate"]),
            ("auc", &e["auc"]),
            ("log_loss", &e["log_loss"]),
            ("brier", &e["brier"]),
            ("calibration_gap", &e["calibration_gap"]),
            ("scored_users", &c["scored"]),
        ] {
            card.push(vec![name.to_owned(), cell(v)]);
        }
    }
    let mut reliability = Table::new(&["lower", "rows", "predicted", "observed"]);
    for b in items(&e["reliability"]) {
        reliability.push(vec![
            cell(&b["lower"]),
            cell(&b["rows"]),
            cell(&b["predicted"]),
            cell(&b["observed"]),
        ]);
    }
    let mut coefficients = Table::new(&["feature", "group", "coefficient", "mean", "scale"]);
    for f in items(&m["features"]) {
        coefficients.push(vec![
            cell(&f["name"]),
            cell(&f["group"]),
            cell(&f["coefficient"]),
            cell(&f["mean"]),
            cell(&f["scale"]),
        ]);
    }
    let mut at_risk = Table::new(&["user_id", "tier", "probability", "band", "top_reason"]);
    for u in items(&c["at_risk"]) {
        let p = &u["prediction"];
        at_risk.push(vec![
            cell(&u["user_id"]),
            cell(&u["tier"]),
            cell(&p["probability"]),
            cell(&p["band"]),
            cell(&p["reasons"][0]["feature"]),
        ]);
    }
    [card, reliability, coefficients, at_risk]
}

/// Every table of the report, by file name.
pub(super) fn all(f: &Value) -> Vec<(&'static str, Table)> {
    let (weeks, moves) = tiers(&f["tiers"]);
    let [card, reliability, coefficients, at_risk] = churn(&f["churn"]);
    vec![
        ("overview", overview(&f["overview"])),
        ("tiers", weeks),
        ("migrations", moves),
        ("daily", daily(&f["usage"])),
        ("engagement", engagement(&f["usage"])),
        ("cohorts", cohorts(&f["cohorts"])),
        ("segments", segments(&f["segments"])),
        ("churn_model", card),
        ("churn_reliability", reliability),
        ("churn_features", coefficients),
        ("churn_at_risk", at_risk),
        ("features", features(&f["usage"])),
    ]
}
