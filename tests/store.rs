//! The store file: one process at a time, schema versions, and kills.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use crate::util::Sandbox;

#[test]
fn a_store_held_by_another_process_is_a_plain_error() {
    let s = Sandbox::new();
    let mut chat = s
        .cmd(&["chat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    let mut stdout = BufReader::new(chat.stdout.take().unwrap());
    // Once chat has answered, it holds the store.
    writeln!(stdin, "hello").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(!line.is_empty());

    let started = std::time::Instant::now();
    let r = s.run(&["ask", "hello"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("park.redb is in use by another parkbot process"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("admin API"), "{}", r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it must not wait for the lock"
    );

    drop(stdin);
    assert!(chat.wait().unwrap().success());
    // Released: the next command works.
    s.ok(&["ask", "hello"]);
}

#[test]
fn a_store_of_a_newer_schema_is_refused_untouched() {
    let s = Sandbox::new();
    s.ok(&["ask", "hello"]);
    {
        // What a future parkbot would leave behind.
        let db = redb::Database::create(s.db()).unwrap();
        let w = db.begin_write().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        w.open_table(meta).unwrap().insert("schema_version", 7).unwrap();
        w.commit().unwrap();
    }
    let r = s.run(&["ask", "hello"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("has schema version 7"), "{}", r.stderr);
    assert!(r.stderr.contains("understands versions up to 2"), "{}", r.stderr);
    // Nothing was migrated or rewritten: the version and the data stand.
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::create(s.db()).unwrap();
    let r = db.begin_read().unwrap();
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    assert_eq!(
        r.open_table(meta)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value(),
        7
    );
    let fields: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("knowledge_field");
    assert_eq!(r.open_table(fields).unwrap().len().unwrap(), 4);
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let s = Sandbox::new();
    std::fs::write(s.db(), "this is a text file, not a redb store\n".repeat(200)).unwrap();
    let r = s.run(&["ask", "hello"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not a parkbot store"), "{}", r.stderr);
}

/// A knowledge file of `n` enterprises whose summaries carry `tag`.
fn big_file(n: usize, tag: &str) -> String {
    let mut s = String::from("[[field]]\nid = \"f\"\nname = \"F\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "\n[[enterprise]]\nid = \"e{i}\"\nname = \"Enterprise {i}\"\nfields = [\"f\"]\nsummary = \"{tag} {i} {}\"\n",
            "padding ".repeat(20)
        ));
    }
    s
}

#[test]
fn killing_an_import_leaves_the_old_or_the_new_knowledge() {
    let s = Sandbox::new();
    let old = s.write("old.toml", &big_file(3000, "OLDSTATE"));
    let new = s.write("new.toml", &big_file(3000, "NEWSTATE"));
    s.ok(&["import", "--replace", old.to_str().unwrap()]);
    let mut outcomes = (0, 0);
    for delay_ms in [5u64, 30, 60, 90, 120, 160, 220, 300] {
        let mut child = s
            .cmd(&["import", "--replace", new.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL: no clean-up runs
        let _ = child.wait();
        let out = s.ok(&["export", "knowledge"]).stdout;
        let (olds, news) = (out.matches("OLDSTATE").count(), out.matches("NEWSTATE").count());
        assert!(
            (olds, news) == (3000, 0) || (olds, news) == (0, 3000),
            "after a kill at {delay_ms} ms: {olds} old and {news} new records"
        );
        if olds == 3000 {
            outcomes.0 += 1;
            continue;
        }
        outcomes.1 += 1;
        // Put the old state back for the next round.
        s.ok(&["import", "--replace", old.to_str().unwrap()]);
    }
    eprintln!("kills that left the old state: {}, the new: {}", outcomes.0, outcomes.1);
}
