//! API fuzzing from openapi.yaml with schemathesis (spec §10.5 row 6; §2.1): `serve --worker`
//! (embedded broker, so `POST /events` publishes) on one backend, authentication off or on
//! (`--auth-enabled --auth-api-keys <key>`, the key given to schemathesis). Schemathesis runs
//! its examples, coverage and fuzzing phases with its conformance checks (status codes, content
//! types, headers, response schemas, negative data, authentication); its HAR report gives
//! every exchange, which this driver checks again itself: no 5xx, and every 4xx byte-exact in
//! the §2.1 error shape with a status the document lists for the operation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::ctx::Ctx;
use crate::db::{Backend, Db};
use crate::receiver::{Behaviour, Receiver};
use crate::report::Row;

/// The schemathesis checks this procedure runs (those of version 4.32.5 but three, see
/// RELIABILITY.md): what the contract promises about every response.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
missing_required_header,unsupported_method,ignored_auth,use_after_free,ensure_resource_availability";

/// (METHOD, path template) → the statuses the document lists.
type Documented = BTreeMap<(String, String), BTreeSet<u16>>;

/// Reads the statuses of every operation from openapi.yaml (paths at two spaces, methods at
/// four, `responses:` at six, status keys at eight).
fn documented(doc: &str) -> Documented {
    let mut out = Documented::new();
    let (mut in_paths, mut in_responses) = (false, false);
    let (mut path, mut method) = (String::new(), String::new());
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let key = line.trim().trim_end_matches(':');
        match indent {
            2 => {
                path = key.trim_matches(|c| c == '"' || c == '\'').to_owned();
                in_responses = false;
            }
            4 => {
                method = key.to_uppercase();
                in_responses = false;
            }
            6 => in_responses = key == "responses",
            8 if in_responses => {
                if let Ok(code) = key.trim_matches('\'').trim_matches('"').parse::<u16>() {
                    out.entry((method.clone(), path.clone()))
                        .or_default()
                        .insert(code);
                }
            }
            _ => {}
        }
    }
    out
}

/// The template a concrete path matches (literal segments preferred: `/deliveries/replay`
/// over `/deliveries/{id}`).
fn template<'a>(documented: &'a Documented, method: &str, path: &str) -> Option<&'a (String, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    documented
        .keys()
        .filter(|(m, t)| {
            let ts: Vec<&str> = t.split('/').collect();
            m == method
                && ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .max_by_key(|(_, t)| t.split('/').filter(|s| !s.starts_with('{')).count())
}

/// The §2.1 error body, byte for byte: exactly these two keys in this order, and a newline.
fn is_error_shape(body: &str) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let (Some(code), Some(message)) = (
        map.get("errorCode").and_then(|v| v.as_str()),
        map.get("errorMessage").and_then(|v| v.as_str()),
    ) else {
        return false;
    };
    map.len() == 2
        && body
            == format!(
                "{}\n",
                serde_json::json!({ "errorCode": code, "errorMessage": message })
            )
}

fn percent_decoded_path(url: &str) -> String {
    let without_scheme = url.split("://").nth(1).unwrap_or(url);
    let path = without_scheme.find('/').map_or("/", |i| &without_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("/").to_owned()
}

pub async fn api_fuzzing(ctx: &Ctx, backend: Backend, auth: bool) -> anyhow::Result<Row> {
    let tag = format!(
        "{}-auth-{}",
        match backend {
            Backend::Postgres => "pg",
            Backend::Sqlite => "sqlite",
        },
        if auth { "on" } else { "off" }
    );
    let mut row = Row::new(
        &format!(
            "API fuzzing ({}, auth {})",
            backend.name(),
            if auth { "on" } else { "off" }
        ),
        "embedded (mock cluster)",
        backend.name(),
    );
    let db = Db::new(ctx, backend, &format!("faults_fuzz_{}", tag.replace('-', "_"))).await?;
    let key = format!("apikey{}", uuid::Uuid::new_v4().simple());
    let mut args = vec!["serve".to_owned(), "--worker".to_owned(), db.flag.clone()];
    if auth {
        ctx.secret("API key", &key);
        args.push("--auth-enabled".to_owned());
        args.push(format!("--auth-api-keys={key}"));
    }
    let server = ctx.spawn(&format!("fuzz-{tag}-serve-worker"), &args).await?;

    // Data for the read routes: a delivery that succeeded and one that failed (replayable).
    let ok = Receiver::start(Behaviour::Ok).await?;
    let gone = Receiver::start(Behaviour::Status {
        status: 404,
        retry_after: None,
    })
    .await?;
    let client = crate::process::client();
    let bearer = format!("Bearer {key}");
    for (receiver, event_type) in [(&ok, "fuzz.ok"), (&gone, "fuzz.gone")] {
        let body = serde_json::json!({ "endpoint": receiver.url(), "eventTypes": [event_type] }).to_string();
        let mut req = client
            .post(format!("{}/configs", server.base))
            .header("content-type", "application/json")
            .body(body);
        if auth {
            req = req.header("authorization", &bearer);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("seeding a config: {}", resp.status());
        }
        let mut req = client
            .post(format!("{}/events", server.base))
            .header("content-type", "application/json")
            .body(format!(r#"{{"type":"{event_type}","payload":{{"seed":true}}}}"#));
        if auth {
            req = req.header("authorization", &bearer);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("seeding an event: {}", resp.status());
        }
    }

    let dir = ctx.work.join("fuzz");
    std::fs::create_dir_all(&dir)?;
    // The document describes both modes; a server without --auth-enabled asks for no
    // credential, so that run uses the document without its top-level security requirement
    // (otherwise schemathesis expects a 401 where the contract says the route is open).
    let doc = std::fs::read_to_string(&ctx.openapi)?;
    let document = if auth {
        ctx.openapi.clone()
    } else {
        let open = doc.replacen("\nsecurity:\n  - bearerAuth: []\n", "\n", 1);
        if open == doc {
            bail!("openapi.yaml has no top-level `security: - bearerAuth: []` to drop");
        }
        let path = dir.join("openapi-auth-off.yaml");
        std::fs::write(&path, open)?;
        path
    };
    // A run that ends with schemathesis's own runtime error and no failed check (its data
    // generator is sometimes "inconsistent" on the oneOf body of POST /events) runs again
    // with the next seed, once; the exchanges of both runs are checked.
    let mut runs = Vec::new();
    let mut tool_errors = 0;
    let mut status = None;
    for attempt in 0..2u64 {
        let har = dir.join(format!("{tag}-{attempt}.har"));
        let out = dir.join(format!("{tag}-{attempt}.out"));
        let _ = std::fs::remove_file(&har);
        let mut st = Command::new(&ctx.schemathesis);
        st.arg("run")
            .arg(&document)
            .arg(format!("--url={}", server.base))
            .arg(format!("--checks={CHECKS}"))
            .arg(format!("--max-examples={}", ctx.sizes.fuzz_examples))
            .arg("--phases=examples,coverage,fuzzing")
            .arg(format!("--seed={}", 20_260_101 + attempt))
            .arg("--workers=2")
            .arg("--request-timeout=30")
            .arg("--report=har")
            .arg(format!("--report-har-path={}", har.display()))
            .arg("--suppress-health-check=all")
            .arg("--no-color")
            // Its cache (.schemathesis/) goes there, not into the checkout.
            .current_dir(&dir)
            .stdin(Stdio::null());
        if auth {
            st.arg(format!("--header=Authorization: {bearer}"));
        }
        let log = std::fs::File::create(&out)?;
        st.stdout(log.try_clone()?).stderr(log);
        let exit = tokio::task::spawn_blocking(move || st.status()).await??;
        let output = std::fs::read_to_string(&out).unwrap_or_default();
        let summary = output.rsplit("SUMMARY").next().unwrap_or_default();
        let only_tool_error =
            !exit.success() && !summary.contains("Failures:") && summary.contains("Runtime Error");
        runs.push((har, out));
        status = Some(exit);
        if !only_tool_error {
            break;
        }
        tool_errors += 1;
    }
    let status = status.context("schemathesis did not run")?;
    let exit = server.terminate(Duration::from_secs(60)).await?;
    db.remember_secrets(ctx).await?;

    // --- figures and checks from every exchange --------------------------------------------------
    let documented = documented(&doc);
    let mut entries = Vec::new();
    for (har, out) in &runs {
        let har: serde_json::Value = serde_json::from_slice(
            &std::fs::read(har).with_context(|| format!("no HAR report: see {}", out.display()))?,
        )?;
        entries.extend(har["log"]["entries"].as_array().cloned().unwrap_or_default());
    }
    let out = runs.last().map(|r| r.1.clone()).unwrap_or_default();
    let mut by_class: BTreeMap<u16, usize> = BTreeMap::new();
    let mut server_errors = Vec::new();
    let mut bad_shape = Vec::new();
    let mut undocumented: HashMap<String, usize> = HashMap::new();
    for e in &entries {
        let method = e["request"]["method"].as_str().unwrap_or_default().to_uppercase();
        let url = e["request"]["url"].as_str().unwrap_or_default();
        let status = u16::try_from(e["response"]["status"].as_u64().unwrap_or(0)).unwrap_or(0);
        let body = e["response"]["content"]["text"].as_str().unwrap_or_default();
        *by_class.entry(status / 100).or_default() += 1;
        let path = percent_decoded_path(url);
        if status >= 500 {
            server_errors.push(format!("{method} {url} → {status} {body}"));
        }
        if (400..500).contains(&status) {
            if !is_error_shape(body) {
                bad_shape.push(format!("{method} {url} → {status} {body:?}"));
            }
            // 405 is documented once for every path (the wrong method has no operation).
            let listed = status == 405
                || template(&documented, &method, &path).is_some_and(|t| documented[t].contains(&status))
                // An unknown route (404) has no operation either; auth is checked first (401).
                || (template(&documented, &method, &path).is_none() && (status == 404 || (auth && status == 401)));
            if !listed {
                *undocumented
                    .entry(format!("{method} {path} {status}"))
                    .or_default() += 1;
            }
        }
    }
    row.published = None;
    row.server_errors = Some(server_errors.len() as u64);
    row.figure("requests", entries.len());
    row.figure(
        "schemathesis runs (a runtime error of its own: run again)",
        format!("{} ({tool_errors})", runs.len()),
    );
    row.figure(
        "by status class",
        by_class
            .iter()
            .map(|(c, n)| format!("{c}xx {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row.check(
        "schemathesis: every check passed",
        status.success(),
        format!("exit {:?}; see {}", status.code(), out.display()),
    );
    row.check(
        "0 responses 5xx",
        server_errors.is_empty() && !entries.is_empty(),
        format!(
            "{} of {} (e.g. {:?})",
            server_errors.len(),
            entries.len(),
            server_errors.iter().take(3).collect::<Vec<_>>()
        ),
    );
    row.check(
        "every 4xx is the §2.1 error shape, byte for byte",
        bad_shape.is_empty(),
        format!(
            "{} not (e.g. {:?})",
            bad_shape.len(),
            bad_shape.iter().take(3).collect::<Vec<_>>()
        ),
    );
    row.check(
        "every 4xx status is documented for its operation in openapi.yaml",
        undocumented.is_empty(),
        format!("{undocumented:?}"),
    );
    row.check(
        "the server stops on SIGTERM with status 0",
        exit == Some(0),
        format!("exit {exit:?}"),
    );
    Ok(row)
}
