//! Answer latency and import time over a synthetic bilingual knowledge base
//! of 10,000 entries (20 fields, 7,000 enterprises, 1,000 events, 1,980
//! FAQs). Run: `cargo bench --bench answers`. Figures: docs/PERFORMANCE.md.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use parkbot::bot::{Bot, Identity, Inbound, Phrasebook};
use parkbot::knowledge::{Knowledge, parse_str, validate_references};
use parkbot::search::{Index, Query};
use parkbot::store::Store;

fn parse(text: &str) -> Knowledge {
    let parsed = parse_str("synthetic.toml", text, false).expect("synthetic knowledge parses");
    validate_references(vec![parsed], &HashSet::new()).expect("synthetic knowledge is valid")
}

/// Questions of every kind, in both languages.
const QUESTIONS: &[&str] = &[
    "星辰光影科技是做什么的",
    "tell me about starnova 12",
    "有哪些云端视效领域的企业",
    "Any upcoming events?",
    "量子大会在哪里开",
    "How do I flux the terra?",
    "明天天气怎么样",
    "what is the bitcoin price",
];

fn benches(c: &mut Criterion) {
    let text = parkbot::synthetic::knowledge_10k();
    let knowledge = parse(&text);
    assert_eq!(knowledge.len(), 10_000);

    let mut g = c.benchmark_group("import_10k");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("parse_validate_commit", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let k = parse(&text);
                let store = Store::open(&dir.path().join("b.redb")).unwrap();
                store.import(&k, true).unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("index_build", |b| b.iter(|| Index::build(&knowledge)));
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("a.redb")).unwrap());
    store.import(&knowledge, true).unwrap();
    let phrases = Phrasebook::parse("bot.toml", parkbot::assets::BOT_TOML).unwrap();
    let dialogs = parkbot::app::load_dialogs(std::path::Path::new("(built-in)")).unwrap();
    let bot = Bot::new(
        store,
        phrases,
        dialogs,
        Default::default(),
        parkbot::bot::system_clock(),
    )
    .unwrap();
    let index = Index::build(&knowledge);

    let mut g = c.benchmark_group("answer_10k");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("search_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            index.search(&Query::new(QUESTIONS[i % QUESTIONS.len()]))
        })
    });
    g.bench_function("bot_handle", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let msg = Inbound {
                identity: Identity::console("bench"),
                text: QUESTIONS[i % QUESTIONS.len()].to_string(),
            };
            bot.handle(&msg).unwrap()
        })
    });
    for (name, q) in [
        ("zh_enterprise", QUESTIONS[0]),
        ("en_enterprise", QUESTIONS[1]),
        ("zh_field_list", QUESTIONS[2]),
    ] {
        g.bench_function(format!("bot_handle_{name}"), |b| {
            let msg = Inbound {
                identity: Identity::console("bench-one"),
                text: q.to_string(),
            };
            b.iter(|| bot.handle(&msg).unwrap())
        });
    }
    g.finish();
}

criterion_group!(answers, benches);
criterion_main!(answers);
