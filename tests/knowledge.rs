//! Knowledge import and export through the binary: both formats, upserts,
//! `--replace`, all-or-nothing on every kind of bad input, round trips.

use crate::util::{Sandbox, repo};

const SMALL: &str = r#"
[[field]]
id = "robots"
name = { zh = "机器人", en = "robots" }
aliases = ["机械臂"]

[[enterprise]]
id = "ironarm"
name = { zh = "铁臂科技", en = "Ironarm Tech" }
fields = ["robots"]
summary = { zh = "造焊接机械臂。", en = "Builds welding arms." }
tags = ["焊接", "welding"]

[[event]]
id = "expo"
title = { zh = "机器人博览会", en = "Robot Expo" }
starts_at = "2027-03-01T09:00:00+08:00"
venue = "Hall 1"
capacity = 50
summary = { zh = "展示机器人。", en = "Robots on show." }

[[faq]]
id = "parking"
questions = ["停车收费吗？", "Is parking free?"]
answer = { zh = "停车免费。", en = "Parking is free." }
tags = ["停车", "parking"]
"#;

fn export(s: &Sandbox) -> String {
    s.ok(&["export", "knowledge"]).stdout
}

#[test]
fn import_then_ask_in_both_languages() {
    let s = Sandbox::new();
    let f = s.write("small.toml", SMALL);
    let r = s.ok(&["import", "--replace", f.to_str().unwrap()]);
    assert!(r.stderr.contains("4 added"), "{}", r.stderr);
    assert!(s.ask("a", "铁臂是做什么的").starts_with("铁臂科技"));
    assert!(s.ask("a", "what does ironarm do?").starts_with("Ironarm Tech"));
    assert!(s.ask("a", "停车要钱吗").contains("停车免费"));
    assert!(s.ask("a", "robot expo, when?").starts_with("Robot Expo"));
    // --replace removed the demo knowledge seeded by nothing: none was there.
    assert!(!export(&s).contains("liu-cixin-studio"));
}

#[test]
fn json_imports_like_toml() {
    let s = Sandbox::new();
    let json = r#"{"field": [{"id": "robots", "name": {"zh": "机器人", "en": "robots"}}],
 "enterprise": [{"id": "ironarm", "name": "Ironarm Tech", "fields": ["robots"], "summary": {"en": "Builds welding arms."}}]}"#;
    let f = s.write("k.json", json);
    s.ok(&["import", "--replace", f.to_str().unwrap()]);
    assert!(s.ask("a", "tell me about ironarm").starts_with("Ironarm Tech"));
}

#[test]
fn upsert_keeps_other_items_and_replace_removes_them() {
    let s = Sandbox::new();
    let f = s.write("small.toml", SMALL);
    s.ok(&["import", "--replace", f.to_str().unwrap()]);
    let extra = s.write(
        "extra.toml",
        "[[enterprise]]\nid = \"ironarm\"\nname = \"Ironarm Tech\"\nfields = [\"robots\"]\nsummary = \"Now makes painting arms.\"\n",
    );
    let r = s.ok(&["import", extra.to_str().unwrap()]);
    assert!(r.stderr.contains("1 updated"), "{}", r.stderr);
    let out = export(&s);
    assert!(
        out.contains("painting arms") && out.contains("id = \"parking\""),
        "{out}"
    );
    // The same id in two files of one import is a conflict.
    let r = s.run(&[
        "import",
        extra.to_str().unwrap(),
        s.path("small.toml").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("enterprise `ironarm`: duplicate id (also defined in"),
        "{}",
        r.stderr
    );
    // --replace keeps only what the files hold: the event and the FAQ go.
    let field = s.write("field.toml", "[[field]]\nid = \"robots\"\nname = \"robots\"\n");
    let r = s.ok(&["import", "--replace", extra.to_str().unwrap(), field.to_str().unwrap()]);
    assert!(r.stderr.contains("2 removed"), "{}", r.stderr);
    let out = export(&s);
    assert!(
        !out.contains("id = \"parking\"") && !out.contains("id = \"expo\"") && out.contains("ironarm"),
        "{out}"
    );
}

#[test]
fn export_round_trips() {
    let s = Sandbox::new();
    // The demo knowledge, seeded on first start.
    s.ask("a", "hello");
    let first = export(&s);
    assert!(first.contains("liu-cixin-studio"));
    let f = s.write("export.toml", &first);
    let r = s.ok(&["import", f.to_str().unwrap()]);
    assert!(
        r.stderr.contains("0 added, 0 updated") && r.stderr.contains("0 removed"),
        "{}",
        r.stderr
    );
    let r = s.ok(&["import", "--replace", f.to_str().unwrap()]);
    assert!(
        r.stderr.contains("0 added, 0 updated") && r.stderr.contains("0 removed"),
        "{}",
        r.stderr
    );
    assert_eq!(export(&s), first);
}

/// Each bad file: the exit code, the message, and a store left as it was.
fn assert_rejected(file: &str, text: &str, expect: &[&str]) {
    let s = Sandbox::new();
    let good = s.write("small.toml", SMALL);
    s.ok(&["import", "--replace", good.to_str().unwrap()]);
    let before = export(&s);
    let bad = s.write(file, text);
    // The good file comes first: all-or-nothing means it is not applied either.
    let changed = s.write("changed.toml", &SMALL.replace("Builds welding arms.", "CHANGED"));
    let r = s.run(&["import", changed.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{file} was accepted:\n{}", r.stderr);
    for e in expect {
        assert!(r.stderr.contains(e), "{file}: expected {e:?} in:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert_eq!(export(&s), before, "{file} changed the store");
}

#[test]
fn missing_id_is_rejected_with_file_line_and_field() {
    assert_rejected(
        "bad.toml",
        "[[field]]\nid = \"ok\"\nname = \"x\"\n\n[[enterprise]]\nname = \"No Id\"\n",
        &["bad.toml:5:", "missing field `id`"],
    );
}

#[test]
fn duplicate_id_is_rejected() {
    let text = "[[faq]]\nid = \"dup\"\nquestions = [\"a?\"]\nanswer = \"a\"\n\n[[faq]]\nid = \"dup\"\nquestions = [\"b?\"]\nanswer = \"b\"\n";
    assert_rejected("dup.toml", text, &["dup.toml:6: faq `dup`: duplicate id"]);
}

#[test]
fn unknown_field_reference_is_rejected() {
    let text = "[[enterprise]]\nid = \"lost\"\nname = \"Lost\"\nfields = [\"nowhere\"]\n";
    assert_rejected(
        "ref.toml",
        text,
        &["ref.toml:1: enterprise `lost`: field `fields` names unknown field id `nowhere`"],
    );
}

#[test]
fn bad_timestamp_is_rejected() {
    let text = "[[event]]\nid = \"e\"\ntitle = \"E\"\nstarts_at = \"2027-02-30 09:00\"\n";
    assert_rejected("time.toml", text, &["time.toml:4:", "RFC 3339"]);
}

#[test]
fn broken_syntax_and_unknown_keys_are_rejected() {
    assert_rejected("syntax.toml", "[[field]\nid = \"x\"\n", &["syntax.toml:1:"]);
    assert_rejected(
        "typo.toml",
        "[[field]]\nid = \"x\"\nname = \"X\"\nalias = [\"y\"]\n",
        &["typo.toml:4:", "unknown field `alias`"],
    );
    assert_rejected(
        "bad.json",
        "{\"field\": [{\"id\": \"x\", \"name\": \"X\"},]}",
        &["bad.json:1:"],
    );
    assert_rejected(
        "badid.json",
        "{\"faq\": [\n {\"id\": \"Bad Id\", \"questions\": [\"q\"], \"answer\": \"a\"}\n]}",
        &["badid.json:2: faq `Bad Id`: field `id`"],
    );
}

#[test]
fn a_missing_file_is_named() {
    let s = Sandbox::new();
    let r = s.run(&["import", "nope.toml"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope.toml: cannot read"), "{}", r.stderr);
}

#[test]
fn the_demo_knowledge_is_valid_and_complete() {
    let s = Sandbox::new();
    let r = s.ok(&["import", "--replace", repo("data/park.toml").to_str().unwrap()]);
    assert!(r.stderr.contains("added"), "{}", r.stderr);
    let all = export(&s);
    assert!(all.matches("[[enterprise]]").count() >= 20);
    assert!(all.matches("[[event]]").count() >= 5);
    for fact in [
        "中关村特色产业园",
        "10万平方米",
        "125",
        "王晋康",
        "刘慈欣",
        "SoReal",
        "300",
    ] {
        assert!(all.contains(fact), "demo knowledge lacks {fact}");
    }
}
