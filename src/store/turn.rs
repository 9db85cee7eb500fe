//! TEMPORARY shim of the turn API (replaced by the store work on merge).

use std::collections::BTreeMap;

use super::{CancelOutcome, NewRegistration, RegisterOutcome, Result, Session, Store};
use crate::knowledge::Text;
use crate::message::Reply;

pub enum Effect {
    Register(NewRegistration),
    SaveForm {
        form: String,
        values: BTreeMap<String, String>,
    },
    CancelRegistration {
        code: String,
        notice: Text,
    },
}

pub enum EffectOutcome {
    Register(RegisterOutcome),
    SaveForm(u64),
    CancelRegistration(CancelOutcome),
}

pub struct TurnWrite {
    pub identity: String,
    pub now: i64,
    pub session: Option<Option<Session>>,
    pub durable: bool,
    pub effect: Option<Effect>,
    pub message_id: Option<String>,
    pub forget_before: i64,
}

impl Store {
    pub fn commit_turn<F>(&self, turn: TurnWrite, mut replies: F) -> Result<(Option<EffectOutcome>, Vec<Reply>)>
    where
        F: FnMut(Option<&EffectOutcome>) -> Vec<Reply> + Send + 'static,
    {
        let session = turn.session.clone().flatten();
        let outcome = match turn.effect {
            Some(Effect::Register(new)) => Some(EffectOutcome::Register(self.register(new, session)?)),
            Some(Effect::SaveForm { form, values }) => Some(EffectOutcome::SaveForm(self.save_form(
                &form,
                &turn.identity,
                values,
                turn.now,
                session,
            )?)),
            Some(Effect::CancelRegistration { code, notice }) => Some(EffectOutcome::CancelRegistration(
                self.cancel_registration(&turn.identity, &code, turn.now, notice, session)?,
            )),
            None => {
                match (&turn.session, turn.durable) {
                    (Some(s), true) => self.put_session(&turn.identity, s.as_ref())?,
                    (Some(Some(s)), false) => self.put_session_lazily(&turn.identity, s)?,
                    (Some(None), false) => self.put_session(&turn.identity, None)?,
                    (None, _) => {}
                }
                None
            }
        };
        let r = replies(outcome.as_ref());
        Ok((outcome, r))
    }

    pub fn handled(&self, _identity: &str, _message_id: &str, _not_before: i64) -> Result<Option<Vec<Reply>>> {
        Ok(None)
    }
}
