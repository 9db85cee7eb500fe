//! Deciding what a question asks for and answering it from the knowledge.
//!
//! Order of decisions: greeting/help; a specific item that the question
//! names or describes (an enterprise, event or FAQ); a field's enterprises;
//! upcoming events; the list of fields; otherwise an honest "I don't know".
//! Field names and intent words are cut from the question before looking
//! for a specific item, so "which VFX companies do motion capture?" still
//! finds the one that does.

use std::sync::OnceLock;

use super::render::{self, PAGE};
use crate::context::Ctx;
use crate::knowledge::Lang;
use crate::search::concepts::ConceptKind;
use crate::search::{Hit, Item, Query, when};
use crate::store::{MissKind, MoreList, Session, StoreError};

/// An answer and the rest of its list, if it was cut short.
#[derive(Clone)]
pub struct Answer {
    pub text: String,
    pub more: Option<MoreList>,
    /// How the answer was found.
    pub route: Route,
    /// It shows what changes within a day (seats left, whether an event
    /// is over): made again each time it is asked. Other answers depend on
    /// the question, the knowledge, the wording and the language only, and
    /// are kept with the question's understanding.
    live: bool,
}

/// How a question was answered (shown by `parkbot explain`; a miss is
/// recorded for staff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A greeting or help.
    Help,
    /// One item; `sure` is false when the match was weak (below the
    /// confidence line: little of the question matched, not by name).
    Item { sure: bool },
    /// A field's enterprises (named, or found through a concept).
    Field,
    /// Events of a period, or upcoming or past events.
    Events,
    /// The list of fields.
    Fields,
    /// Nothing fits: the honest "I don't know".
    Fallback,
}

impl Route {
    /// Whether staff should see this question: it got the fallback or a
    /// weak answer.
    pub fn missed(self) -> Option<MissKind> {
        match self {
            Route::Fallback => Some(MissKind::Fallback),
            Route::Item { sure: false } => Some(MissKind::Weak),
            _ => None,
        }
    }
}

impl Answer {
    fn plain(text: String, route: Route) -> Answer {
        Answer {
            text,
            more: None,
            route,
            live: false,
        }
    }

    /// This answer, marked as showing live state.
    fn live(self) -> Answer {
        Answer { live: true, ..self }
    }
}

type Answered = Result<Answer, StoreError>;

/// How close to the best score another hit must be to be suggested.
const SEE_ALSO_RATIO: f32 = 0.75;
/// Other enterprises of the field named after one enterprise's details.
const ALSO_IN_FIELD: usize = 4;
/// A confident hit at least this share of the best (unconfident) one's
/// score is answered instead.
const CLOSE_SECOND: f32 = 0.9;
/// With a field named, an FAQ that covers this much of the rest of the
/// question is what is asked.
const FAQ_BESIDE_FIELD: f32 = 0.6;
/// How close to the best event a company must score to be answered
/// instead when the question asks who does something.
const PROVIDER_SECOND: f32 = 0.6;
/// A question with a field's word but no list words asks for one item
/// that the rest of it describes by at least this many informative terms,
/// covering this much of it.
const DESCRIBED_TERMS: usize = 3;
const DESCRIBED_COVERAGE: f32 = 0.6;
/// Below this share of the question matched (and not by name), an answer
/// is given but recorded as a miss for staff to look at.
pub const CONFIDENCE_LINE: f32 = 0.4;

/// How a question reads before ranking: the concepts it mentions, the
/// fields and intent words it names, the time it speaks of, and the
/// question without the fields', intent and time words (what is left to
/// rank items by).
pub struct Reading {
    /// The question with its concepts.
    pub q: Query,
    /// Fields named (by name, alias or keyword), or found through the
    /// question's industry concepts when it asks for companies.
    pub fields: Vec<(usize, Vec<(usize, usize)>)>,
    /// The fields were found through the question's industry concepts,
    /// not named.
    pub by_concept: bool,
    /// The field was found by words only its name has ("nano materials
    /// companies"), not named whole.
    pub by_part: bool,
    /// The question names a city the knowledge never mentions (not as where
    /// the asker comes from): it asks about somewhere else.
    pub elsewhere: bool,
    /// The question has words that ask for a list of companies.
    pub asks_list: bool,
    pub event_words: Vec<(usize, usize)>,
    pub field_words: Vec<(usize, usize)>,
    /// The time the question speaks of, when it asks about events (event
    /// words, or an event is what it is best answered by).
    pub period: Option<when::Period>,
    /// What is left to rank items by.
    pub rest: Query,
}

/// How far what the asker says about themselves reaches after its first
/// words ("我们是…", "we're a…"): to the end of the clause, and at most this
/// many characters in Chinese…
const ABOUT_US_CHARS: usize = 14;
/// …or words in English.
const ABOUT_US_WORDS: usize = 5;
/// English words that end it: the rest of the sentence says what is asked
/// (compared as written, not stemmed).
const ABOUT_US_END: &[&str] = &[
    "and", "but", "so", "how", "what", "where", "when", "who", "which", "can", "could", "do", "does", "is", "are",
    "want", "need", "looking", "that", "to", "with", "in", "from",
];
/// Chinese words that end it: what follows asks ("我是做外贸的有哪些物流公司").
const ABOUT_US_END_ZH: &[&str] = &["哪", "想", "怎么", "需要", "有没有", "请问", "能不能", "可以", "吗"];

/// Where the question says what the asker is ("我们是做器械的初创团队",
/// "we're a small furniture maker"): from the words that begin it to the
/// end of its clause.
fn about_us(intents: &crate::phrasebook::Intents, q: &Query) -> Vec<(usize, usize)> {
    let found = intents.about_us.find(q);
    if found.is_empty() {
        return found;
    }
    let chars: Vec<char> = q.norm.chars().collect();
    let clause_end = |c: char| "，,。.！!？?；;：:\n".contains(c);
    let asks_from = |at: usize| {
        let rest: String = chars[at..].iter().take(3).collect();
        ABOUT_US_END_ZH.iter().any(|w| rest.starts_with(w))
    };
    found
        .into_iter()
        .map(|(from, start)| {
            let mut end = start;
            if chars[from..start].iter().any(|&c| crate::knowledge::is_han(c)) {
                while end < chars.len() && end - start < ABOUT_US_CHARS && !clause_end(chars[end]) && !asks_from(end) {
                    end += 1;
                }
            } else {
                // Whole English words after it, up to the first Chinese one
                // (whose bigrams overlap) or punctuation.
                let words = q.all_terms.iter().filter(|t| t.span.0 >= start);
                for t in words.take(ABOUT_US_WORDS) {
                    let written: String = chars[t.span.0..t.span.1].iter().collect();
                    if t.han
                        || t.span.0 < end
                        || chars[end..t.span.0].iter().any(|&c| clause_end(c))
                        || ABOUT_US_END.contains(&written.as_str())
                    {
                        break;
                    }
                    end = t.span.1;
                }
            }
            (from, end)
        })
        .collect()
}

pub fn read(ctx: &Ctx, q: &Query) -> Reading {
    let intents = &ctx.phrases.intents;
    let index = &ctx.brain.index;
    let q = index.expand(q);
    // "我们是做器械的初创团队，想把公司搬过来": the field and the company
    // words there are who asks, not what.
    let about = about_us(intents, &q);
    let asked = |s: &(usize, usize)| !crate::search::inside(*s, &about);
    let mut fields = index.fields_in(&q);
    fields.retain(|(_, spans)| spans.iter().any(asked));
    let event_words = intents.events.find(&q);
    let field_words = intents.fields.find(&q);
    let asks_list = intents.list.find(&q).iter().any(asked);
    let q_asked = q.without(&about);
    if !fields.is_empty() && field_words.is_empty() && !asks_list {
        // "面料展几号开幕": a field's word inside an event's short name
        // said whole is that event, not the field's list.
        fields.retain(|(_, spans)| !spans.iter().all(|&s| index.in_event_tag(&q, s)));
    }
    let mut by_concept = false;
    if fields.is_empty() && asks_list {
        // "做工厂自动化的公司": a field found through what its companies do.
        fields = index.fields_by_concept(&q_asked);
        by_concept = !fields.is_empty();
    }
    let mut by_part = false;
    if fields.is_empty() && asks_list {
        // "nano materials companies": a field said in part, by words of its
        // name that other fields' names lack, when no concept finds one.
        fields = index.fields_by_name_words(&q_asked);
        by_part = !fields.is_empty();
    }
    let elsewhere = index.elsewhere(&q, &about);
    let asks_events = !event_words.is_empty()
        || q.concepts()
            .any(|t| t.concept.is_some_and(|c| index.lexicon.kind(c) == ConceptKind::Event));
    let mut period = when::parse(&q.norm, park_today(ctx));
    let only_time = period.as_ref().is_some_and(|p| q.without(&p.spans).terms().is_empty());
    if !asks_events && period.is_some() && !only_time {
        // Time words without event words: events only when the question
        // is best answered by an event ("can I pitch to VCs in November?");
        // a question of nothing but a time ("anything on in December?")
        // asks what happens then. The event must be one of that time:
        // "明天有客户要来看车间" is not about December's training that
        // mentions workshops.
        let hits = index.search(&q.without(&fields_cut(&fields)));
        let of_then = |h: &Hit| match h.item {
            Item::Event(i) => period.as_ref().is_some_and(|p| event_in(ctx, i, p)),
            _ => false,
        };
        if !hits.first().is_some_and(|h| (h.confident || h.strong) && of_then(h)) {
            period = None;
        }
    }
    let mut cut = fields_cut(&fields);
    cut.extend(&about);
    cut.extend(&event_words);
    cut.extend(&field_words);
    if let Some(p) = &period {
        cut.extend(&p.spans);
    }
    let rest = q.without(&cut);
    Reading {
        q,
        fields,
        by_concept,
        by_part,
        elsewhere,
        asks_list,
        event_words,
        field_words,
        period,
        rest,
    }
}

/// Whether event `i` takes place in a reading of `period` (for a period of
/// only a tense: whether it is over as the question asks).
fn event_in(ctx: &Ctx, i: usize, period: &when::Period) -> bool {
    let k = &ctx.brain.knowledge;
    let e = &k.event[i];
    let offset = k.event.first().map_or(ctx.now.offset(), |e| e.starts_at.0.offset());
    let ends = e.ends_at.unwrap_or(e.starts_at);
    if period.ranges.is_empty() {
        return (ends.0 < ctx.now) == period.past;
    }
    let (from, until) = (e.starts_at.0.to_offset(offset).date(), ends.0.to_offset(offset).date());
    period.ranges.iter().any(|r| from < r.until && until >= r.from)
}

/// What a question was understood as: its reading, the items ranked for
/// the rest of it, and (when a field's list needs it) the ranking for the
/// whole question. A function of the question's words, the knowledge and
/// the day only (kept in [`crate::context::Brain`]); what an answer shows
/// of live state, such as seats left, is read when it is rendered.
pub struct Understood {
    reading: Reading,
    hits: Vec<Hit>,
    whole: OnceLock<Vec<Hit>>,
    /// The answer in each language, when it is not [`Answer::live`].
    said: [OnceLock<Answer>; 2],
}

/// Where the fields stand in the question.
fn fields_cut(fields: &[(usize, Vec<(usize, usize)>)]) -> Vec<(usize, usize)> {
    fields.iter().flat_map(|(_, s)| s.iter().copied()).collect()
}

/// The answer to a question from the knowledge. `q` must be the question
/// as [`Query::new`] reads it: its understanding is kept under its
/// normalized text.
pub fn answer(ctx: &Ctx, q: &Query) -> Answered {
    let intents = &ctx.phrases.intents;
    if q.is_blank() || intents.help.is_whole(q) || intents.greeting.is_whole(q) {
        return Ok(Answer::plain(ctx.t("help", &[]), Route::Help));
    }
    let index = &ctx.brain.index;
    let understood = ctx.brain.understood.get_or(&q.norm, park_today(ctx), || {
        let reading = read(ctx, q);
        let hits = index.search(&reading.rest);
        Understood {
            reading,
            hits,
            whole: OnceLock::new(),
            said: [OnceLock::new(), OnceLock::new()],
        }
    });
    if let Some(said) = understood.said[ctx.lang as usize].get() {
        return Ok(said.clone());
    }
    let answer = decide(ctx, &understood)?;
    if !answer.live {
        let _ = understood.said[ctx.lang as usize].set(answer.clone());
    }
    Ok(answer)
}

/// The answer to a question understood.
fn decide(ctx: &Ctx, understood: &Understood) -> Answered {
    let index = &ctx.brain.index;
    let intents = &ctx.phrases.intents;
    let Reading {
        q,
        fields,
        by_concept,
        by_part,
        elsewhere,
        asks_list,
        event_words,
        field_words,
        period,
        rest: _,
    } = &understood.reading;
    let hits = &understood.hits;
    if let Some(p) = period {
        return events_of(ctx, p, hits);
    }
    let listy = !(fields.is_empty() && event_words.is_empty() && field_words.is_empty());
    // A field's word in a question that asks for no list ("想把演员的动作录下来
    // 做成游戏角色"): the industry is the setting, and an item the rest of
    // the question describes in detail is what is asked for.
    let setting_only = event_words.is_empty() && field_words.is_empty() && !asks_list;
    // With list words in the question, a single item must be asked about
    // clearly: by its name, or in detail (a name or tag and another term),
    // or it is of the kind the list words are about.
    // "杭州哪家店能配助听器": a question about somewhere else gets a company
    // or event of the park only by its name, and no field's list.
    let elsewhere = *elsewhere;
    let unnamed_here = |h: &Hit| matches!(h.item, Item::Enterprise(_) | Item::Event(_)) && !h.full_name && !h.named;
    let specific = |h: &&Hit| {
        h.confident
            && (!elsewhere || !unnamed_here(h))
            && match h.item {
                Item::Field(_) => false,
                _ if !listy || h.full_name || (h.strong && h.terms >= 2) => true,
                _ if setting_only && h.terms >= DESCRIBED_TERMS && h.coverage >= DESCRIBED_COVERAGE => true,
                // An enterprise of the field asked about, described further.
                Item::Enterprise(i) => {
                    let k = &ctx.brain.knowledge;
                    fields
                        .iter()
                        .any(|(f, _)| k.enterprise[i].fields.contains(&k.field[*f].id))
                        // A field guessed from the question's industry words,
                        // while the company fits a finer one that no field
                        // covers ("有没有公司在研究治老年痴呆的药": 老人 finds the
                        // eldercare field, 老年痴呆 the drug maker).
                        || (*by_concept && h.strong && index.fits_unfielded(q, h.item))
                }
                // An event named (its short name is also a field's word:
                // "game jam").
                Item::Event(_) => h.named,
                // A service asked about beside a field's words ("新药研发有什么资金支持",
                // or in three of its own words: "样品想测一下营养成分").
                Item::Faq(_) => !fields.is_empty() && (h.strong || h.terms >= 3) && h.coverage >= FAQ_BESIDE_FIELD,
            }
    };
    // With a field named, its own entry is answered as its list, below:
    // the best other item may still be what is asked about.
    let mut first_item = if fields.is_empty() {
        hits.first()
    } else {
        hits.iter().find(|h| !matches!(h.item, Item::Field(_)))
    };
    // A best match that is not confident gives way to a confident one
    // scored almost as well.
    if let Some(top) = first_item.filter(|h| !h.confident) {
        first_item = hits
            .iter()
            .find(|h| h.confident && h.score >= top.score * CLOSE_SECOND && !matches!(h.item, Item::Field(_)))
            .or(first_item);
    }
    // "出口退税有人能代办吗": asked for someone who does it, a company that
    // fits comes before the event about the same thing.
    if let Some(top) = first_item.filter(|h| matches!(h.item, Item::Event(_)) && !h.full_name)
        && !intents.provider.find(q).is_empty()
    {
        first_item = hits
            .iter()
            .find(|h| matches!(h.item, Item::Enterprise(_)) && h.confident && h.score >= top.score * PROVIDER_SECOND)
            .or(first_item);
    }
    if let Some(top) = first_item.filter(specific) {
        return one(ctx, top, hits, &fields.iter().map(|(f, _)| *f).collect::<Vec<_>>());
    }
    if !fields.is_empty() && (!elsewhere || !(*by_concept || *by_part)) {
        // Members that the whole question fits best come first ("robotaxi
        // companies" puts the one whose summary says robotaxis on top).
        let all = understood.whole.get_or_init(|| index.search(q));
        return Ok(field_list(
            ctx,
            &fields.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            all,
        ));
    }
    if !event_words.is_empty() {
        return Ok(upcoming(ctx));
    }
    if !field_words.is_empty() {
        return Ok(all_fields(ctx));
    }
    if let Some(Hit {
        item: Item::Field(f),
        confident: true,
        ..
    }) = hits.first().filter(|_| !elsewhere)
    {
        return Ok(field_list(ctx, &[*f], hits));
    }
    Ok(Answer::plain(ctx.t("fallback", &[]), Route::Fallback))
}

/// Today in the park's time: the offset its events are written in (the
/// bot's clock may run in UTC).
pub fn park_today(ctx: &Ctx) -> time::Date {
    let offset = ctx
        .brain
        .knowledge
        .event
        .first()
        .map_or(ctx.now.offset(), |e| e.starts_at.0.offset());
    ctx.now.to_offset(offset).date()
}

/// Events of a period, always [`Answer::live`]: what is over and the
/// seats left change within a day.
fn events_of(ctx: &Ctx, period: &when::Period, hits: &[Hit]) -> Answered {
    events_in(ctx, period, hits).map(Answer::live)
}

/// Events of the period a question names: the one it describes, the only
/// one, or the list; the first reading of the period that holds events
/// counts ("九月份" is next September, else the last one).
fn events_in(ctx: &Ctx, period: &when::Period, hits: &[Hit]) -> Answered {
    let k = &ctx.brain.knowledge;
    let day = |t: &crate::knowledge::Timestamp, offset| t.0.to_offset(offset).date();
    let offset = k.event.first().map_or(ctx.now.offset(), |e| e.starts_at.0.offset());
    let ends = |i: usize| k.event[i].ends_at.unwrap_or(k.event[i].starts_at);
    let mut found: Vec<usize> = Vec::new();
    for r in &period.ranges {
        found = (0..k.event.len())
            .filter(|&i| day(&k.event[i].starts_at, offset) < r.until && day(&ends(i), offset) >= r.from)
            .collect();
        if !found.is_empty() {
            break;
        }
    }
    if period.ranges.is_empty() {
        // Only the tense: what is over, latest first.
        found = (0..k.event.len()).filter(|&i| ends(i).0 < ctx.now).collect();
        found.sort_by_key(|&i| std::cmp::Reverse((k.event[i].starts_at, i)));
        if found.is_empty() {
            return Ok(Answer::plain(ctx.t("events_none_in", &[]), Route::Events));
        }
    } else {
        found.sort_by_key(|&i| (k.event[i].starts_at, i));
    }
    // The question describes one of them ("九月份去雅安那个比赛").
    let described = hits
        .iter()
        .find(|h| h.confident && h.strong && matches!(h.item, Item::Event(i) if found.contains(&i)));
    if let Some(h) = described {
        return one(ctx, h, hits, &[]);
    }
    match found.as_slice() {
        [] => Ok(Answer::plain(ctx.t("events_none_in", &[]), Route::Events)),
        [only] => {
            let text = render::event(ctx, *only)?;
            Ok(Answer::plain(text, Route::Events))
        }
        _ => {
            let items: Vec<Item> = found.into_iter().map(Item::Event).collect();
            let heading = ctx.t("events_in_list", &[("count", &items.len().to_string())]);
            let (text, more) = render::list(ctx, &heading, &items, 0, 0, Some(ctx.t("events_hint", &[])));
            Ok(Answer {
                text,
                more,
                route: Route::Events,
                live: true,
            })
        }
    }
}

/// The details of one item, then close alternatives.
fn one(ctx: &Ctx, top: &Hit, hits: &[Hit], fields: &[usize]) -> Answered {
    let k = &ctx.brain.knowledge;
    let mut text = match top.item {
        Item::Enterprise(i) => render::enterprise(ctx, &k.enterprise[i]),
        Item::Event(i) => render::event(ctx, i)?,
        Item::Faq(i) => render::faq(ctx, &k.faq[i]),
        Item::Field(_) => unreachable!("fields are answered as lists"),
    };
    let mut shown = vec![top.item];
    if let Item::Enterprise(i) = top.item {
        // The question named a field too: show the field's other members.
        for &f in fields {
            if !k.enterprise[i].fields.contains(&k.field[f].id) {
                continue;
            }
            let others: Vec<Item> = members(ctx, f, hits).into_iter().filter(|x| *x != top.item).collect();
            if others.is_empty() {
                continue;
            }
            let name = k.field[f].name.get(ctx.lang);
            let mut line = format!(
                "\n\n{}{}",
                ctx.t("also_in_field", &[("field", name)]),
                render::names(ctx, &others[..others.len().min(ALSO_IN_FIELD)])
            );
            if others.len() > ALSO_IN_FIELD {
                line.push_str(match ctx.lang {
                    Lang::Zh => "等",
                    Lang::En => "…",
                });
            }
            text.push_str(&line);
            shown.extend(others);
            break;
        }
    }
    if !top.full_name {
        let close: Vec<Item> = hits
            .iter()
            .skip(1)
            .filter(|h| h.confident && h.score >= top.score * SEE_ALSO_RATIO && !shown.contains(&h.item))
            .filter(|h| !matches!(h.item, Item::Field(_)))
            .take(2)
            .map(|h| h.item)
            .collect();
        if !close.is_empty() {
            text.push_str(&format!("\n\n{}{}", ctx.t("see_also", &[]), render::names(ctx, &close)));
        }
    }
    let sure = top.full_name || top.named || top.coverage >= CONFIDENCE_LINE;
    let answer = Answer::plain(text, Route::Item { sure });
    // An event's reply shows its seats left.
    Ok(if matches!(top.item, Item::Event(_)) {
        answer.live()
    } else {
        answer
    })
}

/// The enterprises of field `f`, those the question matched best first.
fn members(ctx: &Ctx, f: usize, hits: &[Hit]) -> Vec<Item> {
    let k = &ctx.brain.knowledge;
    let id = &k.field[f].id;
    let mut items: Vec<Item> = hits
        .iter()
        .filter_map(|h| match h.item {
            Item::Enterprise(i) if k.enterprise[i].fields.contains(id) => Some(h.item),
            _ => None,
        })
        .collect();
    let first: std::collections::HashSet<Item> = items.iter().copied().collect();
    let rest = ctx.brain.members[f].iter().map(|&i| Item::Enterprise(i));
    items.extend(rest.filter(|i| !first.contains(i)));
    items
}

fn field_list(ctx: &Ctx, fields: &[usize], hits: &[Hit]) -> Answer {
    let k = &ctx.brain.knowledge;
    let mut items: Vec<Item> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &f in fields {
        items.extend(members(ctx, f, hits).into_iter().filter(|i| seen.insert(*i)));
    }
    let names: Vec<&str> = fields.iter().map(|&f| k.field[f].name.get(ctx.lang)).collect();
    let name = names.join(match ctx.lang {
        Lang::Zh => "、",
        Lang::En => " / ",
    });
    if items.is_empty() {
        return Answer::plain(ctx.t("field_empty", &[("field", &name)]), Route::Field);
    }
    let heading = ctx.t("field_list", &[("field", &name), ("count", &items.len().to_string())]);
    let (text, more) = render::list(ctx, &heading, &items, 0, 0, None);
    Answer {
        text,
        more,
        route: Route::Field,
        live: false,
    }
}

/// Events that have not ended, soonest first.
pub fn upcoming(ctx: &Ctx) -> Answer {
    let k = &ctx.brain.knowledge;
    let mut events: Vec<usize> = (0..k.event.len())
        .filter(|&i| k.event[i].ends_at.unwrap_or(k.event[i].starts_at).0 >= ctx.now)
        .collect();
    events.sort_by_key(|&i| (k.event[i].starts_at, i));
    if events.is_empty() {
        return Answer::plain(ctx.t("events_none", &[]), Route::Events).live();
    }
    let items: Vec<Item> = events.into_iter().map(Item::Event).collect();
    let heading = ctx.t("events_list", &[("count", &items.len().to_string())]);
    let (text, more) = render::list(ctx, &heading, &items, 0, 0, Some(ctx.t("events_hint", &[])));
    Answer {
        text,
        more,
        route: Route::Events,
        live: true,
    }
}

fn all_fields(ctx: &Ctx) -> Answer {
    let k = &ctx.brain.knowledge;
    let items: Vec<Item> = (0..k.field.len()).map(Item::Field).collect();
    let heading = ctx.t("fields_list", &[("count", &items.len().to_string())]);
    let (text, more) = render::list(ctx, &heading, &items, 0, 0, Some(ctx.t("fields_hint", &[])));
    Answer {
        text,
        more,
        route: Route::Fields,
        live: false,
    }
}

/// The next page of the identity's last list.
pub fn more(ctx: &Ctx, session: &mut Session) -> Result<String, StoreError> {
    let Some(list) = session.more.take() else {
        return Ok(ctx.t("more_none", &[]));
    };
    let items: Vec<Item> = list.rest.iter().filter_map(|key| render::resolve(ctx, key)).collect();
    if items.is_empty() {
        return Ok(ctx.t("more_none", &[]));
    }
    let (text, more) = render::list(ctx, "", &items, list.shown, list.unlisted, None);
    session.more = more;
    debug_assert!(items.len() <= PAGE || session.more.is_some());
    Ok(text)
}
