//! The core's guarantees, pinned beside the code: arrival order per
//! identity, identities independent, retries applied once, errors said,
//! typed input only, one-pass templating, paged choices.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::knowledge::{parse_str, validate_references};
use crate::store::RegistrationStatus;

/// A knowledge file with `n` events open for sign-up (ids `e1`…, titles
/// that share nothing with their ids).
fn events(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[event]]\nid = \"e{i}\"\ntitle = {{ zh = \"沙龙第{i}场\", en = \"Salon number {i}\" }}\n\
                 starts_at = \"2027-01-{:02}T14:00:00+08:00\"\ncapacity = 5\n\n",
                i.min(28)
            )
        })
        .collect()
}

fn open_store(path: &std::path::Path, knowledge: &str) -> Arc<Store> {
    let store = Store::open(path).unwrap();
    let k = validate_references(
        vec![parse_str("t.toml", knowledge, false).unwrap()],
        &Default::default(),
    )
    .unwrap();
    let opts = crate::store::ImportOptions {
        replace: true,
        force: true,
        ..Default::default()
    };
    store.import(&k, &opts).unwrap();
    Arc::new(store)
}

/// A store over `knowledge`, its brain and the shipped wording, for tests
/// of answers and rendering at the pinned time (2026-11-28 12:00 +08:00).
struct Answering {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    brain: Brain,
    phrases: crate::phrasebook::Phrasebook,
}

impl Answering {
    fn new(knowledge: &str) -> Answering {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("a.redb"), knowledge);
        Answering {
            brain: Brain::new(store.knowledge().unwrap()),
            phrases: crate::app::load_phrasebook(&crate::config::DialogsConfig::builtin()).unwrap(),
            store,
            _dir: dir,
        }
    }

    fn ctx(&self, lang: Lang) -> Ctx<'_> {
        Ctx {
            brain: &self.brain,
            phrases: &self.phrases,
            store: &self.store,
            now: time::macros::datetime!(2026-11-28 12:00 +08:00),
            lang,
        }
    }
}

fn bot_over(store: Arc<Store>) -> Arc<Bot> {
    Arc::new(bot_with(store, Settings::default()))
}

/// A bot with the built-in dialogs and wording, `settings`, and the clock
/// at 2026-11-28 12:00 in the park's time.
fn bot_with(store: Arc<Store>, settings: Settings) -> Bot {
    let builtin = &crate::config::DialogsConfig::builtin();
    let phrases = crate::app::load_phrasebook(builtin).unwrap();
    let dialogs = crate::app::load_dialogs(builtin).unwrap();
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    Bot::new(store, phrases, dialogs, settings, Arc::new(move || now)).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    bot: Arc<Bot>,
}

fn fixture(n_events: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    let bot = bot_over(open_store(&path, &events(n_events)));
    Fixture { _dir: dir, bot }
}

fn text(who: &str, t: &str) -> Inbound {
    Inbound::text(Identity::console(who), t)
}

fn with_id(who: &str, t: &str, id: &str) -> Inbound {
    Inbound {
        message_id: Some(id.into()),
        ..text(who, t)
    }
}

async fn say(bot: &Arc<Bot>, who: &str, t: &str) -> String {
    let replies = bot.handle(text(who, t)).await;
    replies.iter().map(Reply::numbered).collect::<Vec<_>>().join("\n")
}

const SIGN_UP: [&str; 6] = ["sign up", "1", "Jane Doe", "Acme", "13812345678", "yes"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_is_served_in_arrival_order_and_none_waits_for_another() {
    let f = fixture(1);
    // 50 identities × 20 messages: a whole sign-up, then questions. The
    // futures are made (the messages arrive) in order, identities
    // interleaved, then all run at once.
    let mut script = SIGN_UP.to_vec();
    script.extend(std::iter::repeat_n("hello", 14));
    let mut futures = Vec::new();
    for (step, message) in script.iter().enumerate() {
        for who in 0..50 {
            let fut = f.bot.handle(text(&format!("p{who}"), message));
            futures.push((who, step, tokio::spawn(fut)));
        }
    }
    let mut replies = vec![vec![String::new(); script.len()]; 50];
    for (who, step, task) in futures {
        replies[who][step] = task
            .await
            .unwrap()
            .iter()
            .map(Reply::numbered)
            .collect::<Vec<_>>()
            .join("\n");
    }
    for (who, r) in replies.iter().enumerate() {
        assert!(r[0].contains("Which event"), "p{who}: {}", r[0]);
        assert!(r[2].contains("organization"), "p{who}: {}", r[2]);
        assert!(r[4].starts_with("Please confirm"), "p{who}: {}", r[4]);
        assert!(
            r[5].starts_with("You are registered") || r[5].contains("waiting list"),
            "p{who}: {}",
            r[5]
        );
        assert!(r[6..].iter().all(|x| x.starts_with("Hello")), "p{who}");
    }
    let regs = f.bot.store().registrations(Some("e1")).unwrap();
    assert_eq!(regs.len(), 50);
    assert_eq!(
        regs.iter()
            .filter(|r| r.status == RegistrationStatus::Confirmed)
            .count(),
        5
    );
    assert_eq!(f.bot.lanes.len(), 0, "no lane left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_identity_does_not_delay_another() {
    let f = fixture(1);
    *f.bot.slow.lock().unwrap() = Some((Identity::console("slow"), Duration::from_secs(3)));
    let slow = tokio::spawn(f.bot.handle(text("slow", "hello")));
    let fast = tokio::time::timeout(Duration::from_secs(60), f.bot.handle(text("fast", "hello")))
        .await
        .expect("the fast identity is answered");
    assert!(fast[0].text.starts_with("Hello"));
    assert!(!slow.is_finished(), "answered while the slow one was still busy");
    assert!(slow.await.unwrap()[0].text.starts_with("Hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_gets_the_first_replies_and_is_applied_once() {
    let f = fixture(1);
    for (i, t) in SIGN_UP[..5].iter().enumerate() {
        f.bot.handle(with_id("r", t, &format!("m{i}"))).await;
    }
    let first = f.bot.handle(with_id("r", "yes", "m5")).await;
    assert!(first[0].text.starts_with("You are registered"), "{first:?}");
    let again = f.bot.handle(with_id("r", "yes", "m5")).await;
    assert_eq!(again, first, "the same replies");
    // An earlier step retried late changes nothing either.
    let step = f.bot.handle(with_id("r", "Jane Doe", "m2")).await;
    assert!(step[0].text.contains("organization"), "{step:?}");
    assert_eq!(f.bot.store().registrations(Some("e1")).unwrap().len(), 1);
    assert!(f.bot.store().session("console:r").unwrap().unwrap().dialog.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_restart_is_recognised_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    let window = Settings::default().retry_window_secs;
    let first = {
        let bot = bot_over(open_store(&path, &events(1)));
        let since = (bot.clock)().unix_timestamp() - window;
        assert!(!bot.store_may_know(since), "an empty record: memory knows every id");
        for (i, t) in SIGN_UP[..5].iter().enumerate() {
            bot.handle(with_id("r", t, &format!("m{i}"))).await;
        }
        bot.handle(with_id("r", "yes", "m5")).await
    };
    let bot = bot_over(Arc::new(Store::open(&path).unwrap()));
    let since = (bot.clock)().unix_timestamp() - window;
    assert!(
        bot.store_may_know(since),
        "ids handled before the restart are in the store"
    );
    assert!(
        !bot.store_may_know(since + window + 1),
        "none of them newer than the start"
    );
    let again = bot.handle(with_id("r", "yes", "m5")).await;
    assert_eq!(again, first);
    assert_eq!(bot.store().registrations(Some("e1")).unwrap().len(), 1);
}

/// Memory holds few ids (room for 2 here); the store keeps those of
/// messages that changed something, and is read only while one of them is
/// young enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_forgotten_for_room_is_still_recognised_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("b.redb"), &events(1));
    let settings = Settings {
        retry_capacity: 2,
        ..Settings::default()
    };
    let bot = Arc::new(bot_with(store, settings));
    let since = (bot.clock)().unix_timestamp() - Settings::default().retry_window_secs;
    for i in 0..5 {
        bot.handle(with_id("q", "When is Salon number 1?", &format!("q{i}")))
            .await;
    }
    assert!(
        !bot.store_may_know(since),
        "questions change nothing: memory alone answers for them"
    );
    let first = bot.handle(with_id("s", SIGN_UP[0], "s0")).await;
    assert!(bot.store_may_know(since), "a dialog step is kept in the store");
    for i in 5..10 {
        bot.handle(with_id("q", "When is Salon number 1?", &format!("q{i}")))
            .await;
    }
    assert_eq!(bot.retries.lock().unwrap().len(), 2);
    let again = bot.handle(with_id("s", SIGN_UP[0], "s0")).await;
    assert_eq!(again, first, "the step is not taken twice");
    assert_eq!(
        bot.stats.retries.load(Ordering::Relaxed),
        1,
        "recognised, from the store"
    );
    assert!(bot.store().session("console:s").unwrap().unwrap().dialog.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_during_the_first_handling_waits_for_it() {
    let f = fixture(1);
    for t in &SIGN_UP[..5] {
        say(&f.bot, "w", t).await;
    }
    *f.bot.slow.lock().unwrap() = Some((Identity::console("w"), Duration::from_millis(300)));
    let a = tokio::spawn(f.bot.handle(with_id("w", "yes", "dup")));
    let b = tokio::spawn(f.bot.handle(with_id("w", "yes", "dup")));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a, b);
    assert!(a[0].text.starts_with("You are registered"), "{a:?}");
    assert_eq!(f.bot.store().registrations(Some("e1")).unwrap().len(), 1);
}

#[tokio::test]
async fn typed_text_is_never_a_payload_or_an_option_value() {
    let f = fixture(3);
    say(&f.bot, "t", "sign up").await;
    let r = say(&f.bot, "t", "=e2").await;
    assert!(r.contains("Please reply with a number"), "{r}");
    // The trigger word starts the sign-up, but "e2" chooses nothing.
    let r = say(&f.bot, "u", "signup:e2").await;
    assert!(r.starts_with("Which event"), "{r}");
    // A link and a button carry values.
    let r = f
        .bot
        .handle(Inbound {
            lang: None,
            identity: Identity::console("v"),
            message_id: None,
            input: Input::Start {
                payload: Some("signup:e2".into()),
            },
        })
        .await;
    assert!(
        r[0].text.contains("Salon number 2") || r[0].text.contains("沙龙第2场"),
        "{r:?}"
    );
    say(&f.bot, "w", "sign up").await;
    let r = f
        .bot
        .handle(Inbound {
            lang: None,
            identity: Identity::console("w"),
            message_id: None,
            input: Input::Choice("e3".into()),
        })
        .await;
    assert!(r[0].text.contains("full name"), "{r:?}");
    let ds = f.bot.store().session("console:w").unwrap().unwrap().dialog.unwrap();
    assert_eq!(ds.values["event"], "e3");
}

#[tokio::test]
async fn choices_are_structured_and_paged() {
    let f = fixture(20);
    let r = f.bot.handle(text("p", "sign up")).await;
    let choices = &r[0].choices;
    assert_eq!(choices.len(), CHOICE_PAGE_WITH_MORE);
    assert_eq!(choices[0].value, "e1");
    assert!(choices[0].label.starts_with("Salon number 1"));
    assert_eq!(choices[9].value, crate::dialog::MORE_VALUE);
    assert!(
        !r[0].text.contains("Salon number"),
        "the text does not list the choices"
    );
    let r = f.bot.handle(text("p", "more")).await;
    assert_eq!(r[0].choices[0].value, "e10");
    let r = say(&f.bot, "p", "2").await;
    assert!(r.contains("full name"), "{r}");
    let ds = f.bot.store().session("console:p").unwrap().unwrap().dialog.unwrap();
    assert_eq!(ds.values["event"], "e11", "a number refers to the page shown");
}

const CHOICE_PAGE_WITH_MORE: usize = crate::dialog::CHOICE_PAGE + 1;

#[tokio::test]
async fn values_from_people_are_never_expanded() {
    let f = fixture(1);
    for t in ["sign up", "1", "{phone}", "{code} Ltd"] {
        say(&f.bot, "h", t).await;
    }
    let confirm = say(&f.bot, "h", "13812345678").await;
    assert!(confirm.contains("Name: {phone}"), "{confirm}");
    assert!(confirm.contains("Organization: {code} Ltd"), "{confirm}");
    let done = say(&f.bot, "h", "yes").await;
    assert!(done.starts_with("You are registered"), "{done}");
    let reg = &f.bot.store().registrations(Some("e1")).unwrap()[0];
    assert_eq!(
        (reg.name.as_str(), reg.organization.as_str()),
        ("{phone}", "{code} Ltd")
    );
}

#[tokio::test]
async fn long_messages_are_refused_politely() {
    let f = fixture(1);
    let r = say(&f.bot, "l", &"x".repeat(1001)).await;
    assert!(r.contains("too long"), "{r}");
    let r = say(&f.bot, "l", &"长".repeat(1001)).await;
    assert!(r.contains("太长"), "{r}");
}

#[tokio::test]
async fn menu_clicks_unsubscribe_and_stale_buttons() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("m.redb"), &events(2));
    let mut settings = Settings::default();
    settings.menu.insert("EVENTS".into(), "最近有什么活动".into());
    let bot = Arc::new(bot_with(store, settings));
    let who = Identity::console("m");
    let msg = |input| Inbound {
        lang: None,
        identity: who.clone(),
        message_id: None,
        input,
    };
    let r = bot.handle(msg(Input::Click("EVENTS".into()))).await;
    assert!(r[0].text.contains("沙龙第1场"), "{r:?}");
    assert!(bot.handle(msg(Input::Unsubscribe)).await.is_empty());
    let r = bot.handle(msg(Input::Choice("e1".into()))).await;
    assert!(r[0].text.contains("失效"), "{r:?}");
    let r = bot.handle(msg(Input::Subscribe { scene: None })).await;
    assert!(r[0].text.starts_with("您好"), "{r:?}");
}

#[tokio::test]
async fn a_failing_store_is_said_and_the_dialog_stays_where_it_was() {
    let f = fixture(1);
    for t in &SIGN_UP[..5] {
        say(&f.bot, "s", t).await;
    }
    let before = f.bot.store().session("console:s").unwrap();
    f.bot.store().inject_faults(false, true);
    let r = say(&f.bot, "s", "yes").await;
    assert!(r.contains("temporarily unavailable"), "{r}");
    f.bot.store().inject_faults(false, false);
    assert_eq!(f.bot.store().session("console:s").unwrap(), before, "nothing changed");
    assert!(f.bot.store().registrations(None).unwrap().is_empty());
    // The next try continues where the person was.
    let r = say(&f.bot, "s", "yes").await;
    assert!(r.starts_with("You are registered"), "{r}");

    f.bot.store().inject_faults(true, false);
    let r = say(&f.bot, "s", "我的报名").await;
    assert!(r.contains("暂时不可用"), "said in the message's language: {r}");
    let r = say(&f.bot, "s", "When is Salon number 1?").await;
    assert!(r.contains("temporarily unavailable"), "never a plausible answer: {r}");
}

#[test]
fn a_seat_count_that_cannot_be_read_is_an_error_not_free_seats() {
    let a = Answering::new(&events(1));
    let (ctx, store) = (a.ctx(Lang::En), &a.store);
    assert!(render::event(&ctx, 0).unwrap().contains("Seats: 5 of 5 left"));
    store.inject_faults(true, false);
    assert!(render::event(&ctx, 0).is_err());
}

#[tokio::test]
async fn subscribers_are_recorded_and_fast_senders_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("s.redb"), &events(1));
    let settings = Settings {
        messages_per_minute: 3,
        ..Settings::default()
    };
    let bot = Arc::new(bot_with(store, settings));
    let wechat = |id: &str| Identity::new(Channel::Wechat, id).unwrap();
    let follow = Inbound {
        lang: None,
        identity: wechat("o1"),
        message_id: None,
        input: Input::Subscribe {
            scene: Some("signup:e1".into()),
        },
    };
    let r = bot.handle(follow).await;
    assert!(r[0].text.contains("沙龙第1场"), "a scene starts the sign-up: {r:?}");
    bot.handle(Inbound::text(wechat("o2"), "hello")).await;
    assert_eq!(
        bot.store().subscribers(Some("wechat")).unwrap(),
        ["wechat:o1", "wechat:o2"]
    );
    let gone = Inbound {
        lang: None,
        identity: wechat("o2"),
        message_id: None,
        input: Input::Unsubscribe,
    };
    assert!(bot.handle(gone).await.is_empty(), "nothing is sent on unsubscribe");
    assert_eq!(bot.store().subscribers(None).unwrap(), ["wechat:o1"]);

    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(bot.handle(Inbound::text(wechat("o3"), "hello")).await);
    }
    assert!(answers[..3].iter().all(|r| r[0].text.starts_with("Hello")));
    assert!(answers[3][0].text.contains("too fast"), "{:?}", answers[3]);
    assert!(answers[4].is_empty() && answers[5].is_empty(), "then silence");
    assert_eq!(bot.stats().limited.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_does_not_let_the_next_message_overtake() {
    let f = fixture(1);
    f.bot.slow_down(Identity::console("gone"), Duration::from_millis(400));
    let first = f.bot.handle(text("gone", "sign up"));
    // The caller waits a little, then gives up (a closed connection).
    let _ = tokio::time::timeout(Duration::from_millis(50), first).await;
    let r = say(&f.bot, "gone", "1").await;
    assert!(r.contains("full name"), "the sign-up had started before: {r}");
}

#[tokio::test]
async fn serving_keeps_lists_and_a_language_switch_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("l.redb"), &events(20));
    let mut bot = bot_with(store, Settings::default());
    bot.serving(&crate::config::Config::default_with_env(Vec::new()).unwrap());
    let bot = Arc::new(bot);
    let r = say(&bot, "m", "Any upcoming events?").await;
    assert!(r.contains("Salon number 1") && r.contains("more"), "{r}");
    let stored = bot.store().session("console:m").unwrap().unwrap();
    assert!(stored.more.is_none(), "the list's rest is not written while serving");
    let r = say(&bot, "m", "more").await;
    assert!(r.contains("Salon number 6"), "but \"more\" still works: {r}");
    // A language switch alone is not written either, but is used.
    say(&bot, "m", "你好").await;
    assert_eq!(bot.store().session("console:m").unwrap().unwrap().lang, Some(Lang::En));
    let r = bot
        .handle(Inbound {
            lang: None,
            identity: Identity::console("m"),
            message_id: None,
            input: Input::Start { payload: None },
        })
        .await;
    assert!(r[0].text.starts_with("您好"), "{r:?}");
}

#[tokio::test]
async fn the_platforms_language_starts_a_conversation_until_words_say_otherwise() {
    let f = fixture(1);
    let msg = |who: &str, input: Input, lang: Option<Lang>| Inbound {
        lang,
        identity: Identity::new(Channel::Telegram, who).unwrap(),
        message_id: None,
        input,
    };
    // A start with no words of its own: the platform's language.
    let r = f
        .bot
        .handle(msg("1", Input::Start { payload: None }, Some(Lang::En)))
        .await;
    assert!(r[0].text.starts_with("Hello"), "{r:?}");
    let r = f.bot.handle(msg("2", Input::Start { payload: None }, None)).await;
    assert!(r[0].text.starts_with("您好"), "Chinese by default: {r:?}");
    // Words win over the hint; a number alone keeps the conversation's.
    let r = f.bot.handle(msg("1", Input::Text("活动".into()), Some(Lang::En))).await;
    assert!(r[0].text.contains("沙龙第1场"), "{r:?}");
    let r = f
        .bot
        .handle(msg("3", Input::Text("12345".into()), Some(Lang::En)))
        .await;
    assert!(r[0].text.contains("Sorry") || r[0].text.contains("Hello"), "{r:?}");
}

#[tokio::test]
async fn lang_offers_both_languages_and_a_choice_or_a_name_switches() {
    let f = fixture(1);
    let who = Identity::new(Channel::Telegram, "5").unwrap();
    let msg = |input: Input| Inbound {
        lang: None,
        identity: who.clone(),
        message_id: None,
        input,
    };
    let r = f.bot.handle(msg(Input::Text("/lang".into()))).await;
    let values: Vec<&str> = r[0].choices.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["+lang:zh", "+lang:en"], "{r:?}");
    assert_eq!(r[0].choices[0].label, "中文");
    let r = f.bot.handle(msg(Input::Choice("+lang:en".into()))).await;
    assert!(r[0].text.contains("English"), "{r:?}");
    // Messages without words of their own now speak English.
    let r = f.bot.handle(msg(Input::Start { payload: None })).await;
    assert!(r[0].text.starts_with("Hello"), "{r:?}");
    let r = f.bot.handle(msg(Input::Text("/lang 中文".into()))).await;
    assert!(r[0].text.contains("中文"), "{r:?}");
    let r = f.bot.handle(msg(Input::Start { payload: None })).await;
    assert!(r[0].text.starts_with("您好"), "{r:?}");
    let r = f.bot.handle(msg(Input::Text("/lang en".into()))).await;
    assert!(r[0].text.starts_with("OK"), "{r:?}");
    // A language the bot does not speak is a stale button, not a switch.
    let r = f.bot.handle(msg(Input::Choice("+lang:fr".into()))).await;
    assert!(r[0].text.contains("no longer active"), "{r:?}");
}

#[tokio::test]
async fn a_blocked_person_is_no_subscriber_until_they_start_again() {
    let f = fixture(1);
    let who = Identity::new(Channel::Telegram, "6").unwrap();
    f.bot.handle(Inbound::text(who.clone(), "hi")).await;
    f.bot.record_blocked(&who).await.unwrap();
    let s = f.bot.store().subscriber(who.as_str()).unwrap().unwrap();
    assert!(s.blocked && !s.subscribed, "{s:?}");
    let back = Inbound {
        input: Input::Start { payload: None },
        ..Inbound::text(who.clone(), "")
    };
    f.bot.handle(back).await;
    let s = f.bot.store().subscriber(who.as_str()).unwrap().unwrap();
    assert!(!s.blocked && s.subscribed, "{s:?}");
}

#[tokio::test]
async fn a_yes_no_question_offers_both_as_choices_and_takes_a_press_or_the_number() {
    let f = fixture(1);
    let who = Identity::console("yn");
    let press = |v: &str| Inbound {
        input: Input::Choice(v.into()),
        ..Inbound::text(who.clone(), "")
    };
    let mut last = Vec::new();
    for t in &SIGN_UP[..5] {
        last = f.bot.handle(Inbound::text(who.clone(), *t)).await;
    }
    let values: Vec<&str> = last[0].choices.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["yes", "no"], "{last:?}");
    assert_eq!(last[0].choices[0].label, "Yes");
    // A value that is not on offer is a stale button; the question stays.
    let r = f.bot.handle(press("maybe")).await;
    assert!(r[0].text.contains("no longer active"), "{r:?}");
    // "2" is the second line: no, back to the name.
    let r = f.bot.handle(Inbound::text(who.clone(), "2")).await;
    assert!(r[0].text.contains("name"), "{r:?}");
    for t in ["Jane Doe", "Acme", "13812345678"] {
        f.bot.handle(Inbound::text(who.clone(), t)).await;
    }
    let r = f.bot.handle(press("yes")).await;
    assert!(r[0].text.starts_with("You are registered"), "{r:?}");
    assert_eq!(f.bot.store().registrations(None).unwrap().len(), 1);
}

fn staff_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("s.redb"), &events(2));
    let settings = Settings {
        staff: ["console:admin".to_string()].into(),
        ..Settings::default()
    };
    let bot = Arc::new(bot_with(store, settings));
    Fixture { _dir: dir, bot }
}

#[tokio::test]
async fn staff_commands_are_refused_to_others_and_leave_nothing_behind() {
    let f = staff_fixture();
    for t in ["/announce", "/stats", "/registrations e1", "发布通知"] {
        let r = say(&f.bot, "visitor", t).await;
        assert!(r.contains("park staff") || r.contains("工作人员"), "{t}: {r}");
    }
    let s = f.bot.store().session("console:visitor").unwrap().unwrap();
    assert!(s.dialog.is_none(), "no dialog state: {s:?}");
    assert!(f.bot.store().announcements(10).unwrap().is_empty());
    assert!(f.bot.store().outbox().unwrap().is_empty(), "nothing queued");
}

#[tokio::test]
async fn staff_announce_with_a_preview_and_see_figures() {
    let f = staff_fixture();
    for who in ["a", "b", "admin", "c"] {
        say(&f.bot, who, "hello").await;
    }
    say(&f.bot, "c", "unsubscribe").await;
    // Register b for e1, so that the event is an audience.
    for t in ["sign up", "1", "Bo Li", "Acme", "13812345678", "yes"] {
        say(&f.bot, "b", t).await;
    }
    let r = f
        .bot
        .handle(Inbound::text(Identity::console("admin"), "/announce"))
        .await;
    let labels: Vec<&str> = r[0].choices.iter().map(|c| c.label.as_str()).collect();
    // Subscribers: a, b and admin itself (c opted out).
    assert!(labels[0].contains("All subscribers (3)"), "{labels:?}");
    assert!(labels.iter().any(|l| l.contains("Salon number 1 (1)")), "{labels:?}");
    say(&f.bot, "admin", "1").await;
    let preview = say(&f.bot, "admin", "The north gate is closed on Monday.").await;
    assert!(preview.contains("The north gate is closed on Monday.\n"), "{preview}");
    assert!(preview.contains("To: All subscribers (3)"), "{preview}");
    let done = say(&f.bot, "admin", "yes").await;
    assert!(done.contains("#1") && done.contains("3 recipients"), "{done}");
    let a = f.bot.store().announcement(1).unwrap().unwrap();
    assert_eq!((a.total, a.created_by.as_str()), (3, "console:admin"));
    let to: Vec<String> = f.bot.store().deliveries(1).unwrap().into_iter().map(|d| d.to).collect();
    assert!(!to.contains(&"console:c".to_string()), "opted out: {to:?}");

    let stats = say(&f.bot, "admin", "/stats").await;
    assert!(stats.contains("Subscribers · console: 3"), "{stats}");
    assert!(stats.contains("Salon number 1: 1 confirmed, 0 waiting"), "{stats}");
    assert!(stats.contains("Outbox · console: 3 pending, 0 sent"), "{stats}");
    let regs = say(&f.bot, "admin", "/registrations e1").await;
    assert!(regs.contains("1 confirmed") && regs.contains("Bo Li (Acme)"), "{regs}");
    assert!(!regs.contains("13812345678"), "no phone numbers in chat: {regs}");
    assert!(say(&f.bot, "admin", "/registrations nope").await.contains("no event"));

    // The terminal has no push: the message waits until the person is back.
    let waiting = f.bot.waiting(&Identity::console("a")).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].text, "The north gate is closed on Monday.");
    assert!(f.bot.waiting(&Identity::console("a")).unwrap().is_empty(), "once");
}

#[tokio::test]
async fn people_opt_out_and_back_in_and_are_told_in_their_language() {
    let f = fixture(1);
    let r = say(&f.bot, "o", "退订").await;
    assert!(r.starts_with("已退订"), "{r}");
    let s = f.bot.store().subscriber("console:o").unwrap().unwrap();
    assert!(!s.subscribed);
    let r = say(&f.bot, "o", "subscribe").await;
    assert!(r.starts_with("Subscribed"), "{r}");
    assert!(f.bot.store().subscriber("console:o").unwrap().unwrap().subscribed);
}

#[tokio::test]
async fn reminders_carry_the_events_time_place_and_the_code_in_both_languages() {
    let f = fixture(1);
    for t in ["sign up", "1", "Bo Li", "Acme", "13812345678", "yes"] {
        say(&f.bot, "r", t).await;
    }
    // e1 starts 2027-01-01 14:00 +08:00.
    let starts = time::macros::datetime!(2027-01-01 14:00 +08:00).unix_timestamp();
    assert_eq!(f.bot.queue_reminders(starts - 3600, 86_400).unwrap(), 1);
    let m = &f.bot.store().outbox().unwrap()[0];
    assert!(
        m.text
            .get(Lang::En)
            .starts_with("Reminder: Salon number 1\nTime: Fri 1 Jan 2027, 14:00"),
        "{:?}",
        m.text
    );
    assert!(m.text.get(Lang::Zh).contains("2027年1月1日"), "{:?}", m.text);
}

#[test]
fn a_question_asked_again_is_understood_once_but_rendered_from_live_state() {
    let a = Answering::new(&events(1));
    let (mut ctx, store, brain) = (a.ctx(Lang::En), &a.store, &a.brain);
    let ask = |ctx: &Ctx| answer::answer(ctx, &crate::search::Query::new("When is Salon number 1?"));
    let first = ask(&ctx).unwrap();
    assert!(first.text.contains("Seats: 5 of 5 left"), "{}", first.text);
    assert_eq!(ask(&ctx).unwrap().text, first.text);
    assert_eq!(brain.understood.len(), 1, "the same words are read and ranked once");
    // What the answer shows of the store is read each time: a failing
    // store is said, never hidden behind a kept answer.
    store.inject_faults(true, false);
    assert!(ask(&ctx).is_err());
    store.inject_faults(false, false);
    // Another day reads the question again (dates in questions move).
    ctx.now = time::macros::datetime!(2026-11-29 12:00 +08:00);
    assert_eq!(ask(&ctx).unwrap().text, first.text);
    assert_eq!(brain.understood.len(), 1, "replaced, not added");
}

#[test]
fn list_lines_and_times_are_kept_per_language() {
    let a = Answering::new(&events(7));
    let ctx = |lang| a.ctx(lang);
    let items: Vec<crate::search::Item> = (0..7).map(crate::search::Item::Event).collect();
    let (en, more) = render::list(&ctx(Lang::En), "Events:", &items, 0, 0, None);
    let (zh, _) = render::list(&ctx(Lang::Zh), "活动：", &items, 0, 0, None);
    assert!(en.starts_with("Events:\n1. Salon number 1 — "), "{en}");
    assert!(zh.starts_with("活动：\n1. 沙龙第1场 — "), "{zh}");
    assert!(!zh.contains("Salon") && !en.contains("沙龙"), "{en}\n{zh}");
    assert_eq!(more.map(|m| m.rest.len()), Some(2));
    // Shown again, the same; an event's own reply starts at the same time.
    assert_eq!(render::list(&ctx(Lang::En), "Events:", &items, 0, 0, None).0, en);
    let first_line = en.lines().nth(1).unwrap();
    let when = first_line.split(" — ").nth(1).unwrap();
    assert!(render::event(&ctx(Lang::En), 0).unwrap().contains(when), "{when}");
}

/// One item of each kind: a field, an enterprise in it, an FAQ, and
/// `events_n` events.
fn one_of_each(events_n: usize) -> String {
    format!(
        "{}[[field]]\nid = \"vfx\"\nname = {{ zh = \"视频特效\", en = \"video effects\" }}\n\n\
         [[enterprise]]\nid = \"a\"\nname = {{ zh = \"光梭\", en = \"Lightshuttle\" }}\nfields = [\"vfx\"]\n\n\
         [[faq]]\nid = \"parking\"\nquestions = [\"停车收费吗\", \"Is parking free?\"]\n\
         answer = {{ zh = \"停车两小时内免费。\", en = \"Parking is free for two hours.\" }}\n",
        events(events_n)
    )
}

#[test]
fn a_list_s_keys_name_their_items_and_unknown_keys_none() {
    use crate::search::Item;
    let a = Answering::new(&one_of_each(3));
    let ctx = a.ctx(Lang::En);
    for item in [
        Item::Field(0),
        Item::Enterprise(0),
        Item::Faq(0),
        Item::Event(0),
        Item::Event(2),
    ] {
        let key = render::key(&ctx, item);
        assert_eq!(render::resolve(&ctx, &key), Some(item), "{key}");
    }
    let stored = |s: &str| s.parse::<crate::store::ItemRef>().unwrap();
    assert_eq!(render::resolve(&ctx, &stored("event:e3")), Some(Item::Event(2)));
    // Gone, or another kind's id: each kind's ids are its own.
    for gone in ["event:e9", "enterprise:vfx", "field:a", "event:parking", "faq:a"] {
        assert_eq!(render::resolve(&ctx, &stored(gone)), None, "{gone}");
    }
}

#[test]
fn answers_without_live_state_are_kept_per_language_and_event_answers_are_not() {
    let knowledge = one_of_each(1);
    let a = Answering::new(&knowledge);
    let (ctx, store) = (|lang| a.ctx(lang), &a.store);
    let ask = |lang, text: &str| answer::answer(&ctx(lang), &crate::search::Query::new(text));
    let en = ask(Lang::En, "Is parking free?").unwrap();
    assert_eq!(en.text, "Parking is free for two hours.");
    let zh = ask(Lang::Zh, "Is parking free?").unwrap();
    assert_eq!(zh.text, "停车两小时内免费。", "each language its own");
    // Kept: asked again while the store cannot be read, the same answer
    // (it never read the store).
    store.inject_faults(true, false);
    assert_eq!(ask(Lang::En, "Is parking free?").unwrap().text, en.text);
    assert_eq!(ask(Lang::Zh, "Is parking free?").unwrap().text, zh.text);
    let list = ask(Lang::En, "video effects companies").unwrap();
    assert!(list.text.contains("Lightshuttle"), "{}", list.text);
    assert_eq!(ask(Lang::En, "video effects companies").unwrap().text, list.text);
    // Events show seats: read each time, so a failing store is said.
    assert!(ask(Lang::En, "When is Salon number 1?").is_err());
    store.inject_faults(false, false);
    assert!(
        ask(Lang::En, "When is Salon number 1?")
            .unwrap()
            .text
            .contains("Seats: 5 of 5 left")
    );
    // What is over changes within a day: made again each time.
    let at = |now| {
        let c = Ctx { now, ..ctx(Lang::En) };
        answer::answer(&c, &crate::search::Query::new("upcoming events"))
            .unwrap()
            .text
    };
    assert!(at(time::macros::datetime!(2027-01-01 12:00 +08:00)).contains("Salon number 1"));
    let later = at(time::macros::datetime!(2027-01-01 16:00 +08:00));
    assert!(!later.contains("Salon number 1"), "{later}");
}

/// A health park in small: an eldercare field (养老 in its alias, found
/// through the elderly-care concept when a question says 老人), and a
/// drug maker whose tags say 阿尔茨海默 (a concept no field mentions).
const HEALTH: &str = r#"
[[field]]
id = "drugs"
name = { zh = "创新药", en = "innovative drugs" }
aliases = ["新药研发"]
[[field]]
id = "eldercare"
name = { zh = "康复与养老科技", en = "eldercare tech" }
aliases = ["智慧养老"]
[[enterprise]]
id = "pinecrest"
name = { zh = "青松药业", en = "PineCrest Pharma" }
fields = ["drugs"]
summary = { zh = "研发治疗阿尔茨海默病的小分子药", en = "Develops small-molecule drugs for Alzheimer's disease" }
tags = ["阿尔茨海默", "alzheimer's"]
[[enterprise]]
id = "silver"
name = { zh = "银龄守护", en = "SilverGuard" }
fields = ["eldercare"]
summary = { zh = "给独居老人装跌倒报警器", en = "Fall alarms for elderly people living alone" }
tags = ["跌倒报警", "fall detection"]
[[enterprise]]
id = "carenest"
name = { zh = "安护智能", en = "CareNest" }
fields = ["eldercare"]
summary = { zh = "生产电动轮椅和护理床，适合卧床的老人", en = "Power wheelchairs and nursing beds for bedridden elderly people" }
tags = ["电动轮椅", "护理床"]
"#;

#[test]
fn a_company_fitting_a_finer_industry_than_the_field_guessed_is_answered() {
    let a = Answering::new(HEALTH);
    let ask = |text: &str| {
        answer::answer(&a.ctx(Lang::Zh), &crate::search::Query::new(text))
            .unwrap()
            .text
    };
    // 老人 finds the eldercare field; 老年痴呆 (no field's word) the drug maker.
    let r = ask("老人记性越来越差，有没有公司在研究治老年痴呆的药");
    assert!(r.starts_with("青松药业"), "{r}");
    // Without the finer detail, the field found through its words is listed.
    let r = ask("有没有公司做老人用的产品");
    assert!(r.contains("银龄守护") && r.contains("安护智能"), "{r}");
}

/// A trade park in small: a trademark firm, a tax agent and a briefing
/// on the same tax, and an event to sign up for.
const TRADE: &str = r#"
[[field]]
id = "services"
name = { zh = "企业服务", en = "business services" }
[[enterprise]]
id = "farsail"
name = { zh = "远帆品牌", en = "FarSail Branding" }
fields = ["services"]
summary = { zh = "帮企业在海外注册商标", en = "Registers trademarks abroad for exporters" }
tags = ["商标注册", "trademark"]
[[enterprise]]
id = "taxlink"
name = { zh = "票税通", en = "TaxLink" }
fields = ["services"]
summary = { zh = "代办出口退税", en = "Handles export tax rebates for exporters" }
tags = ["出口退税", "export tax rebate"]
[[event]]
id = "briefing"
title = { zh = "出口退税新政宣讲会", en = "Export Tax Rebate Policy Briefing" }
starts_at = "2026-12-10T14:00:00+08:00"
capacity = 100
summary = { zh = "讲解出口退税新规定", en = "Explains the new export tax rebate rules" }
tags = ["退税", "宣讲", "tax rebate", "briefing"]
[[faq]]
id = "parking"
questions = ["停车怎么收费？", "How much is parking?"]
answer = { zh = "每小时4元", en = "4 yuan an hour" }
[[faq]]
id = "canteen"
questions = ["食堂在哪里？", "Where is the canteen?"]
answer = { zh = "食堂在一楼", en = "The canteen is on the ground floor" }
[[faq]]
id = "clinic"
questions = ["有医务室吗？", "Is there a clinic?"]
answer = { zh = "医务室在三楼", en = "The clinic is on the second floor" }
[[faq]]
id = "shuttle"
questions = ["有班车吗？", "Is there a shuttle bus?"]
answer = { zh = "班车往返高铁站", en = "A shuttle runs to the railway station" }
"#;

#[tokio::test]
async fn a_sign_up_word_about_something_else_is_a_question_not_a_sign_up() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot_over(open_store(&dir.path().join("t.redb"), TRADE));
    // "register" about a trademark: the firm, not "which event?".
    let r = say(&bot, "a", "register our trademark overseas").await;
    assert!(r.starts_with("FarSail Branding"), "{r}");
    // A sign-up with the event named, or alone, still starts the dialog.
    let r = say(&bot, "b", "register for the tax rebate briefing").await;
    assert!(!r.starts_with("FarSail") && !r.starts_with("TaxLink"), "{r}");
    assert!(r.contains("name"), "{r}");
    let r = say(&bot, "c", "register").await;
    assert!(r.contains("Export Tax Rebate Policy Briefing"), "{r}");
}

#[tokio::test]
async fn asked_who_does_something_a_company_comes_before_the_event_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot_over(open_store(&dir.path().join("t.redb"), TRADE));
    let r = say(&bot, "a", "出口退税有人能代办吗").await;
    assert!(r.starts_with("票税通"), "{r}");
    let r = say(&bot, "d", "有做出口退税的吗").await;
    assert!(r.starts_with("票税通"), "{r}");
    let r = say(&bot, "b", "who can handle our export tax rebate").await;
    assert!(r.starts_with("TaxLink"), "{r}");
    // Without asking who, the event about it stays first.
    let r = say(&bot, "c", "出口退税宣讲会在哪").await;
    assert!(r.starts_with("出口退税新政宣讲会"), "{r}");
}

/// A game and film park in small: the field's words are the setting of
/// questions about one company.
const STUDIOS: &str = r#"
[[field]]
id = "games"
name = { zh = "游戏", en = "games" }
[[enterprise]]
id = "mocap"
name = { zh = "捕光工作室", en = "CaptureLight" }
fields = ["film"]
summary = { zh = "把演员的动作和表情录进数字角色", en = "Records actors' movements and expressions onto digital characters" }
[[field]]
id = "film"
name = { zh = "影视", en = "film" }
[[enterprise]]
id = "starship"
name = { zh = "星舰游戏", en = "Starship Games" }
fields = ["games"]
summary = { zh = "开发太空策略游戏", en = "Develops space strategy games" }
[[enterprise]]
id = "cybercat"
name = { zh = "赛博猫", en = "CyberCat" }
fields = ["games"]
summary = { zh = "做手机解谜游戏", en = "Makes puzzle games for phones" }
"#;

#[test]
fn a_field_word_without_list_words_is_the_setting_of_a_described_item() {
    let a = Answering::new(STUDIOS);
    let ask = |lang, text: &str| answer::answer(&a.ctx(lang), &crate::search::Query::new(text)).unwrap();
    // 游戏 names a field, but nothing asks for a list: the company the rest
    // describes in detail answers.
    let r = ask(Lang::Zh, "想把演员的动作录下来做成游戏角色");
    assert!(r.text.starts_with("捕光工作室"), "{}", r.text);
    // With list words, or with little besides the field, the field's list.
    let r = ask(Lang::Zh, "做游戏的公司有哪些");
    assert!(r.text.contains("星舰游戏") && r.text.contains("赛博猫"), "{}", r.text);
    let r = ask(Lang::En, "games companies");
    assert!(
        r.text.contains("Starship Games") && r.text.contains("CyberCat"),
        "{}",
        r.text
    );
}

#[test]
fn what_the_asker_says_of_themselves_is_not_what_they_ask_for() {
    let a = Answering::new(
        r#"
[[field]]
id = "devices"
name = { zh = "医疗器械", en = "medical devices" }
[[enterprise]]
id = "heartpath"
name = { zh = "心途医疗", en = "HeartPath" }
fields = ["devices"]
summary = { zh = "研发可降解心脏支架", en = "Develops dissolving heart stents" }
[[faq]]
id = "move-in"
questions = ["怎么入驻园区？", "How do we move into the park?"]
answer = { zh = "入驻请先在线提交申请表和营业执照。", en = "To move in, send the application form and business licence online." }
tags = ["入驻", "move in"]
"#,
    );
    let ask = |lang, q: &str| {
        answer::answer(&a.ctx(lang), &crate::search::Query::new(q))
            .unwrap()
            .text
    };
    // Who asks (a devices team) is not a request for the devices list.
    for q in [
        "我们是做医疗器械的初创团队，想搬过来入驻",
        "我们是做医疗器械的初创团队，想把公司搬过来入驻",
    ] {
        let zh = ask(Lang::Zh, q);
        assert!(zh.contains("营业执照"), "{q}: {zh}");
    }
    // A question right after it is still asked ("有哪些" ends it).
    let list = ask(Lang::Zh, "我是做外贸的有哪些医疗器械公司");
    assert!(list.contains("心途医疗"), "{list}");
    // English words after it stop at Chinese ones (no overlapping bigrams).
    let mixed = ask(Lang::Zh, "we're a 医疗器械团队，想入驻");
    assert!(mixed.contains("营业执照"), "{mixed}");
    let en = ask(Lang::En, "we're a small medical devices team and want to move in");
    assert!(en.contains("business licence"), "{en}");
    // Asked for, the same words list the field.
    let list = ask(Lang::Zh, "医疗器械的公司有哪些");
    assert!(list.contains("心途医疗") && !list.contains("营业执照"), "{list}");
}

#[test]
fn a_question_about_another_city_gets_a_company_only_by_its_name() {
    let a = Answering::new(
        r#"
[[field]]
id = "hearing"
name = { zh = "听力健康", en = "hearing health" }
[[enterprise]]
id = "echoear"
name = { zh = "声语听力", en = "EchoEar" }
fields = ["hearing"]
summary = { zh = "研发助听器", en = "Develops hearing aids" }
tags = ["助听器", "hearing aids"]
"#,
    );
    let ask = |q: &str| answer::answer(&a.ctx(Lang::Zh), &crate::search::Query::new(q)).unwrap();
    assert!(ask("想给我爸配个助听器").text.contains("声语听力"));
    let away = ask("想给我爸在杭州配个助听器，杭州哪家店靠谱");
    assert_eq!(away.route, answer::Route::Fallback, "{}", away.text);
    assert!(ask("声语听力在杭州有门店吗").text.contains("声语听力"));
}
