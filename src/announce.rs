//! `parkbot announce --server URL`: the announcement goes through the
//! running server's admin API, and its delivery is followed with a progress
//! bar until nothing is pending (Ctrl-C stops following, not sending).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use parkbot::store::Audience;

pub fn through_server(url: &str, token: &str, audience: &Audience, text: &str, follow: bool) -> Result<ExitCode> {
    if token.is_empty() {
        bail!("--server needs the admin token: set PARKBOT_STAFF__ADMIN_TOKEN (or [staff] admin_token)");
    }
    let base = url.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let created = http
            .post(format!("{base}/admin/announcements"))
            .bearer_auth(token)
            .json(&json!({ "audience": audience.to_string(), "text": text }))
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let status = created.status();
        let body: Value = created.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("").to_string();
            match status.as_u16() {
                401 => bail!("the server refused the admin token (401)"),
                404 => bail!("the server's admin API is off (404): it has no [staff] admin_token"),
                _ => bail!("the server refused the announcement ({status}): {why}"),
            }
        }
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let total = body["total"].as_u64().unwrap_or(0);
        println!(
            "announcement {id} to {}: {total} recipient(s) queued",
            body["audience"].as_str().unwrap_or("")
        );
        if !follow || total == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} delivered · {msg} · {elapsed}")
                .expect("a valid template"),
        );
        let last = loop {
            let now: Value = http
                .get(format!("{base}/admin/announcements/{id}"))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let n = |k: &str| now[k].as_u64().unwrap_or(0);
            bar.set_position(n("sent") + n("failed") + n("cancelled"));
            bar.set_message(format!("{} failed, {} pending", n("failed"), n("pending")));
            if n("pending") == 0 {
                break now;
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    bar.abandon_with_message("no longer followed; the server goes on sending");
                    return Ok(ExitCode::SUCCESS);
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        bar.finish();
        let n = |k: &str| last[k].as_u64().unwrap_or(0);
        println!(
            "sent {}, failed {}, cancelled {}",
            n("sent"),
            n("failed"),
            n("cancelled")
        );
        if let Some(reasons) = last["reasons"].as_object() {
            for (why, count) in reasons {
                println!("  {count} × {why}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
