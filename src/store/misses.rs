//! Questions the bot could not answer well: each one that got the fallback
//! or an answer below the confidence line, with its language, channel and
//! time — and nothing else about who asked (phone numbers in the text are
//! masked by the caller). Staff read them with `parkbot export misses` to
//! see which FAQ to add. Table `seq_miss`: sequence → Miss; bounded, the
//! oldest pruned past [`MISSES_KEPT`]. Written through the group commit
//! without an fsync of its own: losing the last second of misses in a crash
//! is harmless.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Result, Store, decode, encode};
use crate::knowledge::Lang;

/// sequence → Miss
pub(super) const MISSES: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_miss");

/// The most misses kept; older ones are pruned.
pub const MISSES_KEPT: u64 = 10_000;

/// Why a question counts as missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissKind {
    /// The honest "I don't know".
    Fallback,
    /// An answer was given, but little of the question matched it.
    Weak,
}

impl MissKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MissKind::Fallback => "fallback",
            MissKind::Weak => "weak",
        }
    }
}

/// One missed question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    /// The question as asked, phone numbers masked.
    pub text: String,
    pub lang: Lang,
    /// The channel's name (`web`, `wechat`, `console`…), never the person.
    pub channel: String,
    /// Unix seconds.
    pub at: i64,
    pub kind: MissKind,
}

impl Store {
    /// Records a miss without waiting for it (a non-durable group commit),
    /// pruning the oldest beyond `keep`. A store that cannot take it is an
    /// error for the caller to log; the person's answer does not depend
    /// on it.
    pub fn record_miss(&self, miss: Miss, keep: u64) -> Result<()> {
        let bytes = encode(&miss);
        let keep = keep.max(1);
        // The result is not awaited: a failure is logged by the writer.
        let _pending = self.submit_with(false, move |w| {
            let mut t = w.open_table(MISSES)?;
            let next = t.last()?.map_or(0, |(k, _)| k.value() + 1);
            t.insert(next, bytes.as_slice())?;
            let len = t.len()?;
            if len > keep {
                let cut = next + 1 - keep;
                t.retain_in(..cut, |_, _| false)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Every recorded miss, oldest first.
    pub fn misses(&self) -> Result<Vec<Miss>> {
        self.read(|r| {
            let t = match r.open_table(MISSES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::with_capacity(t.len()? as usize);
            for row in t.iter()? {
                out.push(decode(row?.1.value(), "miss")?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss(n: i64) -> Miss {
        Miss {
            text: format!("question {n}"),
            lang: Lang::En,
            channel: "web".into(),
            at: 1_700_000_000 + n,
            kind: MissKind::Fallback,
        }
    }

    #[test]
    fn misses_are_kept_in_order_and_the_oldest_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let store = Store::open(&path).unwrap();
        assert!(store.misses().unwrap().is_empty());
        for n in 0..7 {
            store.record_miss(miss(n), 5).unwrap();
        }
        drop(store);
        // Non-durable writes are flushed when the store closes.
        let store = Store::open(&path).unwrap();
        let kept = store.misses().unwrap();
        assert_eq!(kept, (2..7).map(miss).collect::<Vec<_>>());
    }
}
