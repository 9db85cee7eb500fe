//! Hundreds of people signing up at once for the last seats, through the
//! real bot core on a real redb file: never more than `capacity` confirmed,
//! the rest waitlisted in the order their sign-ups were committed.

use std::sync::{Arc, Barrier};

use parkbot::bot::{Bot, Identity, Inbound};
use parkbot::store::RegistrationStatus;

use crate::synthetic;

const EVENT: &str = r#"
[[event]]
id = "tiny"
title = { zh = "小型沙龙", en = "Tiny Salon" }
starts_at = "2027-01-10T14:00:00+08:00"
capacity = 5
"#;

fn bot(dir: &std::path::Path) -> Arc<Bot> {
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    Arc::new(synthetic::bot(&dir.join("c.redb"), EVENT, Arc::new(move || now)).unwrap())
}

/// One message through the bot's async entry point, from a plain thread.
fn say(bot: &Arc<Bot>, who: &str, text: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let replies = rt.block_on(bot.handle(Inbound::text(Identity::console(who), text)));
    replies.iter().map(|r| r.numbered()).collect::<Vec<_>>().join("\n")
}

#[test]
fn concurrent_sign_ups_never_exceed_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot(dir.path());
    // Three seats are taken before the rush.
    for i in 0..3 {
        for m in ["sign up", "1", "Early Bird", "Acme", "13812345678"] {
            say(&bot, &format!("early{i}"), m);
        }
        assert!(say(&bot, &format!("early{i}"), "yes").contains("registered"));
    }
    let people = 300;
    let barrier = Arc::new(Barrier::new(people));
    let threads: Vec<_> = (0..people)
        .map(|i| {
            let bot = bot.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let who = format!("rush{i}");
                for m in ["sign up", "1", "Rush Person", "Crowd Inc", "+8613912345678"] {
                    say(&bot, &who, m);
                }
                barrier.wait(); // everyone confirms at once
                say(&bot, &who, "yes")
            })
        })
        .collect();
    let replies: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let confirmed_replies = replies.iter().filter(|r| r.starts_with("You are registered")).count();
    let waitlisted_replies = replies
        .iter()
        .filter(|r| r.contains("waiting list at position"))
        .count();
    assert_eq!(confirmed_replies, 2, "only the last two seats were free");
    assert_eq!(waitlisted_replies, people - 2);

    let regs = bot.store().registrations(Some("tiny")).unwrap();
    assert_eq!(regs.len(), people + 3);
    let confirmed = regs
        .iter()
        .filter(|r| r.status == RegistrationStatus::Confirmed)
        .count();
    assert_eq!(confirmed, 5, "exactly capacity confirmed");
    // Sign-up order is the commit order: every confirmed one precedes every
    // waitlisted one, and positions told match that order.
    let first_wait = regs
        .iter()
        .position(|r| r.status == RegistrationStatus::Waitlisted)
        .unwrap();
    assert!(
        regs[first_wait..]
            .iter()
            .all(|r| r.status == RegistrationStatus::Waitlisted)
    );
    let mut positions: Vec<usize> = replies
        .iter()
        .filter_map(|r| r.split("position ").nth(1))
        .map(|p| p.split(['.', '\n']).next().unwrap().trim().parse().unwrap())
        .collect();
    positions.sort();
    assert_eq!(
        positions,
        (1..=people - 2).collect::<Vec<_>>(),
        "each position told once"
    );
    let mut seqs: Vec<u64> = regs.iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), regs.len(), "unique sign-up order");
}

#[test]
fn concurrent_messages_of_one_identity_are_handled_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot(dir.path());
    say(&bot, "same", "sign up");
    say(&bot, "same", "1");
    // Ten copies of the same answer at once: they are read one after the
    // other, as name, organization, then (refused) phone numbers; none is
    // lost and no two interleave.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let bot = bot.clone();
            std::thread::spawn(move || say(&bot, "same", "Acme Corp"))
        })
        .collect();
    let replies: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |p: &str| replies.iter().filter(|r| r.starts_with(p)).count();
    assert_eq!(count("Your organization"), 1, "{replies:#?}");
    assert_eq!(count("Your mobile number"), 1, "{replies:#?}");
    assert_eq!(count("That is not a valid mobile number"), 8, "{replies:#?}");
    let d = bot
        .store()
        .session("console:same")
        .unwrap()
        .unwrap()
        .dialog
        .expect("still in the dialog");
    assert_eq!(d.history, vec!["event", "name", "organization"]);
    assert_eq!(d.values["name"], "Acme Corp");
    assert_eq!(d.values["organization"], "Acme Corp");
}
