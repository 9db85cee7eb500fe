//! Time expressions in questions, both languages: "下个月", "九月份",
//! "明年三月", "明年上半年", "this weekend", "next week", "in January",
//! "spring next year", and the tense of a question ("去年", "last time",
//! "upcoming"). They become date ranges relative to the bot's clock, for
//! filtering events.
//!
//! A month or a season without a year has two readings, the next one and
//! the last one: both are returned, the likelier first (the last one when
//! the question is in the past tense), and the caller takes the first that
//! holds events.

use time::{Date, Duration, Month};

/// A range of days: `from` included, `until` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub from: Date,
    pub until: Date,
}

/// What a question says about time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// The readings, likelier first; empty when only the tense is known.
    pub ranges: Vec<Days>,
    /// The question asks about what is over ("去年", "last time", "was").
    pub past: bool,
    /// Where the time words stand (char offsets of the normalized text).
    pub spans: Vec<(usize, usize)>,
}

/// Words of the past tense (Chinese anywhere, English whole words).
const PAST_ZH: &[&str] = &[
    "去年",
    "上次",
    "之前",
    "以前",
    "已经",
    "过去",
    "往届",
    "上届",
    "前年",
    "办过",
    "举办过",
    "结束",
];
const PAST_EN: &[&str] = &[
    "was", "were", "did", "previous", "past", "ago", "earlier", "happened", "held", "ended",
];

/// Chinese numerals for months and small numbers.
fn zh_number(s: &[char]) -> Option<(u32, usize)> {
    let digit = |c: char| match c {
        '一' => Some(1),
        '二' | '两' => Some(2),
        '三' => Some(3),
        '四' => Some(4),
        '五' => Some(5),
        '六' => Some(6),
        '七' => Some(7),
        '八' => Some(8),
        '九' => Some(9),
        _ => None,
    };
    if s.first().is_some_and(|c| c.is_ascii_digit()) {
        let n: String = s.iter().take_while(|c| c.is_ascii_digit()).collect();
        return Some((n.parse().ok()?, n.len()));
    }
    match (s.first().copied(), s.get(1).copied()) {
        (Some('十'), Some(c)) if digit(c).is_some() => Some((10 + digit(c)?, 2)),
        (Some('十'), _) => Some((10, 1)),
        (Some(c), Some('十')) if digit(c).is_some() => {
            let tens = digit(c)? * 10;
            match s.get(2).copied().and_then(digit) {
                Some(u) => Some((tens + u, 3)),
                None => Some((tens, 2)),
            }
        }
        (Some(c), _) => digit(c).map(|d| (d, 1)),
        _ => None,
    }
}

const MONTHS_EN: &[(&str, u8)] = &[
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
];

/// Seasons: (words, first month); each is three months long.
const SEASONS: &[(&[&str], u8)] = &[
    (&["春天", "春季", "spring"], 3),
    (&["夏天", "夏季", "summer"], 6),
    (&["秋天", "秋季", "autumn", "fall"], 9),
    (&["冬天", "冬季", "winter"], 12),
];

/// Which year a phrase names, relative to `this`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Year {
    Unsaid,
    Is(i32),
}

fn month_start(year: i32, month: u8) -> Date {
    let (y, m) = (
        year + (i32::from(month) - 1).div_euclid(12),
        (i32::from(month) - 1).rem_euclid(12) + 1,
    );
    Date::from_calendar_date(y, Month::try_from(m as u8).unwrap_or(Month::January), 1).unwrap_or(Date::MIN)
}

/// `months` months from the first of `month` of `year`.
fn months(year: i32, month: u8, len: u8) -> Days {
    Days {
        from: month_start(year, month),
        until: month_start(year, month + len),
    }
}

/// Both readings of months without a year: the next (or current) one and
/// the last one before it.
fn unsaid_year(today: Date, month: u8, len: u8, past: bool) -> Vec<Days> {
    let y = today.year();
    let this = months(y, month, len);
    let (next, last) = if this.until > today {
        (this, months(y - 1, month, len))
    } else {
        (months(y + 1, month, len), this)
    };
    if past { vec![last, next] } else { vec![next, last] }
}

fn week_start(d: Date) -> Date {
    d - Duration::days(i64::from(d.weekday().number_days_from_monday()))
}

/// A word of Latin letters or digits, with its char span.
struct Word {
    text: String,
    span: (usize, usize),
}

fn latin_words(chars: &[char]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '\'') {
                i += 1;
            }
            // "weekend's" is "weekend".
            let end = chars[start..i].iter().position(|&c| c == '\'').map_or(i, |p| start + p);
            out.push(Word {
                text: chars[start..end].iter().collect(),
                span: (start, end),
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Reads the time a question (normalized text) speaks of, `today` being
/// the bot's date in the park's time.
/// Every character of this module's Chinese time words (and the Chinese
/// numerals): a text with none of them holds no Chinese time expression.
const TIME_HAN: &str = "〇一七三上下两个举之九二五些今以份八六冬前办动十半去后周哪四夏大天季届已年底往拜日明星春昨晚月期末本束次活礼秋经结过这";
/// Every English word this module reads, sorted.
const TIME_EN: &[&str] = &[
    "after",
    "ago",
    "apr",
    "april",
    "aug",
    "august",
    "autumn",
    "day",
    "dec",
    "december",
    "did",
    "earlier",
    "early",
    "end",
    "ended",
    "events",
    "fall",
    "feb",
    "february",
    "first",
    "h1",
    "h2",
    "half",
    "happened",
    "held",
    "in",
    "jan",
    "january",
    "jul",
    "july",
    "jun",
    "june",
    "last",
    "late",
    "march",
    "may",
    "mid",
    "month",
    "next",
    "nov",
    "november",
    "oct",
    "october",
    "of",
    "past",
    "previous",
    "second",
    "sep",
    "sept",
    "september",
    "spring",
    "summer",
    "the",
    "this",
    "time",
    "today",
    "tomorrow",
    "tonight",
    "upcoming",
    "was",
    "week",
    "weekend",
    "weekend's",
    "were",
    "winter",
    "year",
    "yesterday",
];

/// Whether `norm` may hold a time expression at all: a digit, a character
/// of a Chinese time word, or an English word this module reads. Most
/// questions hold none and are not parsed (the parse looks for many words).
fn may_hold_time(norm: &str) -> bool {
    norm.chars().any(|c| c.is_ascii_digit() || TIME_HAN.contains(c))
        || norm
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
            .any(|w| !w.is_empty() && TIME_EN.binary_search(&w).is_ok())
}

pub fn parse(norm: &str, today: Date) -> Option<Period> {
    if !may_hold_time(norm) {
        return None;
    }
    let chars: Vec<char> = norm.chars().collect();
    let words = latin_words(&chars);
    let has_zh = |w: &str| norm.contains(w);
    let word_at = |i: usize| words.get(i).map(|w| w.text.as_str());
    let past = PAST_ZH.iter().any(|w| has_zh(w))
        || words.iter().any(|w| PAST_EN.contains(&w.text.as_str()))
        || words.windows(2).any(|w| w[0].text == "last" && w[1].text == "time");
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut ranges: Vec<Days> = Vec::new();
    let zh_span = |w: &str| -> Option<(usize, usize)> {
        let at = norm.find(w)?;
        let start = norm[..at].chars().count();
        Some((start, start + w.chars().count()))
    };
    let y = today.year();

    // The year named, if any: 明年 / next year, 今年 / this year, 去年 / last year, 2027.
    let mut year = Year::Unsaid;
    for (w, delta) in [("明年", 1), ("今年", 0), ("去年", -1), ("后年", 2), ("前年", -2)] {
        if let Some(s) = zh_span(w) {
            year = Year::Is(y + delta);
            spans.push(s);
        }
    }
    for (i, w) in words.iter().enumerate() {
        if w.text == "year" {
            let delta = match i.checked_sub(1).and_then(word_at) {
                Some("next") => Some(1),
                Some("this") => Some(0),
                Some("last") => Some(-1),
                _ => None,
            };
            if let Some(d) = delta {
                year = Year::Is(y + d);
                spans.push((words[i - 1].span.0, w.span.1));
            }
        }
        if w.text.len() == 4
            && let Ok(n) = w.text.parse::<i32>()
            && (2000..=2100).contains(&n)
        {
            year = Year::Is(n);
            spans.push(w.span);
        }
    }
    for (at, _) in norm.match_indices('年') {
        let start = norm[..at].chars().count();
        if start >= 4 {
            let digits: String = chars[start - 4..start].iter().collect();
            if let Ok(n) = digits.parse::<i32>()
                && (2000..=2100).contains(&n)
            {
                year = Year::Is(n);
                spans.push((start - 4, start + 1));
            }
        }
    }

    let month_ranges = |month: u8, len: u8, ranges: &mut Vec<Days>| match year {
        Year::Is(n) => ranges.push(months(n, month, len)),
        Year::Unsaid => ranges.extend(unsaid_year(today, month, len, past)),
    };

    // Months: 九月 / 9月 / 九月份 / 十二月; January, in may, dec.
    let mut i = 0;
    while i < chars.len() {
        if let Some((n, len)) = zh_number(&chars[i..])
            && chars.get(i + len) == Some(&'月')
            && (1..=12).contains(&n)
            && !(i > 0 && (chars[i - 1].is_ascii_digit() || chars[i - 1] == '个'))
        {
            let mut end = i + len + 1;
            if chars.get(end) == Some(&'份') {
                end += 1;
            }
            // A day: 3月15日 / 3月15号.
            if let Some((d, dl)) = zh_number(&chars[end..])
                && matches!(chars.get(end + dl), Some('日' | '号'))
            {
                let year_of = match year {
                    Year::Is(n) => n,
                    Year::Unsaid => y,
                };
                if let Ok(day) =
                    Date::from_calendar_date(year_of, Month::try_from(n as u8).unwrap_or(Month::January), d as u8)
                {
                    let day = if year == Year::Unsaid && day < today && !past {
                        day.replace_year(y + 1).unwrap_or(day)
                    } else {
                        day
                    };
                    ranges.push(Days {
                        from: day,
                        until: day + Duration::days(1),
                    });
                    spans.push((i, end + dl + 1));
                    i = end + dl + 1;
                    continue;
                }
            }
            month_ranges(n as u8, 1, &mut ranges);
            spans.push((i, end));
            i = end;
            continue;
        }
        i += 1;
    }
    for (k, w) in words.iter().enumerate() {
        let Some(&(_, m)) = MONTHS_EN.iter().find(|(name, _)| *name == w.text) else {
            continue;
        };
        // "may" is mostly a verb: a month only after in/of/early/late/mid
        // or before a year or a day.
        if w.text == "may" {
            let before = k.checked_sub(1).and_then(word_at);
            let after = word_at(k + 1);
            let month_like = matches!(
                before,
                Some("in" | "of" | "early" | "late" | "mid" | "next" | "this" | "last")
            ) || after.is_some_and(|a| a.chars().all(|c| c.is_ascii_digit()));
            if !month_like {
                continue;
            }
        }
        month_ranges(m, 1, &mut ranges);
        spans.push(w.span);
    }

    // Seasons, halves of a year, the year's end.
    for (names, first) in SEASONS {
        for name in *names {
            let found = if name.is_ascii() {
                words.iter().position(|w| w.text == *name).map(|k| (k, words[k].span))
            } else {
                zh_span(name).map(|s| (usize::MAX, s))
            };
            let Some((k, span)) = found else { continue };
            if *name == "fall" {
                // "fall" is a season only as "this/next/last fall" or "in the fall".
                let before = k.checked_sub(1).and_then(word_at);
                if !matches!(before, Some("this" | "next" | "last" | "the")) {
                    continue;
                }
            }
            let before = if k == usize::MAX {
                None
            } else {
                k.checked_sub(1).and_then(word_at)
            };
            match before {
                Some("next") => ranges.extend(unsaid_year(today, *first, 3, false).into_iter().take(1)),
                Some("last") => ranges.extend(unsaid_year(today, *first, 3, true).into_iter().take(1)),
                _ => month_ranges(*first, 3, &mut ranges),
            }
            spans.push(span);
        }
    }
    let half = |first: bool| -> u8 { if first { 1 } else { 7 } };
    let halves = [
        ("上半年", true),
        ("下半年", false),
        ("first half", true),
        ("second half", false),
        ("h1", true),
        ("h2", false),
    ];
    // A phrase in either language: Chinese anywhere, English as words.
    let phrase_span = |w: &str| {
        if w.is_ascii() {
            let parts: Vec<&str> = w.split(' ').collect();
            words
                .windows(parts.len())
                .find(|ws| ws.iter().zip(&parts).all(|(a, b)| a.text == *b))
                .map(|ws| (ws[0].span.0, ws[ws.len() - 1].span.1))
        } else {
            zh_span(w)
        }
    };
    for (w, first) in halves {
        if let Some(s) = phrase_span(w) {
            month_ranges(half(first), 6, &mut ranges);
            spans.push(s);
        }
    }
    for w in ["年底", "年末", "end of the year", "end of year", "year end"] {
        if let Some(s) = phrase_span(w) {
            month_ranges(12, 1, &mut ranges);
            spans.push(s);
        }
    }

    // A year alone: the whole year.
    if ranges.is_empty()
        && let Year::Is(n) = year
    {
        ranges.push(months(n, 1, 12));
    }

    // Days and weeks relative to today.
    let day = |offset: i64| Days {
        from: today + Duration::days(offset),
        until: today + Duration::days(offset + 1),
    };
    let monday = week_start(today);
    let week = |offset: i64| Days {
        from: monday + Duration::weeks(offset),
        until: monday + Duration::weeks(offset + 1),
    };
    let weekend = |offset: i64| Days {
        from: monday + Duration::weeks(offset) + Duration::days(5),
        until: monday + Duration::weeks(offset + 1),
    };
    let rel_month = |offset: i32| {
        let m = i32::from(today.month() as u8) - 1 + offset;
        months(y + m.div_euclid(12), (m.rem_euclid(12) + 1) as u8, 1)
    };
    let zh_rel: &[(&str, Days)] = &[
        ("大后天", day(3)),
        ("后天", day(2)),
        ("明天", day(1)),
        ("明日", day(1)),
        ("今天", day(0)),
        ("今日", day(0)),
        ("今晚", day(0)),
        ("昨天", day(-1)),
        ("下下周", week(2)),
        ("上周末", weekend(-1)),
        ("上个周末", weekend(-1)),
        ("下周末", weekend(1)),
        ("下个周末", weekend(1)),
        ("这周末", weekend(0)),
        ("这个周末", weekend(0)),
        ("本周末", weekend(0)),
        ("周末", weekend(0)),
        ("下周", week(1)),
        ("下个星期", week(1)),
        ("下星期", week(1)),
        ("下礼拜", week(1)),
        ("本周", week(0)),
        ("这周", week(0)),
        ("这个星期", week(0)),
        ("这星期", week(0)),
        ("上周", week(-1)),
        ("上个星期", week(-1)),
        ("下个月", rel_month(1)),
        ("下月", rel_month(1)),
        ("本月", rel_month(0)),
        ("这个月", rel_month(0)),
        ("上个月", rel_month(-1)),
        ("上月", rel_month(-1)),
    ];
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for (w, days) in zh_rel {
        if let Some(s) = zh_span(w)
            && !super::inside(s, &covered)
        {
            covered.push(s);
            ranges.push(*days);
            spans.push(s);
        }
    }
    let en_rel: &[(&[&str], Days)] = &[
        (&["day", "after", "tomorrow"], day(2)),
        (&["tomorrow"], day(1)),
        (&["today"], day(0)),
        (&["tonight"], day(0)),
        (&["yesterday"], day(-1)),
        (&["last", "weekend"], weekend(-1)),
        (&["next", "weekend"], weekend(1)),
        (&["this", "weekend"], weekend(0)),
        (&["the", "weekend"], weekend(0)),
        (&["weekend"], weekend(0)),
        (&["next", "week"], week(1)),
        (&["this", "week"], week(0)),
        (&["last", "week"], week(-1)),
        (&["next", "month"], rel_month(1)),
        (&["this", "month"], rel_month(0)),
        (&["last", "month"], rel_month(-1)),
    ];
    for (phrase, days) in en_rel {
        let n = phrase.len();
        if let Some(ws) = words
            .windows(n)
            .find(|ws| ws.iter().zip(phrase.iter()).all(|(a, b)| a.text == *b))
        {
            let s = (ws[0].span.0, ws[n - 1].span.1);
            if !super::inside(s, &covered) {
                covered.push(s);
                ranges.push(*days);
                spans.push(s);
            }
        }
    }

    // The tense alone ("past events", "以前办过哪些活动", "upcoming").
    if ranges.is_empty() && !past {
        return None;
    }
    ranges.dedup();
    Some(Period { ranges, past, spans })
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_prefilter_knows_every_word_the_parser_reads() {
        let mut sorted = TIME_EN.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, TIME_EN, "TIME_EN must stay sorted");
        // Every literal of the parser is let through.
        let code = include_str!("when.rs");
        let code = &code[..code.find("#[cfg(test)]").unwrap()];
        for lit in code.split('"').skip(1).step_by(2) {
            if lit.chars().any(|c| c.is_alphanumeric()) && !lit.contains("TIME_") {
                assert!(may_hold_time(&lit.to_lowercase()), "{lit:?} would be filtered out");
            }
        }
        assert!(!may_hold_time("which vfx companies are here?"));
        assert!(!may_hold_time("停车收费吗"));
    }

    use super::*;
    use time::macros::date;

    /// The tests' clock: Saturday 28 November 2026.
    const TODAY: Date = date!(2026 - 11 - 28);

    fn first(q: &str) -> Days {
        let p = parse(&crate::search::text::normalize(q), TODAY).unwrap_or_else(|| panic!("no time in {q:?}"));
        p.ranges[0]
    }

    fn range(from: Date, until: Date) -> Days {
        Days { from, until }
    }

    #[test]
    fn relative_days_weeks_and_months_in_both_languages() {
        assert_eq!(
            first("明天有什么活动"),
            range(date!(2026 - 11 - 29), date!(2026 - 11 - 30))
        );
        assert_eq!(first("What's on tomorrow?"), first("明天有什么活动"));
        assert_eq!(
            first("这周末有活动吗"),
            range(date!(2026 - 11 - 28), date!(2026 - 11 - 30))
        );
        assert_eq!(first("anything this weekend"), first("这周末有活动吗"));
        assert_eq!(
            first("上周末的活动"),
            range(date!(2026 - 11 - 21), date!(2026 - 11 - 23))
        );
        assert_eq!(first("last weekend's event"), first("上周末的活动"));
        assert_eq!(first("下周有什么"), range(date!(2026 - 11 - 30), date!(2026 - 12 - 07)));
        assert_eq!(first("events next week"), first("下周有什么"));
        assert_eq!(
            first("下个月有啥活动"),
            range(date!(2026 - 12 - 01), date!(2027 - 01 - 01))
        );
        assert_eq!(first("anything happening next month?"), first("下个月有啥活动"));
    }

    #[test]
    fn months_with_and_without_a_year() {
        assert_eq!(
            first("明年三月的展会"),
            range(date!(2027 - 03 - 01), date!(2027 - 04 - 01))
        );
        assert_eq!(
            first("九月份的比赛"),
            range(date!(2027 - 09 - 01), date!(2027 - 10 - 01))
        );
        let p = parse("九月份的比赛", TODAY).unwrap();
        assert_eq!(p.ranges[1], range(date!(2026 - 09 - 01), date!(2026 - 10 - 01)));
        // The past tense puts the last September first.
        assert_eq!(first("去年九月的比赛").from, date!(2025 - 09 - 01));
        assert_eq!(
            parse("九月份办过的比赛", TODAY).unwrap().ranges[0].from,
            date!(2026 - 09 - 01)
        );
        assert_eq!(
            first("十二月有活动吗"),
            range(date!(2026 - 12 - 01), date!(2027 - 01 - 01))
        );
        assert_eq!(first("What events are there in January?").from, date!(2027 - 01 - 01));
        assert_eq!(first("events in march 2027").from, date!(2027 - 03 - 01));
        assert_eq!(first("2027年5月").from, date!(2027 - 05 - 01));
        assert_eq!(
            first("3月15日的活动"),
            range(date!(2027 - 03 - 15), date!(2027 - 03 - 16))
        );
    }

    #[test]
    fn seasons_and_halves() {
        assert_eq!(
            first("明年上半年有哪些活动"),
            range(date!(2027 - 01 - 01), date!(2027 - 07 - 01))
        );
        assert_eq!(
            first("what's planned for the first half of 2027"),
            first("明年上半年有哪些活动")
        );
        assert_eq!(
            first("Any events in spring next year?"),
            range(date!(2027 - 03 - 01), date!(2027 - 06 - 01))
        );
        assert_eq!(first("明年春天"), first("Any events in spring next year?"));
        assert_eq!(first("year end party").from, date!(2026 - 12 - 01));
    }

    #[test]
    fn words_that_are_not_time_stay_quiet() {
        for q in [
            "may I bring my dog",
            "how do I get there",
            "停车收费吗",
            "is it free to park",
            "don't fall",
        ] {
            assert!(parse(&crate::search::text::normalize(q), TODAY).is_none(), "{q}");
        }
        let p = parse("去年办过哪些活动", TODAY).unwrap();
        assert!(p.past);
        assert_eq!(p.ranges[0].from, date!(2025 - 01 - 01));
        let p = parse("past events", TODAY).unwrap();
        assert!(p.past && p.ranges.is_empty());
    }
}
