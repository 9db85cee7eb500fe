//! Answers beyond shared words, through the real binary: aliases and
//! keywords, the concept lexicon and a park's own concepts, dates in
//! questions, the record of missed questions (`export misses`) and
//! `explain`.

use crate::util::{Sandbox, repo};

/// A small park: aliases and keywords on every kind, a concept of its own
/// and one that extends a built-in concept.
const PARK: &str = r#"
[[field]]
id = "games"
name = { zh = "游戏开发", en = "game development" }
aliases = ["游戏", "games"]
keywords = ["独立游戏"]

[[enterprise]]
id = "pixel-fox"
name = { zh = "像素狐工作室", en = "Pixel Fox Studio" }
aliases = ["PFS", "小狐"]
keywords = ["像素风", "pixel art"]
fields = ["games"]
summary = { zh = "做像素风独立游戏", en = "Makes pixel-art indie games" }

[[event]]
id = "jam"
title = { zh = "48小时游戏创作马拉松", en = "48-Hour Game Jam" }
aliases = ["GJ48"]
keywords = ["马拉松"]
starts_at = "2026-12-12T09:00:00+08:00"
venue = { zh = "创客厅", en = "Maker Hall" }

[[event]]
id = "expo"
title = { zh = "春季游戏展", en = "Spring Game Expo" }
starts_at = "2027-03-20T09:00:00+08:00"
venue = { zh = "展览中心", en = "Exhibition Centre" }

[[faq]]
id = "parking"
questions = ["园区能停车吗？", "Is there parking?"]
answer = { zh = "地下车库每小时3元。", en = "The underground garage costs 3 yuan an hour." }
tags = ["停车", "parking"]

[[faq]]
id = "tea"
questions = ["哪里可以喝茶？"]
answer = { zh = "一号楼一层有茶歇区。", en = "There is a tea corner on the ground floor of Building 1." }
aliases = ["茶歇"]
keywords = ["tea corner"]

[[concept]]
id = "tea-break"
words = ["泡茶", "喝茶", "tea break", "cuppa"]

[[concept]]
id = "parking"
words = ["P2层"]
"#;

fn park() -> Sandbox {
    let s = Sandbox::new();
    let file = s.write("park.toml", PARK);
    s.ok(&["import", "--replace", file.to_str().unwrap()]);
    s
}

#[test]
fn aliases_and_keywords_find_their_items() {
    let s = park();
    assert!(
        s.ask("a", "小狐在哪").starts_with("像素狐工作室"),
        "{}",
        s.ask("a", "小狐在哪")
    );
    assert!(s.ask("a", "who is PFS?").starts_with("Pixel Fox Studio"));
    let r = s.ask("a", "when is GJ48");
    assert!(r.starts_with("48-Hour Game Jam"), "{r}");
    assert!(s.ask("a", "茶歇在哪").starts_with("一号楼一层"));
    // A short form of an event that is also a field's word: the event.
    let r = s.ask("a", "when is the game jam");
    assert!(r.starts_with("48-Hour Game Jam"), "{r}");
}

#[test]
fn concepts_bridge_words_the_knowledge_does_not_use() {
    let s = park();
    // Built in: "leave my car" is parking.
    let r = s.ask("a", "where do I leave my car");
    assert!(r.contains("underground garage"), "{r}");
    // The park's own concept and the park's word for a built-in one.
    let r = s.ask("a", "anywhere for a cuppa?");
    assert!(r.contains("tea corner"), "{r}");
    let r = s.ask("a", "P2层怎么收费");
    assert!(r.contains("地下车库"), "{r}");
}

#[test]
fn dates_in_questions_pick_the_events_of_that_time() {
    let s = park();
    // The tests' clock is Saturday 28 November 2026.
    let r = s.ask("a", "下个月有什么活动");
    assert!(r.starts_with("48小时游戏创作马拉松"), "{r}");
    assert!(!r.contains("春季游戏展"), "{r}");
    let r = s.ask("a", "any events in March?");
    assert!(r.starts_with("Spring Game Expo"), "{r}");
    let r = s.ask("a", "明年三月有展会吗");
    assert!(r.starts_with("春季游戏展"), "{r}");
    let r = s.ask("a", "what's on next week?");
    assert!(r.contains("No events are scheduled in that period"), "{r}");
}

#[test]
fn export_knowledge_round_trips_aliases_keywords_and_concepts() {
    let s = park();
    let out = s.ok(&["export", "knowledge"]).stdout;
    for needle in [
        "aliases = [\"PFS\", \"小狐\"]",
        "keywords = [\"像素风\", \"pixel art\"]",
        "aliases = [\"GJ48\"]",
        "keywords = [\"tea corner\"]",
        "[[concept]]",
        "id = \"tea-break\"",
        "2 concepts",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    let file = s.write("export.toml", &out);
    let r = s.ok(&["import", file.to_str().unwrap()]);
    assert!(r.stderr.contains("0 added, 0 updated"), "{}", r.stderr);
}

#[test]
fn misses_are_recorded_grouped_and_exported() {
    let s = park();
    s.ask("web-1", "园区有健身房吗？");
    s.ask("web-2", "园区有健身房吗");
    s.ask("web-3", "Is there a gym nearby? call me on 13812345678");
    s.ask("web-4", "is there a gym nearby");
    s.ask("web-5", "where do I leave my car"); // answered: not a miss
    let text = s.ok(&["export", "misses"]).stdout;
    assert!(text.starts_with("4 missed question(s) in 2 group(s)"), "{text}");
    assert!(text.contains("园区有健身房吗"), "{text}");
    assert!(text.contains("138****5678"), "{text}");
    assert!(!text.contains("13812345678"), "{text}");
    assert!(!text.contains("leave my car"), "{text}");
    let csv = s.ok(&["export", "misses", "--format", "csv"]).stdout;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("count,question,other_wordings,kind,languages,channels,first_seen,last_seen")
    );
    let first = lines.next().unwrap();
    assert!(first.starts_with("2,"), "{csv}");
    assert!(first.contains(",fallback,") && first.contains(",console,"), "{csv}");
    // No identity is kept: only the channel.
    assert!(!csv.contains("web-1"), "{csv}");
}

#[test]
fn explain_says_why_a_question_missed() {
    let s = park();
    let r = s.ok(&["explain", "园区有健身房吗"]).stdout;
    assert!(r.contains("concepts: gym-sports"), "{r}");
    assert!(r.contains("answer: the fallback"), "{r}");
    assert!(r.contains("why: "), "{r}");
    let r = s.ok(&["explain", "where do I leave my car"]).stdout;
    assert!(r.contains("parking (leave my car"), "{r}");
    assert!(r.contains("faq:parking"), "{r}");
    assert!(r.contains("answer: one item"), "{r}");
}

#[test]
fn check_refuses_broken_concepts_and_items() {
    let s = Sandbox::new();
    let demo = std::fs::read_to_string(repo("data/park.toml")).unwrap();
    s.write(
        "data/park.toml",
        &format!(
            "{demo}\n[[concept]]\nid = \"Bad Id\"\nwords = []\n\n[[concept]]\nid = \"only-stops\"\nwords = [\"the\"]\n"
        ),
    );
    let r = s.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("concept `Bad Id`: field `id` must be lowercase"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("concept `Bad Id`: field `words` needs at least one word"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("concept `only-stops`: field `words`: \"the\" never matches"),
        "{}",
        r.stderr
    );
    s.write(
        "data/park.toml",
        &format!(
            "{demo}\n[[faq]]\nid = \"dup\"\nquestions = [\"x?\"]\nanswer = \"y\"\naliases = [\"a\", \"A\", \" \"]\n"
        ),
    );
    let r = s.run(&["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("faq `dup`: field `aliases` lists \"A\" twice"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("faq `dup`: field `aliases` has an empty entry"),
        "{}",
        r.stderr
    );
}
