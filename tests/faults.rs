//! Bad input and damaged files through the real binary: each gets a clear
//! error and loses nothing; nothing destructive happens silently.

use std::io::Write;
use std::process::Stdio;

use crate::util::Sandbox;

/// Signs `user` up for the demo's Web 3.0 forum.
fn sign_up(s: &Sandbox, user: &str, name: &str) -> String {
    s.say(
        user,
        &["sign up for the Web 3.0 forum", name, "Acme Co", "13812345678", "yes"],
    )
}

#[test]
fn an_empty_or_missing_store_path_is_an_error_not_a_new_store() {
    let s = Sandbox::new();
    std::fs::write(s.db(), b"").unwrap();
    let r = s.run(&["ask", "hello"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not a parkbot store"), "{}", r.stderr);
    assert_eq!(std::fs::metadata(s.db()).unwrap().len(), 0, "not re-initialised");

    let r = Sandbox::new();
    let missing = r.path("no-such-folder/park.redb");
    let out = r.cmd(&["ask", "hello"]).arg("--db").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-folder"), "{err}");
    assert!(!r.path("no-such-folder").exists(), "a mistyped folder is not created");
}

#[test]
fn a_flipped_byte_anywhere_gives_a_clean_error_never_a_panic() {
    let s = Sandbox::new();
    sign_up(&s, "a", "Ann Lee");
    let good = std::fs::read(s.db()).unwrap();
    let pages = good.len() / 4096;
    assert!(pages >= 2);
    for page in 0..pages {
        let mut bad = good.clone();
        bad[page * 4096 + 100] ^= 0xff;
        std::fs::write(s.db(), &bad).unwrap();
        for args in [&["ask", "我的报名"][..], &["export", "registrations"][..]] {
            let r = s.run(args);
            assert_ne!(r.code, 101, "page {page}: a panic\n{}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "page {page}: {}", r.stderr);
            assert!(
                r.code == 0 || r.stderr.starts_with("error: "),
                "page {page}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn import_replace_says_what_goes_and_refuses_to_destroy_without_force() {
    let s = Sandbox::new();
    sign_up(&s, "a", "Ann Lee");
    let empty = s.write("empty.toml", "");
    let r = s.run(&["import", "--replace", empty.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("leave the knowledge empty"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    let only = s.write(
        "only.toml",
        "[[faq]]\nid = \"hours\"\nquestions = [\"When is the park open?\"]\nanswer = \"7:00-22:00\"\n",
    );
    let r = s.run(&["import", "--replace", only.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("web3-forum"),
        "names the event with registrations: {}",
        r.stderr
    );
    assert!(
        s.ask("b", "Where is Liu Cixin Studio?").contains("Liu Cixin Studio"),
        "nothing was removed"
    );

    let r = s.ok(&["import", "--replace", "--force", only.to_str().unwrap()]);
    assert!(r.stderr.contains("removed"), "{}", r.stderr);
    assert!(s.ask("b", "When is the park open?").contains("7:00-22:00"));
    let csv = s.ok(&["export", "registrations"]).stdout;
    assert!(csv.contains("Ann Lee"), "registrations are kept: {csv}");
    let r = s.run(&["import", "--force", only.to_str().unwrap()]);
    assert_ne!(r.code, 0, "--force only goes with --replace");
}

#[test]
fn a_raised_capacity_moves_waiting_people_up_in_order() {
    let s = Sandbox::new();
    let event = |cap: u32| {
        format!(
            "[[event]]\nid = \"salon\"\ntitle = {{ zh = \"小沙龙\", en = \"Small Salon\" }}\n\
             starts_at = \"2027-03-01T14:00:00+08:00\"\ncapacity = {cap}\n"
        )
    };
    let one = s.write("one.toml", &event(1));
    s.ok(&["import", "--replace", "--force", one.to_str().unwrap()]);
    for who in ["a", "b", "c"] {
        let r = s.say(who, &["sign up", "1", "Person Name", "Acme", "13812345678", "yes"]);
        assert!(r.contains("registered") || r.contains("waiting list"), "{r}");
    }
    let three = s.write("three.toml", &event(2));
    let r = s.ok(&["import", three.to_str().unwrap()]);
    assert!(r.stderr.contains("1 moved up"), "{}", r.stderr);
    let csv = s.ok(&["export", "registrations"]).stdout;
    let statuses: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(statuses, ["confirmed", "confirmed", "waitlisted"], "{csv}");
    // Lowered below the confirmed count: a cancellation promotes nobody.
    let low = s.write("low.toml", &event(1));
    s.ok(&["import", low.to_str().unwrap()]);
    s.say("a", &["my registrations", "1", "yes"]);
    let csv = s.ok(&["export", "registrations"]).stdout;
    let statuses: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(statuses, ["cancelled", "confirmed", "waitlisted"], "{csv}");
}

#[test]
fn chat_skips_a_line_that_is_not_utf8_and_bounds_long_lines() {
    let s = Sandbox::new();
    let mut child = s
        .cmd(&["chat", "--user", "pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n\xff\xfe broken\n").unwrap();
        stdin.write_all(&vec![b'x'; 5_000_000]).unwrap();
        stdin.write_all(b"\nWhere is Liu Cixin Studio?\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: skipped"), "{err}");
    assert!(text.contains("too long"), "{text}");
    assert!(text.contains("Liu Cixin Studio"), "the session went on: {text}");
}

#[test]
fn ask_refuses_an_overlong_message_politely() {
    let s = Sandbox::new();
    let r = s.ask("a", &"长".repeat(1001));
    assert!(r.contains("太长"), "{r}");
    let r = s.run(&["ask", &"x".repeat(50)]);
    assert_eq!(r.code, 0);
}

#[test]
fn exports_only_read_the_store() {
    let s = Sandbox::new();
    sign_up(&s, "a", "Ann Lee");
    let before = std::fs::read(s.db()).unwrap();
    let modified = std::fs::metadata(s.db()).unwrap().modified().unwrap();
    s.ok(&["export", "registrations"]);
    s.ok(&["export", "knowledge"]);
    s.ok(&["export", "inquiries"]);
    assert_eq!(std::fs::read(s.db()).unwrap(), before, "not a byte changed");
    assert_eq!(std::fs::metadata(s.db()).unwrap().modified().unwrap(), modified);
}

#[test]
fn hostile_names_survive_the_export() {
    let s = Sandbox::new();
    let names = ["{phone}", "=1+2", "Lee, \"Ann\"", "@cmd"];
    for (i, name) in names.iter().enumerate() {
        let r = sign_up(&s, &format!("h{i}"), name);
        assert!(r.contains("registered") || r.contains("waiting"), "{r}");
    }
    let csv = s.ok(&["export", "registrations"]).stdout;
    assert!(!csv.contains("13812345678,13812345678"), "no expansion: {csv}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["export", "registrations", "--format", "json"]).stdout).unwrap();
    let got: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, names);
}
