//! Synthetic data for the load tool, the benchmarks and the tests:
//! deterministic, so that every run measures the same thing. Not part of
//! the shipped library: the load tool, `benches/` and `tests/` include this
//! file with `#[path]`.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use parkbot::bot::{Bot, Clock};
use parkbot::knowledge::{Knowledge, parse_str, validate_references};
use parkbot::store::Store;

/// Questions of every kind, in both languages, about [`knowledge_10k`]:
/// two enterprises, a field list, upcoming events, an event, an FAQ and
/// two out-of-scope questions.
pub const QUESTIONS: &[&str] = &[
    "星辰光影科技是做什么的",
    "tell me about starnova 12",
    "有哪些云端视效领域的企业",
    "Any upcoming events?",
    "量子大会在哪里开",
    "How do I flux the terra?",
    "明天天气怎么样",
    "what is the bitcoin price",
];

/// Parses and checks knowledge text (TOML).
pub fn knowledge(text: &str) -> anyhow::Result<Knowledge> {
    let parsed = parse_str("synthetic.toml", text, false)?;
    validate_references(vec![parsed], &Default::default()).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A bot with the built-in phrasebook and dialogs over a store at `path`
/// that holds exactly `knowledge` (TOML text).
pub fn bot(path: &Path, knowledge_text: &str, clock: Clock) -> anyhow::Result<Bot> {
    let store = Arc::new(Store::open(path)?);
    let opts = parkbot::store::ImportOptions {
        replace: true,
        force: true,
        ..Default::default()
    };
    store.import(&knowledge(knowledge_text)?, &opts)?;
    let builtin = &parkbot::config::DialogsConfig::builtin();
    let phrases = parkbot::app::load_phrasebook(builtin).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let dialogs = parkbot::app::load_dialogs(builtin).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    Ok(Bot::new(store, phrases, dialogs, Default::default(), clock)?)
}

const ZH: &[char] = &[
    '星', '辰', '光', '影', '智', '能', '科', '幻', '数', '字', '虚', '拟', '机', '甲', '宇', '宙', '云', '端', '视',
    '效', '声', '像', '量', '子', '航', '天', '梦', '工', '场', '创', '意', '未', '来', '芯', '驱', '灵', '境', '镜',
];
const EN: &[&str] = &[
    "star", "nova", "quant", "vex", "lumi", "orbi", "sky", "pix", "mecha", "holo", "zen", "astra", "flux", "terra",
    "cyber", "echo", "vision", "forge", "pulse", "ray",
];

/// A deterministic pseudo-random generator (no dependency, same data every run).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn pick(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
    pub fn zh(&mut self, n: usize) -> String {
        (0..n).map(|_| ZH[self.pick() % ZH.len()]).collect()
    }
    pub fn en(&mut self, n: usize) -> String {
        (0..n).map(|_| EN[self.pick() % EN.len()]).collect::<Vec<_>>().join("")
    }
}

/// A synthetic knowledge file (TOML) of 10,000 entries: 20 fields, 7,000
/// enterprises, 1,000 events, 1,980 FAQs, with Chinese and English texts.
pub fn knowledge_10k() -> String {
    let mut r = Lcg(42);
    let mut s = String::new();
    for f in 0..20 {
        s += &format!(
            "[[field]]\nid = \"f{f}\"\nname = {{ zh = \"{}领域\", en = \"{} field\" }}\naliases = [\"{}\", \"{}\"]\n\n",
            r.zh(2),
            r.en(2),
            r.zh(3),
            r.en(1)
        );
    }
    for e in 0..7000 {
        s += &format!(
            "[[enterprise]]\nid = \"e{e}\"\nname = {{ zh = \"{}{}\", en = \"{} {e}\" }}\nfields = [\"f{}\"]\n\
             summary = {{ zh = \"{}，{}，{}。\", en = \"{} {} makes {} for {}.\" }}\ntags = [\"{}\", \"{}\"]\n\n",
            r.zh(4),
            e,
            r.en(2),
            r.pick() % 20,
            r.zh(8),
            r.zh(6),
            r.zh(7),
            r.en(1),
            r.en(2),
            r.en(1),
            r.en(2),
            r.zh(3),
            r.en(1)
        );
    }
    for v in 0..1000 {
        s += &format!(
            "[[event]]\nid = \"v{v}\"\ntitle = {{ zh = \"{}大会{v}\", en = \"{} Summit {v}\" }}\n\
             starts_at = \"2027-0{}-1{}T09:30:00+08:00\"\nvenue = {{ zh = \"{}厅\", en = \"{} Hall\" }}\ncapacity = {}\n\
             summary = {{ zh = \"{}。\", en = \"{} and {}.\" }}\n\n",
            r.zh(4),
            r.en(2),
            1 + r.pick() % 9,
            r.pick() % 10,
            r.zh(2),
            r.en(1),
            50 + r.pick() % 500,
            r.zh(10),
            r.en(2),
            r.en(2)
        );
    }
    for q in 0..1980 {
        s += &format!(
            "[[faq]]\nid = \"q{q}\"\nquestions = [\"{}怎么{}？\", \"How do I {} the {}?\"]\n\
             answer = {{ zh = \"{}，{}。\", en = \"{} {} {}.\" }}\ntags = [\"{}\", \"{}\"]\n\n",
            r.zh(3),
            r.zh(2),
            r.en(1),
            r.en(1),
            r.zh(9),
            r.zh(8),
            r.en(2),
            r.en(2),
            r.en(1),
            r.zh(2),
            r.en(1)
        );
    }
    s
}
