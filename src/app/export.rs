//! Export formats for staff: registrations (CSV with the contract's
//! columns, or JSON) and forms saved by dialogs (CSV).
//!
//! Every CSV goes through the `csv` crate (RFC 4180 quoting, `\n` line
//! ends) and, on top of it, [`defuse`]: a cell that a spreadsheet would run
//! as a formula is written so that it shows as text.

use std::borrow::Cow;

use anyhow::Result;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::App;
use crate::store::{Miss, Registration};

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

/// Defence against spreadsheet formula injection (OWASP "CSV injection").
///
/// A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// gets a single quote `'` in front, so that a spreadsheet shows it as text
/// instead of running it as a formula (names, organizations and form
/// answers are user input). The one exception is a phone number of the
/// form `+<digits>` (e.g. `+8613812345678`), which is kept as is: phones
/// are validated before they are stored, and digits run no formula.
/// Quoting (commas, double quotes, line breaks) is the CSV writer's job and
/// happens after this.
pub fn defuse(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_plus_phone(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// `+` followed by one or more ASCII digits, nothing else.
fn is_plus_phone(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A CSV document: the header, then the rows, every cell [`defuse`]d.
pub fn csv_table<H, R, C>(header: &[H], rows: R) -> String
where
    H: AsRef<str>,
    R: IntoIterator<Item = Vec<C>>,
    C: AsRef<str>,
{
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(header.iter().map(|h| defuse(h.as_ref()).into_owned()))
        .expect("CSV into memory");
    for row in rows {
        w.write_record(row.iter().map(|c| defuse(c.as_ref()).into_owned()))
            .expect("CSV into memory");
    }
    let bytes = w.into_inner().expect("CSV into memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells is UTF-8")
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

/// Registrations as CSV with the contract's columns.
pub fn registrations_csv(regs: &[Registration]) -> String {
    csv_table(REGISTRATION_COLUMNS, regs.iter().map(registration_row))
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
        .list()
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
    let rows = entries.iter().map(|e| {
        let mut row = vec![format!("{:06}", e.seq), rfc3339(e.created_at), e.user.clone()];
        row.extend(names.iter().map(|n| e.values.get(n).cloned().unwrap_or_default()));
        row
    });
    Ok(csv_table(&header, rows))
}

/// An announcement's deliveries:
/// `announcement,recipient,channel,state,attempts,reason,updated_at`.
pub fn deliveries_csv(announcement: u64, deliveries: &[crate::store::OutboxMessage]) -> String {
    let id = announcement.to_string();
    let rows = deliveries.iter().map(|d| {
        let channel = d.to.split_once(':').map_or("", |(c, _)| c).to_string();
        vec![
            id.clone(),
            d.to.clone(),
            channel,
            d.state.name().to_string(),
            d.attempts.to_string(),
            d.reason.clone().unwrap_or_default(),
            rfc3339(d.updated_at),
        ]
    });
    csv_table(
        &[
            "announcement",
            "recipient",
            "channel",
            "state",
            "attempts",
            "reason",
            "updated_at",
        ],
        rows,
    )
}

/// Missed questions of one wording (give or take a word).
#[derive(Debug, Clone, PartialEq)]
pub struct MissGroup {
    /// The wordings, the commonest first, with their counts.
    pub wordings: Vec<(String, usize)>,
    pub count: usize,
    pub first_at: i64,
    pub last_at: i64,
    /// "fallback", "weak" or both.
    pub kinds: Vec<&'static str>,
    pub langs: Vec<&'static str>,
    pub channels: Vec<String>,
}

/// How alike two wordings must be (shared content terms over the shorter
/// one's) to be one group.
const SAME_WORDING: f32 = 0.6;

/// Groups missed questions by similar wording (their content terms,
/// Chinese bigrams and stemmed English words), the largest group first.
pub fn group_misses(misses: &[Miss]) -> Vec<MissGroup> {
    use crate::search::text::{normalize, terms};
    use std::collections::BTreeSet;
    let mut groups: Vec<(BTreeSet<String>, MissGroup)> = Vec::new();
    for m in misses {
        let norm = normalize(m.text.trim());
        let mut words: BTreeSet<String> = terms(&norm, false)
            .into_iter()
            .map(|t| t.text)
            .filter(|t| !t.chars().all(|c| c.is_ascii_digit()))
            .collect();
        if words.is_empty() {
            words.insert(norm.chars().filter(|c| c.is_alphanumeric()).collect());
        }
        // Shared words over the shorter wording's: "is there a gym nearby"
        // and the same with a phone number added are one question.
        let alike = |g: &BTreeSet<String>| {
            let shared = g.intersection(&words).count() as f32;
            let shorter = g.len().min(words.len()).max(1) as f32;
            shared / shorter >= SAME_WORDING
        };
        let at = match groups.iter().position(|(g, _)| alike(g)) {
            Some(i) => i,
            None => {
                groups.push((
                    words.clone(),
                    MissGroup {
                        wordings: Vec::new(),
                        count: 0,
                        first_at: m.at,
                        last_at: m.at,
                        kinds: Vec::new(),
                        langs: Vec::new(),
                        channels: Vec::new(),
                    },
                ));
                groups.len() - 1
            }
        };
        let g = &mut groups[at].1;
        g.count += 1;
        g.first_at = g.first_at.min(m.at);
        g.last_at = g.last_at.max(m.at);
        let text = m.text.trim().to_string();
        match g.wordings.iter_mut().find(|(w, _)| *w == text) {
            Some((_, n)) => *n += 1,
            None => g.wordings.push((text, 1)),
        }
        let kind = m.kind.as_str();
        if !g.kinds.contains(&kind) {
            g.kinds.push(kind);
        }
        if !g.langs.contains(&m.lang.code()) {
            g.langs.push(m.lang.code());
        }
        if !g.channels.contains(&m.channel) {
            g.channels.push(m.channel.clone());
        }
    }
    let mut out: Vec<MissGroup> = groups.into_iter().map(|(_, g)| g).collect();
    for g in &mut out {
        g.wordings.sort_by_key(|w| std::cmp::Reverse(w.1));
        g.channels.sort();
        g.langs.sort();
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    out
}

fn when(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The groups as CSV: `count,question,other_wordings,kind,languages,channels,first_seen,last_seen`
/// (other wordings joined with ` | `).
pub fn misses_csv(groups: &[MissGroup]) -> String {
    let header = [
        "count",
        "question",
        "other_wordings",
        "kind",
        "languages",
        "channels",
        "first_seen",
        "last_seen",
    ];
    csv_table(
        &header,
        groups.iter().map(|g| {
            let others: Vec<&str> = g.wordings.iter().skip(1).map(|(w, _)| w.as_str()).collect();
            vec![
                g.count.to_string(),
                g.wordings.first().map(|(w, _)| w.clone()).unwrap_or_default(),
                others.join(" | "),
                g.kinds.join("+"),
                g.langs.join("+"),
                g.channels.join("+"),
                when(g.first_at),
                when(g.last_at),
            ]
        }),
    )
}

/// The groups as text to read: one block a group, the commonest wording
/// first, then the others.
pub fn misses_text(groups: &[MissGroup]) -> String {
    if groups.is_empty() {
        return "No missed questions recorded.\n".into();
    }
    let total: usize = groups.iter().map(|g| g.count).sum();
    let mut out = format!(
        "{total} missed question(s) in {} group(s), the largest first:\n",
        groups.len()
    );
    for g in groups {
        let (first, _) = &g.wordings[0];
        out.push_str(&format!(
            "\n{:>4}×  {first}\n       {} · {} · {} · last {}\n",
            g.count,
            g.kinds.join("+"),
            g.langs.join("+"),
            g.channels.join("+"),
            when(g.last_at)
        ));
        for (w, n) in g.wordings.iter().skip(1).take(4) {
            out.push_str(&format!("       also ({n}×): {w}\n"));
        }
        if g.wordings.len() > 5 {
            out.push_str(&format!("       … and {} more wordings\n", g.wordings.len() - 5));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_are_grouped_by_similar_wording() {
        use crate::knowledge::Lang;
        use crate::store::MissKind;
        let m = |text: &str, lang, channel: &str, at| Miss {
            text: text.into(),
            lang,
            channel: channel.into(),
            at,
            kind: MissKind::Fallback,
        };
        let misses = vec![
            m("园区有健身房吗", Lang::Zh, "web", 10),
            m("is there a gym nearby", Lang::En, "wechat", 11),
            m("园区有健身房吗？", Lang::Zh, "wechat", 12),
            m("园区里有健身房吗", Lang::Zh, "web", 13),
            m("Is there a gym nearby?", Lang::En, "web", 14),
            m("can I smoke here", Lang::En, "web", 15),
        ];
        let groups = group_misses(&misses);
        assert_eq!(groups.len(), 3, "{groups:#?}");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].wordings[0].0, "园区有健身房吗");
        assert_eq!(groups[0].channels, ["web", "wechat"]);
        assert_eq!(groups[1].count, 2);
        assert_eq!(groups[2].count, 1);
        let text = misses_text(&groups);
        assert!(text.starts_with("6 missed question(s) in 3 group(s)"), "{text}");
        let (header, rows) = read_back(&misses_csv(&groups));
        assert_eq!(header[0], "count");
        assert_eq!(rows[0][0], "3");
        assert_eq!(rows[2][1], "can I smoke here");
    }

    /// Reads a CSV document back: (header, rows).
    fn read_back(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header = r.headers().unwrap().iter().map(String::from).collect();
        let rows = r
            .records()
            .map(|rec| rec.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn defuse_prefixes_formula_starts_only() {
        assert_eq!(defuse("plain"), "plain");
        assert_eq!(defuse("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(defuse("+1+1"), "'+1+1");
        assert_eq!(defuse("-2+3"), "'-2+3");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("\tx"), "'\tx");
        assert_eq!(defuse("\rx"), "'\rx");
        assert_eq!(defuse("+8613812345678"), "+8613812345678");
        assert_eq!(defuse("+"), "'+");
        assert_eq!(defuse("a=b"), "a=b");
        assert_eq!(defuse(""), "");
    }

    #[test]
    fn cells_survive_a_round_trip_through_a_csv_reader() {
        // (written value, value expected back)
        let cases: &[(&str, &str)] = &[
            ("Zhang, San", "Zhang, San"),
            ("say \"hi\"", "say \"hi\""),
            ("two\nlines", "two\nlines"),
            ("windows\r\nlines", "windows\r\nlines"),
            ("{phone}", "{phone}"),
            ("刘慈欣工作室", "刘慈欣工作室"),
            ("=1+1", "'=1+1"),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-1", "'-1"),
            ("@cmd", "'@cmd"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("=\"a,b\"\n", "'=\"a,b\"\n"),
            ("+8613812345678", "+8613812345678"),
            ("", ""),
        ];
        let rows = cases.iter().map(|(input, _)| {
            vec![
                "web3-forum",
                "K7P2",
                "confirmed",
                input,
                input,
                "+441234567890",
                "console:a",
                "x",
            ]
        });
        let text = csv_table(REGISTRATION_COLUMNS, rows);
        let (header, back) = read_back(&text);
        assert_eq!(header, REGISTRATION_COLUMNS);
        assert_eq!(back.len(), cases.len(), "{text}");
        for ((input, expected), row) in cases.iter().zip(&back) {
            assert_eq!(row.len(), 8, "{input:?} in {text}");
            assert_eq!(row[3], *expected, "name {input:?}");
            assert_eq!(row[4], *expected, "organization {input:?}");
            assert_eq!(row[5], "+441234567890");
        }
    }

    #[test]
    fn plain_rows_are_unquoted_lines() {
        let text = csv_table(&["a", "b"], vec![vec!["1", "x y"], vec!["2", "z"]]);
        assert_eq!(text, "a,b\n1,x y\n2,z\n");
        let text = csv_table(&["a", "b"], vec![vec!["x,y", "q\"q"]]);
        assert_eq!(text, "a,b\n\"x,y\",\"q\"\"q\"\n");
    }
}
