//! The command line: help, configuration errors, `check`, `ask` and `chat`.

use crate::util::{Run, Sandbox, repo};

#[test]
fn help_lists_the_commands() {
    let s = Sandbox::new();
    let r = s.ok(&["--help"]);
    for cmd in ["chat", "ask", "import", "export", "check"] {
        assert!(r.stdout.contains(cmd), "--help lacks {cmd}:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("PARKBOT_<SECTION>__<KEY>"));
}

#[test]
fn asks_in_both_languages_on_the_built_in_defaults() {
    let s = Sandbox::new();
    // No config file and no data folder here: the built-in copies are used.
    let zh = s.ask("a", "刘慈欣工作室在哪里？");
    assert!(zh.starts_with("刘慈欣工作室"), "{zh}");
    assert!(zh.contains("位置："), "{zh}");
    let en = s.ask("a", "Where is Liu Cixin's studio?");
    assert!(en.starts_with("Liu Cixin Studio"), "{en}");
    assert!(en.contains("Location: "), "{en}");
}

#[test]
fn greetings_get_help_in_the_message_language() {
    let s = Sandbox::new();
    assert!(s.ask("a", "你好").contains("您可以问我"));
    assert!(s.ask("a", "hello").contains("You can ask me about"));
    assert!(s.ask("a", "/start").contains("You can ask me about"));
}

#[test]
fn unknown_questions_get_an_honest_fallback() {
    let s = Sandbox::new();
    let r = s.ask("a", "明天北京会下雨吗");
    assert!(r.contains("抱歉"), "{r}");
    let r = s.ask("a", "Who won the football world cup?");
    assert!(r.contains("I don't know"), "{r}");
}

#[test]
fn field_lists_show_five_then_more_across_processes() {
    let s = Sandbox::new();
    let first = s.ask("u1", "有哪些视频特效企业？");
    assert!(first.contains("1. ") && first.contains("5. "), "{first}");
    assert!(!first.contains("6. "), "{first}");
    assert!(first.contains("还有1项"), "{first}");
    // A new process continues the same identity's list...
    let more = s.ask("u1", "更多");
    assert!(more.starts_with("6. "), "{more}");
    // ...and another identity has nothing to continue.
    assert!(s.ask("u2", "更多").contains("没有更多"));
    assert!(s.ask("u1", "更多").contains("没有更多"));
}

#[test]
fn upcoming_events_are_listed_soonest_first() {
    let s = Sandbox::new();
    let r = s.ask("a", "What events are coming up?");
    let web3 = r.find("Web 3.0 International Forum").expect(&r);
    let c101 = r.find("Consortium 101").expect(&r);
    assert!(web3 < c101, "{r}");
    assert!(!r.contains("Book Club"), "past events are not upcoming:\n{r}");
}

#[test]
fn event_details_show_time_venue_and_seats() {
    let s = Sandbox::new();
    let r = s.ask("a", "Web3.0论坛什么时候开？");
    assert!(r.starts_with("首钢园Web3.0国际论坛"), "{r}");
    assert!(r.contains("时间：2026年12月18日（周五）09:30"), "{r}");
    assert!(r.contains("名额：剩余300个"), "{r}");
}

#[test]
fn replies_are_plain_text() {
    let s = Sandbox::new();
    for q in [
        "有哪些视频特效企业？",
        "Tell me about Starvault VFX",
        "How do I get to the park?",
    ] {
        let r = s.ask("a", q);
        for md in ["**", "##", "](", "`"] {
            assert!(!r.contains(md), "markdown {md:?} in reply to {q}:\n{r}");
        }
    }
}

#[test]
fn chat_reads_lines_until_end_of_input() {
    let s = Sandbox::new();
    let mut child = s
        .cmd(&["chat", "--user", "tty"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "hello\n\nWhere is Liu Cixin Studio?\n/quit\nnever read").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("You can ask me about"), "{text}");
    assert!(text.contains("Liu Cixin Studio"), "{text}");
}

#[test]
fn configuration_errors_name_the_key() {
    let s = Sandbox::new();
    let cfg = s.write(
        "bad.toml",
        "[store]\npaht = \"x.redb\"\n[announce]\nmax_attempts = \"5\"\n",
    );
    let r = s.run(&["--config", cfg.to_str().unwrap(), "ask", "hi"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown key `store.paht`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`announce.max_attempts` must be an integer"),
        "{}",
        r.stderr
    );

    let r = Sandbox::new()
        .cmd(&["ask", "hi"])
        .env("PARKBOT_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("`server.listen`"), "{err}");
}

#[test]
fn the_working_directory_config_is_used() {
    let s = Sandbox::new();
    s.write("config/default.toml", "[store]\npath = \"from-config.redb\"\n");
    let r = std::process::Command::new(crate::util::BIN)
        .current_dir(s.dir.path())
        .env_clear()
        .args(["ask", "hello"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(s.path("from-config.redb").exists());
}

#[test]
fn check_passes_on_the_shipped_files_and_lists_every_problem() {
    let s = Sandbox::new();
    let r = s.ok(&["check"]);
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);

    // Run from the repository too: its config/, dialogs/ and data/ are read from disk.
    let r = std::process::Command::new(crate::util::BIN)
        .current_dir(repo(""))
        .env_clear()
        .arg("check")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let bot = std::fs::read_to_string(repo("dialogs/bot.toml")).unwrap();
    s.write("dialogs/bot.toml", &bot.replacen("{rest}项", "{rst}项", 1));
    s.write("data/park.toml", "[[field]]\nid = \"x\"\n");
    let r = s.run(&["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("dialogs/bot.toml: text `more_hint`: unknown placeholder {rst}"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("data/park.toml:1: missing field `name`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 problem(s) found"), "{}", r.stderr);
}

#[test]
fn logs_never_show_secrets() {
    let s = Sandbox::new();
    let r = s
        .cmd(&["ask", "hello"])
        .env("RUST_LOG", "trace")
        .env("PARKBOT_TELEGRAM__TOKEN", "123456:SECRET-TOKEN-VALUE")
        .env("PARKBOT_STAFF__ADMIN_TOKEN", "admin-secret-value")
        .output()
        .unwrap();
    assert!(r.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!all.contains("SECRET-TOKEN-VALUE") && !all.contains("admin-secret-value"));
    assert!(all.contains("configuration loaded"), "trace logging is on:\n{all}");
    assert!(all.contains("<set>"), "secrets show as set:\n{all}");
}

#[test]
fn the_fields_are_listed_with_their_enterprise_counts() {
    let s = Sandbox::new();
    let r = s.ask("a", "园区有哪些产业领域？");
    assert!(r.starts_with("园区的产业领域（共4个）"), "{r}");
    assert!(r.contains("视频特效（6家企业）"), "{r}");
    let r = s.ask("a", "What fields does the park cover?");
    assert!(r.contains("video special effects (6 enterprises)"), "{r}");
}

#[test]
fn unknown_commands_and_options_are_refused() {
    let s = Sandbox::new();
    let r = s.run(&["frobnicate"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        r.stderr
    );
    let r = s.run(&["ask", "--colour", "x"]);
    assert_eq!(r.code, 2);
    let r = s.run(&["export", "registrations", "--format", "xml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("possible values: csv, json"), "{}", r.stderr);
}

#[test]
fn check_names_an_out_of_range_dialog_timeout() {
    let s = Sandbox::new();
    let cfg = s.write("huge.toml", "[dialogs]\ntimeout_minutes = 9223372036854775807\n");
    for args in [&["check"][..], &["ask", "hi"][..]] {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        let r = s.run(&all);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("`dialogs.timeout_minutes` = 9223372036854775807 is out of range: allowed 1..=10080"),
            "{}",
            r.stderr
        );
    }
    // From the environment too: read as a 64-bit number, then range-checked.
    let r = s
        .cmd(&["check"])
        .env("PARKBOT_WECHAT__REPLY_BUDGET_MS", "4294967296")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        err.contains("`wechat.reply_budget_ms` = 4294967296 is out of range: allowed 100..=4800"),
        "{err}"
    );
}

#[test]
fn a_configured_dialog_folder_must_exist() {
    let s = Sandbox::new();
    let cfg = s.write("cfg.toml", "[dialogs]\ndir = \"my-dialogs\"\n");
    let cfg = cfg.to_str().unwrap();
    let expected = "dialogs.dir = \"my-dialogs\": folder not found";
    let r = s.run(&["--config", cfg, "check"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(expected), "{}", r.stderr);
    assert!(r.stderr.contains("1 problem(s) found"), "said once:\n{}", r.stderr);
    let r = s.run(&["--config", cfg, "ask", "hi"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(expected), "{}", r.stderr);
    // Commands that do not load dialogs still work.
    assert!(
        s.ok(&["--config", cfg, "export", "knowledge"])
            .stdout
            .contains("[[enterprise]]")
    );
    // Set from the environment.
    let r = s
        .cmd(&["check"])
        .env("PARKBOT_DIALOGS__DIR", "elsewhere")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("dialogs.dir = \"elsewhere\": folder not found"), "{err}");
    // Once the folder exists, it is used.
    let bot = std::fs::read_to_string(repo("dialogs/bot.toml")).unwrap();
    s.write("my-dialogs/bot.toml", &bot);
    s.ok(&["--config", cfg, "check"]);
    // The default folder, absent, still falls back to the built-in dialogs.
    assert!(s.ok(&["check"]).stdout.starts_with("ok"));
    let dflt = s.write("dflt.toml", "[dialogs]\ndir = \"dialogs\"\n");
    assert!(
        s.ok(&["--config", dflt.to_str().unwrap(), "check"])
            .stdout
            .starts_with("ok")
    );
}

#[test]
fn the_shipped_configuration_holds_the_contract_keys() {
    let s = Sandbox::new();
    let cfg = s.write(
        "contract.toml",
        "[server]\nmessages_per_minute = 0\nmax_message_chars = 1000\nretry_window_minutes = 15\n\
         [wechat]\nreply_budget_ms = 4000\n[wechat.menu]\nEVENTS = \"最近有什么活动\"\n\
         [announce]\nremind_before_hours = 24\n",
    );
    s.ok(&["--config", cfg.to_str().unwrap(), "check"]);
}

#[test]
fn registrations_csv_is_quoted_and_defused() {
    let s = Sandbox::new();
    let name = "=HYPERLINK(\"http://x\",\"a, b\")";
    let org = "@Star, \"Quoted\" Co";
    for step in ["报名", "2", name, org, "13812345678", "是"] {
        s.ask("csv", step);
    }
    let csv = s.ok(&["export", "registrations"]).stdout;
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "event_id",
            "code",
            "status",
            "name",
            "organization",
            "phone",
            "user",
            "created_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(&rows[0][3], format!("'{name}"), "{csv}");
    assert_eq!(&rows[0][4], format!("'{org}"), "{csv}");
    assert_eq!(&rows[0][5], "13812345678");
    assert_eq!(&rows[0][6], "console:csv");
}

#[test]
fn check_names_events_too_long_for_a_telegram_deep_link() {
    let s = Sandbox::new();
    let id = format!("forum-{}", "x".repeat(55));
    s.write(
        "data/park.toml",
        &format!(
            "[[event]]\nid = \"{id}\"\ntitle = \"Forum\"\nstarts_at = \"2027-01-01T09:00:00+08:00\"\n\
             venue = \"Hall\"\n"
        ),
    );
    // Telegram off: a note, and the check passes.
    let r = s.ok(&["check"]);
    assert!(
        r.stderr
            .contains(&format!("note: event \"{id}\": no Telegram sign-up link")),
        "{}",
        r.stderr
    );
    // Telegram on: a problem.
    let r = Run::from(
        s.cmd(&["check"])
            .env("PARKBOT_TELEGRAM__ENABLED", "true")
            .env("PARKBOT_TELEGRAM__TOKEN", "1:x")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("allows 1 to 64"), "{}", r.stderr);
}
