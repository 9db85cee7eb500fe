//! Export formats for staff: registrations (CSV with the contract's
//! columns, or JSON) and forms saved by dialogs (CSV).

use anyhow::Result;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::App;
use crate::store::Registration;

/// The contract's registration columns, in order.
pub const REGISTRATION_COLUMNS: &[&str] = &[
    "event_id",
    "code",
    "status",
    "name",
    "organization",
    "phone",
    "user",
    "created_at",
];

/// A CSV field, quoted when it must be (RFC 4180). A leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so that spreadsheets do not run it as a
/// formula (a name is user input).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && !looks_like_phone(s) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn looks_like_phone(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn registration_row(r: &Registration) -> Vec<String> {
    vec![
        r.event_id.clone(),
        r.code.clone(),
        r.status.as_str().to_string(),
        r.name.clone(),
        r.organization.clone(),
        r.phone.clone(),
        r.user.clone(),
        rfc3339(r.created_at),
    ]
}

pub fn registrations_csv(regs: &[Registration]) -> String {
    let mut out = csv_line(&REGISTRATION_COLUMNS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for r in regs {
        out.push_str(&csv_line(&registration_row(r)));
    }
    out
}

pub fn registrations_json(regs: &[Registration]) -> String {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = regs
        .iter()
        .map(|r| {
            REGISTRATION_COLUMNS
                .iter()
                .zip(registration_row(r))
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect()
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&rows).expect("rows serialize");
    s.push('\n');
    s
}

/// A form's entries as CSV: `ref,created_at,user`, then the values in the
/// order the dialog that saves the form asks for them.
pub fn form_csv(app: &App, form: &str) -> Result<String> {
    let entries = app.store.forms(form)?;
    let dialogs = super::load_dialogs(&app.config.dialogs).map_err(|p| anyhow::anyhow!("{}", p.join("\n")))?;
    let mut names: Vec<String> = dialogs
        .list
        .iter()
        .filter(|d| d.form.as_deref() == Some(form))
        .flat_map(|d| d.saved_names().into_iter().map(String::from).collect::<Vec<_>>())
        .collect();
    for e in &entries {
        for k in e.values.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let mut header = vec!["ref".to_string(), "created_at".into(), "user".into()];
    header.extend(names.iter().cloned());
    let mut out = csv_line(&header);
    for e in &entries {
        let mut row = vec![format!("{:06}", e.seq), rfc3339(e.created_at), e.user.clone()];
        row.extend(names.iter().map(|n| e.values.get(n).cloned().unwrap_or_default()));
        out.push_str(&csv_line(&row));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("+8613812345678"), "+8613812345678");
    }
}
