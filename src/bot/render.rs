//! Replies as plain text that reads well on a phone: a title line, short
//! labelled lines, numbered lists of at most five items with "and N more".

use crate::knowledge::{Enterprise, Event, Faq, Lang};
use crate::search::Item;
use crate::store::{ItemRef, MoreList};

use crate::context::Ctx;
use crate::store::StoreError;

/// Items shown in one list reply.
pub const PAGE: usize = 5;

/// Items kept for "more" after the first page (nine more pages); a longer
/// list asks for a narrower question instead of paging on.
const KEEP: usize = 9 * PAGE;

/// The longest summary shown in a list line, in characters.
const SHORT_SUMMARY: usize = 36;

pub fn enterprise(ctx: &Ctx, e: &Enterprise) -> String {
    let l = ctx.lang;
    let mut lines = vec![e.name.get(l).to_string()];
    let summary = e.summary.get(l);
    if !summary.is_empty() {
        lines.push(summary.to_string());
    }
    let fields: Vec<&str> = e
        .fields
        .iter()
        .filter_map(|id| ctx.brain.knowledge.field(id))
        .map(|f| f.name.get(l))
        .collect();
    if !fields.is_empty() {
        lines.push(format!("{}{}", ctx.t("label_field", &[]), fields.join(sep(l))));
    }
    if let Some(loc) = &e.location {
        lines.push(format!("{}{}", ctx.t("label_location", &[]), loc.get(l)));
    }
    if let Some(c) = &e.contact {
        lines.push(format!("{}{}", ctx.t("label_contact", &[]), c));
    }
    if let Some(w) = &e.website {
        lines.push(format!("{}{}", ctx.t("label_website", &[]), w));
    }
    lines.join("\n")
}

/// Event `i` in full: when, where, seats left and how to sign up.
pub fn event(ctx: &Ctx, i: usize) -> Result<String, StoreError> {
    let l = ctx.lang;
    let ev = &ctx.brain.knowledge.event[i];
    let mut lines = vec![ev.title.get(l).to_string()];
    let mut when = starts(ctx, i).to_string();
    if let Some(end) = ev.ends_at {
        if end.0.date() == ev.starts_at.0.date() {
            when.push_str(&format!("–{:02}:{:02}", end.0.hour(), end.0.minute()));
        } else {
            when.push_str(" – ");
            when.push_str(&ctx.phrases.datetime(end.0, l));
        }
    }
    lines.push(format!("{}{}", ctx.t("label_time", &[]), when));
    if !ev.venue.is_blank() {
        lines.push(format!("{}{}", ctx.t("label_venue", &[]), ev.venue.get(l)));
    }
    let past = ev.ends_at.unwrap_or(ev.starts_at).0 < ctx.now;
    if past {
        lines.push(ctx.t("event_past", &[]));
    } else {
        lines.push(seats(ctx, ev)?);
        lines.push(signup_line(ctx, ev));
    }
    let summary = ev.summary.get(l);
    if !summary.is_empty() {
        lines.push(summary.to_string());
    }
    Ok(lines.join("\n"))
}

/// Seats left. A count that cannot be read is an error, never "all free".
fn seats(ctx: &Ctx, ev: &Event) -> Result<String, StoreError> {
    let Some(cap) = ev.capacity else {
        return Ok(ctx.t("seats_unlimited", &[]));
    };
    let taken = ctx.store.confirmed_count(&ev.id)?;
    let capacity = cap.to_string();
    Ok(if taken >= cap {
        ctx.t("seats_full", &[("capacity", &capacity)])
    } else {
        let left = (cap - taken).to_string();
        ctx.t("seats_left", &[("left", &left), ("capacity", &capacity)])
    })
}

fn signup_line(ctx: &Ctx, ev: &Event) -> String {
    if !ev.signup {
        return ctx.t("signup_none", &[]);
    }
    match ev.signup_closes_at {
        Some(c) if c.0 <= ctx.now => ctx.t("signup_closed", &[]),
        Some(c) => ctx.t("signup_open_until", &[("closes", &ctx.phrases.datetime(c.0, ctx.lang))]),
        None => ctx.t("signup_open", &[]),
    }
}

pub fn faq(ctx: &Ctx, f: &Faq) -> String {
    f.answer.get(ctx.lang).to_string()
}

fn sep(l: Lang) -> &'static str {
    match l {
        Lang::Zh => "、",
        Lang::En => ", ",
    }
}

/// The first sentence of `s`, cut to a phone-friendly length.
fn short(s: &str, lang: Lang) -> String {
    let end = s
        .char_indices()
        .find(|(i, c)| matches!(c, '。' | '；' | '！' | '？') || (*c == '.' && s[i + 1..].starts_with(' ')))
        .map_or(s.len(), |(i, _)| i);
    let first = &s[..end];
    let limit = match lang {
        Lang::Zh => SHORT_SUMMARY,
        Lang::En => SHORT_SUMMARY * 2,
    };
    if first.chars().count() > limit {
        let cut: String = first.chars().take(limit).collect();
        format!("{}…", cut.trim_end_matches([',', '，', ' ']))
    } else {
        first.to_string()
    }
}

/// One line of a list (without its number): the same for every reply
/// while the knowledge holds, so made once per item and language.
pub fn line<'a>(ctx: &Ctx<'a>, item: Item) -> &'a str {
    ctx.brain.shown.line(item, ctx.lang, || make_line(ctx, item))
}

fn make_line(ctx: &Ctx, item: Item) -> String {
    let k = &ctx.brain.knowledge;
    let l = ctx.lang;
    match item {
        Item::Enterprise(i) => {
            let e = &k.enterprise[i];
            let s = short(e.summary.get(l), l);
            if s.is_empty() {
                e.name.get(l).to_string()
            } else {
                format!("{} — {}", e.name.get(l), s)
            }
        }
        Item::Event(i) => {
            let ev = &k.event[i];
            let when = starts(ctx, i);
            if ev.venue.is_blank() {
                format!("{} — {}", ev.title.get(l), when)
            } else {
                let comma = if l == Lang::Zh { "，" } else { ", " };
                format!("{} — {}{comma}{}", ev.title.get(l), when, ev.venue.get(l))
            }
        }
        Item::Field(i) => {
            let f = &k.field[i];
            let count = ctx.brain.members[i].len().to_string();
            ctx.t("fields_item", &[("field", f.name.get(l)), ("count", &count)])
        }
        Item::Faq(i) => short(k.faq[i].answer.get(l), l),
    }
}

/// When event `i` starts, as written in replies.
fn starts<'a>(ctx: &Ctx<'a>, i: usize) -> &'a str {
    let ev = &ctx.brain.knowledge.event[i];
    ctx.brain
        .shown
        .when(i, ctx.lang, || ctx.phrases.datetime(ev.starts_at.0, ctx.lang))
}

/// A stable reference to an item, kept in a `MoreList`.
pub fn key(ctx: &Ctx, item: Item) -> ItemRef {
    ctx.brain.keys.get(item).clone()
}

/// The item a reference names, if it still exists.
pub fn resolve(ctx: &Ctx, key: &ItemRef) -> Option<Item> {
    ctx.brain.keys.item(key)
}

/// A numbered list: heading, up to `PAGE` items numbered from `shown + 1`,
/// then "and N more" when items remain (kept in the returned `MoreList`;
/// `unlisted` counts items beyond those kept).
pub fn list(
    ctx: &Ctx,
    heading: &str,
    items: &[Item],
    shown: usize,
    unlisted: usize,
    footer: Option<String>,
) -> (String, Option<MoreList>) {
    use std::fmt::Write as _;
    let mut out = String::new();
    fn next_line(out: &mut String) {
        if !out.is_empty() {
            out.push('\n');
        }
    }
    out.push_str(heading);
    let page = &items[..items.len().min(PAGE)];
    for (n, item) in page.iter().enumerate() {
        next_line(&mut out);
        let _ = write!(out, "{}. ", shown + n + 1);
        out.push_str(line(ctx, *item));
    }
    let rest = &items[page.len()..];
    let kept = &rest[..rest.len().min(KEEP)];
    let unlisted = unlisted + rest.len() - kept.len();
    let (last, more) = if !kept.is_empty() {
        let more = MoreList {
            shown: shown + page.len(),
            rest: kept.iter().map(|i| key(ctx, *i)).collect(),
            unlisted,
        };
        (
            Some(ctx.t("more_hint", &[("rest", &(rest.len() + unlisted).to_string())])),
            Some(more),
        )
    } else if unlisted > 0 {
        (Some(ctx.t("more_unlisted", &[("rest", &unlisted.to_string())])), None)
    } else {
        (footer, None)
    };
    if let Some(last) = last {
        next_line(&mut out);
        out.push_str(&last);
    }
    (out, more)
}

/// Names of items, joined for one line ("a、b、c").
pub fn names(ctx: &Ctx, items: &[Item]) -> String {
    let k = &ctx.brain.knowledge;
    let l = ctx.lang;
    items
        .iter()
        .map(|i| match *i {
            Item::Enterprise(i) => k.enterprise[i].name.get(l).to_string(),
            Item::Event(i) => k.event[i].title.get(l).to_string(),
            Item::Field(i) => k.field[i].name.get(l).to_string(),
            Item::Faq(i) => k.faq[i].questions.first().cloned().unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join(sep(l))
}
