//! The figures: one row per procedure, its checks, one table printed (Markdown, on stdout) and
//! the same as JSON.

use std::time::Duration;

use serde::Serialize;

/// One requirement of a procedure and whether the run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub holds: bool,
    /// The measured value(s) behind the verdict.
    pub detail: String,
}

/// One procedure's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub procedure: String,
    /// Where each figure comes from: the broker and the storage of this run.
    pub broker: String,
    pub storage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Requests beyond the first per delivery (re-sends after a crash, retries excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// Longest time from a fault's end to the next delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_max_seconds: Option<f64>,
    /// `/_healthcheck` samples answering 503 / samples taken while the dependency was down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_503: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_found: Option<u64>,
    /// Further figures, in print order.
    pub figures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
}

impl Row {
    pub fn new(procedure: &str, broker: &str, storage: &str) -> Row {
        Row {
            procedure: procedure.to_owned(),
            broker: broker.to_owned(),
            storage: storage.to_owned(),
            ..Row::default()
        }
    }

    pub fn failed(procedure: &str, error: String) -> Row {
        Row {
            procedure: procedure.to_owned(),
            error: Some(error),
            ..Row::default()
        }
    }

    /// Records a requirement; prints it at once so a long run shows its progress.
    pub fn check(&mut self, what: impl Into<String>, holds: bool, detail: impl Into<String>) {
        let check = Check {
            what: what.into(),
            holds,
            detail: detail.into(),
        };
        eprintln!(
            "    [{}] {}: {}",
            if check.holds { "ok" } else { "FAIL" },
            check.what,
            check.detail
        );
        self.checks.push(check);
    }

    pub fn figure(&mut self, name: impl Into<String>, value: impl std::fmt::Display) {
        self.figures.push((name.into(), value.to_string()));
    }

    pub fn holds(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.holds)
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

impl Report {
    pub fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn all_hold(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(Row::holds)
    }

    /// The table as printed, then what failed (if anything).
    pub fn print(&self, machine: &str, elapsed: Duration) {
        println!("{machine}; whole run {:.0} s", elapsed.as_secs_f64());
        println!();
        println!(
            "| procedure | broker | storage | published | delivered | lost | duplicated | resume max (s) | 503 while down | 5xx | secrets found | other figures | holds |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        for r in &self.rows {
            let figures = r
                .figures
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join("; ");
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.procedure,
                r.broker,
                r.storage,
                opt(r.published),
                opt(r.delivered),
                opt(r.lost),
                opt(r.duplicated),
                opt(r.resume_max_seconds.map(|s| format!("{s:.2}"))),
                opt(r.health_503.map(|(a, b)| format!("{a}/{b}"))),
                opt(r.server_errors),
                opt(r.secrets_found),
                figures,
                if r.holds() {
                    format!("yes ({}/{} checks)", r.checks.len(), r.checks.len())
                } else {
                    "**no**".to_owned()
                }
            );
        }
        let failures: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.error
                    .iter()
                    .map(move |e| format!("{}: could not run: {e}", r.procedure))
                    .chain(
                        r.checks
                            .iter()
                            .filter(|c| !c.holds)
                            .map(move |c| format!("{}: {}: {}", r.procedure, c.what, c.detail)),
                    )
            })
            .collect();
        if !failures.is_empty() {
            println!();
            println!("Failed:");
            for f in failures {
                println!("- {f}");
            }
        }
    }

    pub fn json(
        &self,
        machine: &str,
        sizes: crate::Sizes,
        smoke: bool,
        elapsed: Duration,
    ) -> serde_json::Value {
        serde_json::json!({
            "machine": machine,
            "smoke": smoke,
            "sizes": sizes,
            "seconds": elapsed.as_secs_f64(),
            "holds": self.all_hold(),
            "rows": self.rows,
        })
    }
}
