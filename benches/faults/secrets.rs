//! Every log line of the run, searched for every secret it used (spec §10.5 last row; §7.3):
//! the logs of every `webhooks` process (text and JSON, info and debug, `migrate` included),
//! PostgreSQL's and tansu's; the secrets of every config the procedures stored (those the API
//! fuzzing created too), both PostgreSQL passwords, the SASL password every process had in its
//! environment, and the API keys. Schemathesis's own output is not searched: it is the client,
//! it sends the API key and reads the configs' secrets by design.

use std::collections::BTreeMap;

use crate::ctx::Ctx;
use crate::process::LogStyle;
use crate::report::Row;

pub async fn secrets_in_logs(ctx: &Ctx) -> anyhow::Result<Row> {
    let mut row = Row::new("secrets in logs", "all", "all");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&ctx.logs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files.push(ctx.pg.log());
    files.push(ctx.tansu.lock().await.log());
    let secrets = ctx.secrets();
    let (mut lines, mut bytes, mut json, mut debug) = (0usize, 0usize, 0usize, 0usize);
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let content = std::fs::read(file)?;
        bytes += content.len();
        let text = String::from_utf8_lossy(&content);
        for line in text.lines() {
            lines += 1;
            if line.starts_with('{') {
                json += 1;
            }
            if line.contains(" DEBUG ") || line.contains("\"level\":\"DEBUG\"") {
                debug += 1;
            }
        }
        for s in &secrets {
            let n = text.matches(s.value.as_str()).count();
            if n > 0 {
                let name = file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                *found.entry(format!("{} in {name}", s.kind)).or_default() += n;
            }
        }
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &secrets {
        *kinds.entry(s.kind).or_default() += 1;
    }
    let total: usize = found.values().sum();
    row.secrets_found = Some(total as u64);
    row.figure(
        "files / lines / MiB",
        format!("{}/{lines}/{:.1}", files.len(), bytes as f64 / 1_048_576.0),
    );
    row.figure("JSON / debug lines", format!("{json}/{debug}"));
    row.figure(
        "secrets searched",
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let styles = ctx.styles_used();
    row.check(
        "the run logged in every style: text and JSON, info and debug",
        LogStyle::ALL.iter().all(|s| styles.contains(s)) && json > 0 && debug > 0,
        format!("styles {styles:?}; {json} JSON lines, {debug} debug lines"),
    );
    row.check(
        "the secrets include config secrets, both PostgreSQL passwords, the SASL password and API keys",
        ["config secret", "PostgreSQL password", "SASL password", "API key"]
            .iter()
            .all(|k| kinds.contains_key(k)),
        format!("{kinds:?}"),
    );
    row.check(
        "0 log lines contain a secret, password or API key",
        total == 0,
        if total == 0 {
            format!("{} secrets × {lines} lines", secrets.len())
        } else {
            format!("{found:?}")
        },
    );
    Ok(row)
}
