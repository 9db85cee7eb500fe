//! Answer latency and import time over a synthetic bilingual knowledge base
//! of 10,000 entries (20 fields, 7,000 enterprises, 1,000 events, 1,980
//! FAQs). Run: `cargo bench --bench answers`. Figures: docs/PERFORMANCE.md.

use std::time::Duration;

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use parkbot::bot::{Identity, Inbound};
use parkbot::search::{Index, Query};
use parkbot::store::Store;

#[path = "../src/bin/parkbot-load/synthetic.rs"]
mod synthetic;

fn benches(c: &mut Criterion) {
    let text = synthetic::knowledge_10k();
    let knowledge = synthetic::knowledge(&text).unwrap();
    assert_eq!(knowledge.len(), 10_000);

    let mut g = c.benchmark_group("import_10k");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("parse_validate_commit", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let k = synthetic::knowledge(&text).unwrap();
                let store = Store::open(&dir.path().join("b.redb")).unwrap();
                store
                    .import(
                        &k,
                        &parkbot::store::ImportOptions {
                            replace: true,
                            force: true,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("index_build", |b| b.iter(|| Index::build(&knowledge)));
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let bot = Arc::new(synthetic::bot(&dir.path().join("a.redb"), &text, parkbot::bot::system_clock()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    let index = Index::build(&knowledge);

    let mut g = c.benchmark_group("answer_10k");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("search_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            index.search(&Query::new(synthetic::QUESTIONS[i % synthetic::QUESTIONS.len()]))
        })
    });
    g.bench_function("bot_handle", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let msg = Inbound::text(
                Identity::console("bench"),
                synthetic::QUESTIONS[i % synthetic::QUESTIONS.len()],
            );
            // Each question read and ranked anew, as a first asking is.
            bot.brain().forget_understood();
            rt.block_on(bot.handle(msg))
        })
    });
    for (name, q) in [
        ("zh_enterprise", synthetic::QUESTIONS[0]),
        ("en_enterprise", synthetic::QUESTIONS[1]),
        ("zh_field_list", synthetic::QUESTIONS[2]),
    ] {
        g.bench_function(format!("bot_handle_{name}"), |b| {
            let msg = Inbound::text(Identity::console("bench-one"), q);
            b.iter(|| {
                bot.brain().forget_understood();
                rt.block_on(bot.handle(msg.clone()))
            })
        });
    }
    g.finish();
}

criterion_group!(answers, benches);
criterion_main!(answers);
