//! `parkbot explain`: how a question is read, ranked and answered, and why
//! it missed when it did — for staff tuning knowledge files (a tag, an
//! alias, a keyword or a concept word to add).

use std::fmt::Write;

use super::answer::{self, CONFIDENCE_LINE, Route};
use super::render;
use crate::context::Ctx;
use crate::search::text::said;
use crate::search::{Hit, Query};

/// The words of `norm` at char span `s`.
pub fn explain(ctx: &Ctx, text: &str) -> String {
    let index = &ctx.brain.index;
    let reading = answer::read(ctx, &Query::new(text));
    let q = &reading.q;
    let mut out = String::new();
    let words: Vec<&str> = q
        .terms()
        .iter()
        .filter(|t| t.concept.is_none())
        .map(|t| t.text.as_str())
        .collect();
    let _ = writeln!(out, "terms: {}", words.join(" "));
    let concepts: Vec<String> = q
        .concepts()
        .map(|t| {
            format!(
                "{} ({}; in {} items)",
                t.text,
                said(&q.norm, t.span),
                t.concept.map_or(0, |c| index.concept_items(c))
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "concepts: {}",
        if concepts.is_empty() {
            "none".to_string()
        } else {
            concepts.join(", ")
        }
    );
    for (f, _) in &reading.fields {
        let _ = writeln!(out, "field: {}", ctx.brain.knowledge.field[*f].id);
    }
    if let Some(p) = &reading.period {
        let ranges: Vec<String> = p.ranges.iter().map(|r| format!("{}..{}", r.from, r.until)).collect();
        let _ = writeln!(
            out,
            "events of: {}{}",
            if ranges.is_empty() {
                "-".to_string()
            } else {
                ranges.join(" or ")
            },
            if p.past { " (past)" } else { "" }
        );
    }
    let rest: Vec<&str> = reading.rest.terms().iter().map(|t| t.text.as_str()).collect();
    if reading.rest.terms().len() != q.terms().len() {
        let _ = writeln!(out, "ranked by: {}", rest.join(" "));
    }
    let hits = index.search(&reading.rest);
    for h in &hits {
        let _ = writeln!(
            out,
            "{:7.3}  {}  terms={} coverage={:.2}{}{}{}",
            h.score,
            render::key(ctx, h.item),
            h.terms,
            h.coverage,
            if h.confident { " confident" } else { "" },
            if h.strong { " strong" } else { "" },
            if h.full_name { " full-name" } else { "" }
        );
    }
    match answer::answer(ctx, &Query::new(text)) {
        Err(e) => {
            let _ = writeln!(out, "answer: the store failed ({e})");
        }
        Ok(a) => {
            let first = a.text.lines().next().unwrap_or("");
            let route = match a.route {
                Route::Help => "help",
                Route::Item { sure: true } => "one item",
                Route::Item { sure: false } => "one item, below the confidence line (recorded as a miss)",
                Route::Field => "a field's enterprises",
                Route::Events => "events",
                Route::Fields => "the list of fields",
                Route::Fallback => "the fallback (recorded as a miss)",
            };
            let _ = writeln!(out, "answer: {route}: {first}");
            if let Some(why) = why_missed(a.route, &hits) {
                let _ = writeln!(out, "why: {why}");
            }
        }
    }
    out
}

/// Why a question missed, in words staff can act on.
fn why_missed(route: Route, hits: &[Hit]) -> Option<String> {
    match route {
        Route::Fallback => Some(match hits.first() {
            None => "no word or concept of the question is in the knowledge: add an FAQ, or a keyword or alias \
                     to the item that answers it"
                .into(),
            Some(h) if !h.confident => format!(
                "the best match covers {:.0}% of the question, {}: add the question's words as keywords or \
                 an FAQ question",
                h.coverage * 100.0,
                if h.strong {
                    "too little"
                } else {
                    "with no name, whole tag or concept of a tag, and fewer than two informative words"
                }
            ),
            Some(_) => "the matches are of a kind the question does not ask for (a list word with a single \
                        item, or a field without a list)"
                .into(),
        }),
        Route::Item { sure: false } => hits.first().map(|h| {
            format!(
                "answered, but the match covers {:.0}% of the question (the confidence line is {:.0}%)",
                h.coverage * 100.0,
                CONFIDENCE_LINE * 100.0
            )
        }),
        _ => None,
    }
}
