//! Answer quality on the repository's own question sets — over the demo
//! knowledge (`tests/qa/park_eval.json`), over a second, fictional park
//! (`tests/qa/lakeside.toml`, `lakeside_eval.json`) and over the
//! development parks of the concept work (`tests/qa/skyport.toml`, mostly
//! paraphrases, `tests/qa/chaohu.toml`, written the way people talk,
//! `tests/qa/weishui.toml`, an agri-food park in the same style, and
//! `tests/qa/beibu.toml`, a cross-border port park,
//! `tests/qa/keqiao.toml`, a textile and fashion park,
//! `tests/qa/jinshan.toml`, a biomedicine and health park, and
//! `tests/qa/xingyao.toml`, a science-fiction town), and out-of-scope
//! probes for four of them (`tests/qa/*_oos.json`) —
//! scored exactly as `../shared/eval/qa_eval.py` scores the
//! shared set: top-1, by substring after NFKC and case folding. The bar is
//! 90 % for the first two; the development parks' are a little under what the work reached (see
//! docs/PERFORMANCE.md). The held-out parks (`tests/qa/qiantang.*`,
//! `tests/qa/jinji.*`, `tests/qa/changzhou.*`) are deliberately not run
//! here: they are scored by hand, never tuned on.

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::util::{Sandbox, repo};

#[derive(Deserialize)]
struct Question {
    q: String,
    kind: String,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    expect_all: Vec<Vec<String>>,
    #[serde(default = "default_recall")]
    min_recall: f64,
}

fn default_recall() -> f64 {
    0.8
}

fn norm(s: &str) -> String {
    s.nfkc().flat_map(char::to_lowercase).collect()
}

/// (item key, its names) for every enterprise and event.
fn item_names(k: &toml::Table) -> Vec<(String, Vec<String>)> {
    let mut items = Vec::new();
    for (kind, key) in [("enterprise", "name"), ("event", "title")] {
        for entry in k.get(kind).and_then(|v| v.as_array()).into_iter().flatten() {
            let names: Vec<String> = match entry.get(key) {
                Some(toml::Value::String(s)) => vec![norm(s)],
                Some(toml::Value::Table(t)) => t.values().filter_map(|v| v.as_str()).map(norm).collect(),
                _ => vec![],
            };
            items.push((format!("{kind}:{}", entry["id"].as_str().unwrap()), names));
        }
    }
    items
}

fn occurrences(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    hay.match_indices(needle).map(|(i, m)| (i, i + m.len())).collect()
}

/// The scorer's `first_mention`: does an own string come first?
fn own_first(reply: &str, own: &[String], others: &[String]) -> Option<bool> {
    let mut spans: Vec<(usize, usize, bool)> = own
        .iter()
        .flat_map(|s| occurrences(reply, s).into_iter().map(|(a, b)| (a, b, true)))
        .collect();
    if spans.is_empty() {
        return None;
    }
    spans.extend(
        others
            .iter()
            .flat_map(|s| occurrences(reply, s).into_iter().map(|(a, b)| (a, b, false))),
    );
    let outer: Vec<_> = spans
        .iter()
        .filter(|x| {
            !spans
                .iter()
                .any(|y| y.0 <= x.0 && x.1 <= y.1 && (y.1 - y.0) > (x.1 - x.0))
        })
        .copied()
        .collect();
    if !outer.iter().any(|x| x.2) {
        return Some(false);
    }
    outer.iter().min_by_key(|x| (x.0, !x.2)).map(|x| x.2)
}

fn score(q: &Question, reply: &str, items: &[(String, Vec<String>)]) -> Result<(), String> {
    let r = norm(reply);
    match q.kind.as_str() {
        "one" => {
            let expect: Vec<String> = q.expect.iter().map(|e| norm(e)).collect();
            let own_keys: Vec<&String> = items
                .iter()
                .filter(|(_, n)| n.iter().any(|x| expect.contains(x)))
                .map(|(k, _)| k)
                .collect();
            let mut own = expect.clone();
            for (k, names) in items {
                if own_keys.contains(&k) {
                    own.extend(names.iter().cloned());
                }
            }
            let others: Vec<String> = items
                .iter()
                .filter(|(k, _)| !own_keys.contains(&k))
                .flat_map(|(_, n)| n.iter().cloned())
                .filter(|n| !own.contains(n))
                .collect();
            match own_first(&r, &own, &others) {
                None => Err("expected item not in reply".into()),
                Some(false) => Err("another item first".into()),
                Some(true) => Ok(()),
            }
        }
        "list" => {
            let found = q
                .expect_all
                .iter()
                .filter(|alts| alts.iter().any(|a| r.contains(&norm(a))))
                .count();
            let recall = found as f64 / q.expect_all.len() as f64;
            if recall + 1e-9 >= q.min_recall {
                Ok(())
            } else {
                Err(format!("recall {found}/{}", q.expect_all.len()))
            }
        }
        "none" => match items.iter().flat_map(|(_, n)| n).find(|n| r.contains(n.as_str())) {
            Some(n) => Err(format!("names an item: {n}")),
            None => Ok(()),
        },
        other => Err(format!("unknown kind {other}")),
    }
}

/// Scores `questions` over `knowledge` (both repository paths); returns
/// (passed, total, failures).
fn score_set(knowledge: &str, questions: &str) -> (usize, usize, Vec<String>) {
    score_at_least(knowledge, questions, 40)
}

/// Like [`score_set`], for a set of at least `min` questions.
fn score_at_least(knowledge: &str, questions: &str, min: usize) -> (usize, usize, Vec<String>) {
    let knowledge_path = repo(knowledge);
    let table: toml::Table = std::fs::read_to_string(&knowledge_path).unwrap().parse().unwrap();
    let items = item_names(&table);
    let questions: Vec<Question> = serde_json::from_str(&std::fs::read_to_string(repo(questions)).unwrap()).unwrap();
    assert!(questions.len() >= min);

    let s = Sandbox::new();
    s.ok(&["import", "--replace", knowledge_path.to_str().unwrap()]);
    let mut failures = Vec::new();
    for (n, q) in questions.iter().enumerate() {
        let reply = s.ask(&format!("eval{n}"), &q.q);
        assert!(!reply.trim().is_empty(), "empty reply to {}", q.q);
        if let Err(why) = score(q, &reply, &items) {
            failures.push(format!(
                "#{} [{}] {} -- {why} -- {}",
                n + 1,
                q.kind,
                q.q,
                reply.lines().next().unwrap_or("")
            ));
        }
    }
    let passed = questions.len() - failures.len();
    eprintln!(
        "{knowledge}: qa top-1: {passed}/{} ({:.1}%)",
        questions.len(),
        100.0 * passed as f64 / questions.len() as f64
    );
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    (passed, questions.len(), failures)
}

#[test]
fn own_question_set_scores_at_least_90_percent() {
    let (passed, total, failures) = score_set("data/park.toml", "tests/qa/park_eval.json");
    assert!(passed * 10 >= total * 9, "below 90 %:\n{}", failures.join("\n"));
}

/// A second park (Lakeside BioMed Valley, fictional), written as a stand-in
/// for an unseen knowledge file.
#[test]
fn another_parks_question_set_scores_at_least_90_percent() {
    let (passed, total, failures) = score_set("tests/qa/lakeside.toml", "tests/qa/lakeside_eval.json");
    assert!(passed * 10 >= total * 9, "below 90 %:\n{}", failures.join("\n"));
}

/// The development park of the concept work (Tianfu SkyPort, fictional):
/// 109 questions, 46 of them sharing no content word with their answer.
/// First run 55/109; the bar is below what the work reached, so that a
/// regression shows.
#[test]
fn the_paraphrase_park_scores_at_least_87_percent() {
    let (passed, total, failures) = score_set("tests/qa/skyport.toml", "tests/qa/skyport_eval.json");
    assert!(passed * 100 >= total * 87, "below 87 %:\n{}", failures.join("\n"));
}

/// The second development park (Chaohu Green Energy Valley, fictional): 133
/// questions in everyday wording (typos, mixed languages, two words, long
/// ones, services described by the situation, 14 out of scope, 9 of them
/// sharing a word with a company's name). First run 102/133; the bar is
/// below what the work reached.
#[test]
fn the_everyday_wording_park_scores_at_least_88_percent() {
    let (passed, total, failures) = score_set("tests/qa/chaohu.toml", "tests/qa/chaohu_eval.json");
    assert!(passed * 100 >= total * 88, "below 88 %:\n{}", failures.join("\n"));
}

/// The third development park (Weishui Agri-Food Valley, fictional): 143
/// questions about an industry no other set covers (seeds, smart farming,
/// food processing, cold chain, livestock, food testing), in everyday
/// wording, services described by the situation, 14 out of scope (8 sharing
/// a word with a company's name). First run 117/143; the bar is below what
/// the work reached.
#[test]
fn the_agri_food_park_scores_at_least_88_percent() {
    let (passed, total, failures) = score_set("tests/qa/weishui.toml", "tests/qa/weishui_eval.json");
    assert!(passed * 100 >= total * 88, "below 88 %:\n{}", failures.join("\n"));
}

/// The fourth development park (Beibu Gulf Cross-Border Port, fictional):
/// 147 questions about port logistics and cross-border e-commerce (customs,
/// freight, warehousing, trade finance), in everyday wording, with typos,
/// mixed languages and situations, 12 out of scope (8 sharing a word with a
/// company's name). First run 113/147; the bar is below what the work
/// reached (134/147).
#[test]
fn the_cross_border_port_park_scores_at_least_88_percent() {
    let (passed, total, failures) = score_set("tests/qa/beibu.toml", "tests/qa/beibu_eval.json");
    assert!(passed * 100 >= total * 88, "below 88 %:\n{}", failures.join("\n"));
}

/// The fifth development park (KeQiao Textile & Fashion Valley, fictional):
/// 145 questions about designer brands, fabrics, garment making, shoes and
/// accessories, fashion marketing and textile testing, in everyday wording,
/// with typos, mixed languages and situations, 13 out of scope (10 sharing
/// a word with a company's name). First run 121/145; the bar is below what
/// the work reached (see docs/PERFORMANCE.md, "Sixth round").
#[test]
fn the_textile_and_fashion_park_scores_at_least_88_percent() {
    let (passed, total, failures) = score_set("tests/qa/keqiao.toml", "tests/qa/keqiao_eval.json");
    assert!(passed * 100 >= total * 88, "below 88 %:\n{}", failures.join("\n"));
}

/// Jinshan Bay BioPort: a biomedicine and health park (drugs, devices and
/// diagnostics, CRO/CDMO, medical AI, eldercare, cosmetics and nutrition)
/// with lab services among its FAQs, 172 questions in everyday wording (18
/// out of scope, 14 sharing a word with a name). First run 127/172; the bar
/// is below what the work reached (see docs/PERFORMANCE.md, "Eighth round").
#[test]
fn the_biomedicine_and_health_park_scores_at_least_90_percent() {
    let (passed, total, failures) = score_set("tests/qa/jinshan.toml", "tests/qa/jinshan_eval.json");
    assert!(passed * 100 >= total * 90, "below 90 %:\n{}", failures.join("\n"));
}

/// A development park (Xingyao Sci-Fi Town, fictional): 181
/// questions about sci-fi publishing and IP, film VFX and virtual
/// production, immersive venues, sci-fi hard tech, games and conventions,
/// in everyday wording (85 of the 164 answerable ones share no content word
/// with their answer), with typos, mixed languages, two-word and rambling
/// questions, 17 out of scope (13 sharing a word with a company or event).
/// First run 136/181; the bar is below what the work reached (see
/// docs/PERFORMANCE.md, "Seventh round").
#[test]
fn the_sci_fi_town_scores_at_least_83_percent() {
    let (passed, total, failures) = score_set("tests/qa/xingyao.toml", "tests/qa/xingyao_eval.json");
    assert!(passed * 100 >= total * 83, "below 83 %:\n{}", failures.join("\n"));
}

/// Out-of-scope probes (`tests/qa/*_oos.json`, 12 per park, 6 zh and 6
/// en, written by a helper from the knowledge files only): namesakes, a
/// park's topic word in a consumer's or a general question ("how do mRNA
/// vaccines work"), other cities. Each must get the honest fallback or at
/// least no company or event. First run 31/48; the bar is below what the
/// work reached (34/48, see docs/PERFORMANCE.md, "2026-12-01").
#[test]
fn out_of_scope_probes_mostly_get_no_company_or_event() {
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for park in ["jinshan", "keqiao", "beibu", "weishui"] {
        let (p, t, f) = score_at_least(
            &format!("tests/qa/{park}.toml"),
            &format!("tests/qa/{park}_oos.json"),
            12,
        );
        (passed, total) = (passed + p, total + t);
        failures.extend(f);
    }
    assert!(passed * 100 >= total * 66, "below 66 %:\n{}", failures.join("\n"));
}
