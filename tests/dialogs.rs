//! Dialogs through the real binary: each step is a separate `parkbot ask`
//! process, so every test also shows that state survives restarts.

use crate::util::{Sandbox, repo};

/// A full sign-up for the Web 3.0 forum (number 2 of the open events).
const SIGNUP_ZH: &[&str] = &["报名", "2", "张三", "星穹视效", "13812345678", "是"];

fn code_in(reply: &str) -> String {
    let at = reply
        .find("报名编号：")
        .or_else(|| reply.find("Registration code: "))
        .expect(reply);
    let rest = &reply[at..];
    let start = rest.find(['：', ':']).unwrap()
        + rest[rest.find(['：', ':']).unwrap()..]
            .chars()
            .next()
            .unwrap()
            .len_utf8();
    rest[start..].trim_start().chars().take(6).collect()
}

#[test]
fn a_whole_sign_up_in_chinese() {
    let s = Sandbox::new();
    let r = s.ask("zh", "报名");
    assert!(
        r.contains("1. 科幻剧本工作坊") && r.contains("2. 首钢园Web3.0国际论坛"),
        "{r}"
    );
    assert!(!r.contains("中秋"), "past events are not offered:\n{r}");
    assert!(!r.contains("闭门路演"), "invitation-only events are not offered:\n{r}");
    assert!(s.ask("zh", "2").contains("姓名"));
    assert!(s.ask("zh", "张三").contains("单位"));
    assert!(s.ask("zh", "星穹视效").contains("手机号"));
    let confirm = s.ask("zh", "13812345678");
    assert!(
        confirm.contains("活动：首钢园Web3.0国际论坛") && confirm.contains("手机：13812345678"),
        "{confirm}"
    );
    let done = s.ask("zh", "是");
    assert!(done.starts_with("报名成功"), "{done}");
    let code = code_in(&done);
    assert_eq!(code.len(), 6);
    assert!(
        code.chars().all(|c| "ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(c)),
        "{code}"
    );
    // The event now shows one seat fewer.
    assert!(s.ask("other", "Web3.0论坛在哪开").contains("剩余299个"));
    let csv = s.ok(&["export", "registrations"]).stdout;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("event_id,code,status,name,organization,phone,user,created_at")
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!(
            "web3-forum,{code},confirmed,张三,星穹视效,13812345678,console:zh,2026-11-28T04:00:00Z"
        )),
        "{row}"
    );
}

#[test]
fn a_whole_sign_up_in_english_with_a_preselected_event() {
    let s = Sandbox::new();
    let r = s.ask("en", "I want to sign up for the Web 3.0 forum");
    assert!(
        r.starts_with("Chosen: Shougang Park Web 3.0 International Forum\nYour full name"),
        "{r}"
    );
    s.ask("en", "Jane Doe");
    s.ask("en", "Starvault VFX");
    let confirm = s.ask("en", "+44 20 7946 0958");
    assert!(
        confirm.contains("Event: Shougang Park Web 3.0 International Forum"),
        "{confirm}"
    );
    assert!(confirm.contains("Mobile: +442079460958"), "{confirm}");
    let done = s.ask("en", "yes");
    assert!(done.starts_with("You are registered!"), "{done}");
    let json = s
        .ok(&["export", "registrations", "--format", "json", "--event", "web3-forum"])
        .stdout;
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["name"], "Jane Doe");
    assert_eq!(rows[0]["status"], "confirmed");
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

#[test]
fn deep_links_and_commands_start_with_the_event_chosen() {
    let s = Sandbox::new();
    assert!(
        s.ask("a", "/start signup:consortium-101").contains("姓名"),
        "a link is not English"
    );
    assert!(s.ask("a", "取消").contains("已取消"));
    assert!(s.ask("b", "/signup").contains("Which event"));
    let r = s.ask("c", "/start signup:midautumn-book-club");
    assert!(r.starts_with("中秋科幻读书会"), "{r}");
    // After an English message, a link answers in English.
    s.ask("d", "hello");
    let r = s.ask("d", "/start signup:consortium-101");
    assert!(r.contains("Your full name"), "{r}");
}

#[test]
fn bad_answers_are_refused_with_the_reason() {
    let s = Sandbox::new();
    s.ask("u", "报名");
    let r = s.ask("u", "9");
    assert!(r.contains("请回复列表中的序号（1到6）"), "{r}");
    assert!(r.contains("请选择要报名的活动"), "the prompt is repeated:\n{r}");
    let r = s.ask("u", "火星旅行");
    assert!(r.contains("请回复列表中的序号"), "{r}");
    s.ask("u", "科幻产业联合体");
    let r = s.ask("u", "  ");
    assert!(r.contains("太短"), "{r}");
    let r = s.ask("u", "王");
    assert!(r.contains("至少输入2个字"), "{r}");
    let r = s.ask("u", &"长".repeat(31));
    assert!(r.contains("不要超过30个字"), "{r}");
    s.ask("u", "王五");
    s.ask("u", "首钢");
    for bad in [
        "12345",
        "23812345678",
        "138123456789",
        "138-1234-567",
        "+86 12345678901",
        "电话",
    ] {
        let r = s.ask("u", bad);
        assert!(
            r.contains("手机号格式不对") || r.contains("not a valid mobile number"),
            "{bad}: {r}"
        );
    }
    let r = s.ask("u", "138 1234 5678");
    assert!(r.contains("请确认报名信息"), "{r}");
    let r = s.ask("u", "也许");
    assert!(r.contains("请回复“是”或“否”"), "{r}");
    let r = s.ask("u", "否");
    assert!(r.contains("请输入您的姓名"), "\"no\" goes back to the name:\n{r}");
}

#[test]
fn cancel_works_at_every_step() {
    let s = Sandbox::new();
    for steps in 1..SIGNUP_ZH.len() {
        let user = format!("c{steps}");
        s.say(&user, &SIGNUP_ZH[..steps]);
        let r = s.ask(&user, "取消");
        assert!(r.contains("已取消"), "cancel after {steps} steps: {r}");
        // Nothing in progress any more: a number is just a question now.
        let r = s.ask(&user, "取消");
        assert!(r.contains("没有进行中的操作"), "{r}");
    }
    assert_eq!(
        s.ok(&["export", "registrations"]).stdout.lines().count(),
        1,
        "nothing was registered"
    );
}

#[test]
fn back_goes_one_step_back_at_every_step() {
    let s = Sandbox::new();
    let prompts = [
        "请选择要报名的活动",
        "请输入您的姓名",
        "请输入您的单位",
        "请输入您的手机号",
        "请确认报名信息",
    ];
    // At the first step there is nowhere to go.
    s.ask("b0", "报名");
    let r = s.ask("b0", "返回");
    assert!(r.contains("已经是第一步了") && r.contains(prompts[0]), "{r}");
    for step in 1..prompts.len() {
        let user = format!("b{step}");
        s.say(&user, &SIGNUP_ZH[..=step]);
        let r = s.ask(&user, "返回");
        assert!(r.contains(prompts[step - 1]), "back from step {step}: {r}");
    }
    // Going back and answering again replaces the earlier answer.
    s.say("bb", &["报名", "2", "张三", "返回", "李四", "首钢", "13812345678"]);
    let r = s.ask("bb", "是");
    assert!(r.contains("报名成功"));
    assert!(s.ok(&["export", "registrations"]).stdout.contains(",李四,"));
}

#[test]
fn a_dialog_expires_after_the_timeout() {
    let s = Sandbox::new();
    s.ask_at("2026-11-28T12:00:00+08:00", "t", "报名");
    s.ask_at("2026-11-28T12:10:00+08:00", "t", "2");
    // 29 minutes after the last step: still going.
    assert!(s.ask_at("2026-11-28T12:39:00+08:00", "t", "张三").contains("单位"));
    // 31 minutes later: the answer is not taken; the person is told.
    let r = s.ask_at("2026-11-28T13:10:00+08:00", "t", "首钢");
    assert!(r.contains("超时"), "{r}");
    assert!(
        !s.ask_at("2026-11-28T13:10:30+08:00", "t", "13812345678")
            .contains("确认")
    );
}

#[test]
fn a_configured_timeout_is_used() {
    let s = Sandbox::new();
    s.ask("t", "报名");
    let r = s
        .cmd(&["ask", "--user", "t", "2"])
        .env("PARKBOT_DIALOGS__TIMEOUT_MINUTES", "1")
        .env("PARKBOT_NOW", "2026-11-28T12:02:00+08:00")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&r.stdout).contains("超时"));
}

#[test]
fn identities_never_see_each_others_state() {
    let s = Sandbox::new();
    s.say("alice", &["报名", "2", "Alice"]);
    // Bob is not in a dialog: "2" is not an answer for him.
    let r = s.ask("bob", "Bob Smith");
    assert!(!r.contains("organization") && !r.contains("单位"), "{r}");
    assert!(s.ask("alice", "Acme").contains("mobile number"));
}

#[test]
fn signing_up_twice_shows_the_existing_registration() {
    let s = Sandbox::new();
    let code = code_in(&s.say("d", SIGNUP_ZH));
    let r = s.say("d", SIGNUP_ZH);
    assert!(r.contains("您已报名首钢园Web3.0国际论坛") && r.contains(&code), "{r}");
    assert_eq!(s.ok(&["export", "registrations"]).stdout.lines().count(), 2);
}

#[test]
fn closed_events_are_refused_with_the_reason() {
    let s = Sandbox::new();
    let r = s.ask("x", "我要报名中秋科幻读书会");
    assert!(r.starts_with("中秋科幻读书会已经开始或结束"), "{r}");
    let r = s.ask("x", "Can I register for the closed-door roadshow?");
    assert!(
        r.starts_with("Sci-Fi Industry Fund Closed-Door Roadshow is not open for public sign-up"),
        "{r}"
    );
    // The workshop's sign-up closes on 10 Dec, 18:00.
    let r = s.ask_at("2026-12-11T09:00:00+08:00", "y", "报名科幻剧本工作坊");
    assert!(r.starts_with("科幻剧本工作坊报名已截止"), "{r}");
    // Chosen while open, closed before the confirmation: refused at the end.
    s.ask_at("2026-12-10T17:50:00+08:00", "z", "报名科幻剧本工作坊");
    for m in ["赵六", "首钢", "13812345678"] {
        s.ask_at("2026-12-10T17:55:00+08:00", "z", m);
    }
    let r = s.ask_at("2026-12-10T18:01:00+08:00", "z", "是");
    assert!(r.contains("报名已截止"), "{r}");
    assert_eq!(s.ok(&["export", "registrations"]).stdout.lines().count(), 1);
}

#[test]
fn a_full_event_offers_the_waiting_list_and_cancelling_promotes() {
    let s = Sandbox::new();
    let mut k = std::fs::read_to_string(repo("data/park.toml")).unwrap();
    k = k.replace("capacity = 20\n", "capacity = 2\n");
    let f = s.write("park.toml", &k);
    s.ok(&["import", "--replace", f.to_str().unwrap()]);
    let signup = |user: &str| s.say(user, &["报名科幻剧本工作坊", "某人", "首钢", "13812345678", "是"]);
    let first = code_in(&signup("p1"));
    signup("p2");
    let w1 = signup("p3");
    assert!(w1.contains("候补名单") && w1.contains("第1位"), "{w1}");
    let w2 = signup("p4");
    assert!(w2.contains("第2位"), "{w2}");
    assert!(s.ask("q", "科幻剧本工作坊").contains("已满"));

    // p1 cancels: p3 moves up, and is told through the outbox.
    let mine = s.ask("p1", "我的报名");
    assert!(mine.contains(&first) && mine.contains("已确认"), "{mine}");
    assert!(s.ask("p1", "1").contains("确定要取消"));
    let r = s.ask("p1", "是");
    assert!(r.contains("已取消科幻剧本工作坊的报名"), "{r}");
    let csv = s
        .ok(&["export", "registrations", "--event", "screenwriting-workshop"])
        .stdout;
    let status: Vec<(&str, &str)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[6], f[2])
        })
        .collect();
    assert_eq!(
        status,
        vec![
            ("console:p1", "cancelled"),
            ("console:p2", "confirmed"),
            ("console:p3", "confirmed"),
            ("console:p4", "waitlisted")
        ]
    );
    assert!(s.ask("p3", "我的报名").contains("已确认"));
    assert!(s.ask("p1", "我的报名").contains("还没有报名"));
}

#[test]
fn keeping_a_registration_changes_nothing() {
    let s = Sandbox::new();
    s.say("k", SIGNUP_ZH);
    s.say("k", &["my registrations", "1"]);
    let r = s.ask("k", "no");
    assert!(r.contains("stays as it is"), "{r}");
    assert!(s.ok(&["export", "registrations"]).stdout.contains(",confirmed,"));
}

#[test]
fn the_inquiry_dialog_saves_a_lead() {
    let s = Sandbox::new();
    let r = s.ask("i", "入驻咨询");
    assert!(r.contains("贵公司名称"), "{r}");
    let r = s.ask("i", "银河影业");
    assert!(r.contains("1. 内容创作") && r.contains("5. 其他"), "{r}");
    assert!(s.ask("i", "7").contains("1到5"));
    assert!(s.ask("i", "视频特效").contains("平方米"));
    assert!(s.ask("i", "5").contains("10到10000"));
    assert!(s.ask("i", "大概 500 平米").contains("联系电话"));
    assert!(s.ask("i", "13912345678").contains("电子邮箱"));
    assert!(s.ask("i", "是").contains("请输入电子邮箱"));
    assert!(s.ask("i", "not-an-email").contains("not a valid email address"));
    assert!(s.ask("i", "无效邮箱").contains("邮箱格式不对"));
    assert!(s.ask("i", "ceo@galaxy.example").contains("tell us briefly"));
    let r = s.ask("i", "需要一个300平米的摄影棚, 明年3月入驻");
    assert!(r.contains("已收到银河影业的入驻咨询（编号000001）"), "{r}");
    // Skipping the email takes the other branch.
    s.say("j", &["inquiry", "Nova Labs", "4", "120", "+1 415 555 0100", "no"]);
    assert!(s.ask("j", "A small lab").contains("reference 000002"));
    let csv = s.ok(&["export", "inquiries"]).stdout;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("ref,created_at,user,company,field,area,phone,email_wanted,email,message")
    );
    assert_eq!(
        lines.next(),
        Some(
            "000001,2026-11-28T04:00:00Z,console:i,银河影业,vfx,500,13912345678,yes,ceo@galaxy.example,\"需要一个300平米的摄影棚, 明年3月入驻\""
        )
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("000002,2026-11-28T04:00:00Z,console:j,Nova Labs,vfx,120,+14155550100,no,,A small lab")
    );
}

#[test]
fn a_third_dialog_needs_only_a_file() {
    let s = Sandbox::new();
    for (name, text) in [
        ("bot.toml", "../dialogs/bot.toml"),
        ("signup.toml", "../dialogs/signup.toml"),
    ] {
        s.write(
            &format!("dialogs/{name}"),
            &std::fs::read_to_string(repo(&text[3..])).unwrap(),
        );
    }
    s.write(
        "dialogs/feedback.toml",
        r#"
[dialog]
id = "feedback"
triggers = ["意见反馈", "feedback"]
start = "rating"
action = "save_form"
form = "feedback"

[texts]
saved = { zh = "感谢您的{rating}分评价！", en = "Thanks for rating us {rating}!" }

[[state]]
id = "rating"
prompt = { zh = "请为园区服务打分：\n{choices}", en = "How do you rate the park's services?\n{choices}" }
input = { kind = "choice", options = [
  { value = "5", label = { zh = "很满意", en = "very good" } },
  { value = "3", label = { zh = "一般", en = "so-so" } },
] }
save = "rating"
next = "comment"

[[state]]
id = "comment"
prompt = { zh = "还有什么想说的？", en = "Anything else?" }
input = { kind = "text", max = 100 }
save = "comment"
next = "done"

[[state]]
id = "done"
final = true
"#,
    );
    s.ok(&["check"]);
    assert!(s.ask("f", "feedback").contains("1. very good"));
    assert!(s.ask("f", "so-so").contains("Anything else"));
    assert!(
        s.ask("f", "More benches please")
            .contains("Thanks for rating us so-so!")
    );
    let csv = s.ok(&["export", "form", "feedback"]).stdout;
    assert!(csv.starts_with("ref,created_at,user,rating,comment\n000001,"), "{csv}");
}

#[test]
fn invalid_dialog_files_are_reported_with_file_and_line() {
    let s = Sandbox::new();
    s.write(
        "dialogs/bot.toml",
        &std::fs::read_to_string(repo("dialogs/bot.toml")).unwrap(),
    );
    s.write(
        "dialogs/broken.toml",
        r#"[dialog]
id = "broken"
triggers = ["broken"]
start = "first"
action = "launch_rocket"
"#,
    );
    s.write(
        "dialogs/bad.toml",
        r#"[dialog]
id = "bad"
triggers = ["bad"]
start = "first"
action = "save_form"
form = "bad"

[texts]
saved = { zh = "好{nope}", en = "ok" }

[[state]]
id = "first"
prompt = { zh = "选：", en = "Pick: {choices}" }
input = { kind = "choice", source = "planets" }
save = "x"
next = "nowhere"

[[state]]
id = "lonely"
prompt = { en = "Nobody comes here {who}" }
input = { kind = "telepathy" }
save = "y"
next = [{ if = "z = 1", goto = "first" }, { goto = "done" }]

[[state]]
id = "done"
final = true
"#,
    );
    let r = s.run(&["check"]);
    assert_eq!(r.code, 1);
    let e = &r.stderr;
    for expect in [
        "broken.toml:1: unknown action `launch_rocket` (parkbot has: register, save_form, cancel_registration, announce)",
        "bad.toml:11: state `first`: unknown data source `planets`",
        "bad.toml:11: state `first`: `next` names unknown state `nowhere`",
        "bad.toml:18: state `lonely`: unknown input kind `telepathy`",
        "bad.toml:18: state `lonely`: condition `z = 1` uses `z`, which no state saves",
        "bad.toml:18: state `lonely`: prompt: missing the `zh` translation",
        "bad.toml:18: state `lonely`: prompt: unknown placeholder {who}",
    ] {
        assert!(e.contains(expect), "expected {expect:?} in:\n{e}");
    }
    // Fix those; what is left are the graph and text problems.
    let fixed = std::fs::read_to_string(s.path("dialogs/bad.toml"))
        .unwrap()
        .replace("planets", "fields")
        .replace("\"nowhere\"", "\"done\"")
        .replace("telepathy", "text")
        .replace("z = 1", "x = 1")
        .replace(
            "{ en = \"Nobody comes here {who}\" }",
            "{ zh = \"没人\", en = \"Nobody\" }",
        )
        .replace("zh = \"选：\"", "zh = \"选：{choices}\"");
    s.write("dialogs/bad.toml", &fixed);
    std::fs::remove_file(s.path("dialogs/broken.toml")).unwrap();
    let e = s.run(&["check"]).stderr;
    assert!(
        e.contains("bad.toml:18: state `lonely` cannot be reached from the start state"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:9: text `saved`: unknown placeholder {nope}"),
        "{e}"
    );
    assert!(e.contains("needs the text `none`"), "{e}");
    // The bot refuses to start on invalid dialogs, naming the problem.
    let r = s.run(&["ask", "hello"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot be reached"), "{}", r.stderr);
}

#[test]
fn killing_the_process_between_steps_loses_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let s = Sandbox::new();
    // A chat process answers two steps, then is killed (SIGKILL).
    let mut chat = s
        .cmd(&["chat", "--user", "k"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    let mut out = BufReader::new(chat.stdout.take().unwrap());
    let mut read_reply = || {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || line == "\n" {
                return reply;
            }
            reply.push_str(&line);
        }
    };
    writeln!(stdin, "报名").unwrap();
    assert!(read_reply().contains("请选择"));
    writeln!(stdin, "2").unwrap();
    assert!(read_reply().contains("姓名"));
    chat.kill().unwrap();
    chat.wait().unwrap();
    // A new process continues exactly there.
    assert!(s.ask("k", "张三").contains("单位"));
    let code = code_in(&s.say("k", &["首钢", "13812345678", "是"]));
    assert!(s.ok(&["export", "registrations"]).stdout.contains(&code));
}

#[test]
fn phone_numbers_are_masked_in_logs() {
    let s = Sandbox::new();
    s.say("m", &SIGNUP_ZH[..SIGNUP_ZH.len() - 1]);
    let out = s
        .cmd(&["ask", "--user", "m", "是"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("registered") && log.contains("138****5678"), "{log}");
    assert!(!log.contains("13812345678"), "a phone number in clear:\n{log}");
    let out = s
        .cmd(&["ask", "--user", "m", "我的报名"])
        .env("RUST_LOG", "trace")
        .env("PARKBOT_LOG__FORMAT", "json")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("13812345678"), "{log}");
    assert!(
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs:\n{log}"
    );
}
