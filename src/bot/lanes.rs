//! One lane per identity: its messages are handled one at a time, in the
//! order they took a ticket. Tickets are numbered per identity; the lane
//! serves them in number order. A ticket dropped before its turn (the
//! caller gave up) is skipped; a lane with nothing outstanding is removed,
//! so memory follows the number of identities with messages in flight.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::message::Identity;

#[derive(Default)]
pub(super) struct Lanes {
    map: Mutex<HashMap<Identity, Lane>>,
}

struct Lane {
    /// The number the next ticket gets.
    next: u64,
    /// The ticket whose turn it is.
    serving: u64,
    /// Tickets given up before their turn.
    abandoned: BTreeSet<u64>,
    /// Made when a ticket first has to wait (most lanes never hold two).
    notify: Option<Arc<Notify>>,
}

/// A place in an identity's lane; dropping it lets the next one go.
pub(super) struct Ticket {
    lanes: Arc<Lanes>,
    identity: Identity,
    number: u64,
    /// Its turn had come when it was taken (the lane was idle).
    at_once: bool,
}

impl Lanes {
    /// Takes the next place in `identity`'s lane (synchronously, so the
    /// order of calls is the order of service).
    pub(super) fn ticket(self: &Arc<Self>, identity: &Identity) -> Ticket {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let lane = map.entry(identity.clone()).or_insert_with(|| Lane {
            next: 0,
            serving: 0,
            abandoned: BTreeSet::new(),
            notify: None,
        });
        let number = lane.next;
        lane.next += 1;
        Ticket {
            lanes: self.clone(),
            identity: identity.clone(),
            number,
            at_once: lane.serving == number,
        }
    }

    /// Whether it is `t`'s turn; else the lane's notifier to wait on.
    fn check(&self, t: &Ticket) -> Result<(), Arc<Notify>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&t.identity) {
            Some(lane) if lane.serving != t.number => Err(lane.notify.get_or_insert_with(Default::default).clone()),
            _ => Ok(()),
        }
    }

    /// Identities with messages in flight (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl Ticket {
    /// Waits until it is this ticket's turn.
    pub(super) async fn turn(&self) {
        if self.at_once {
            return;
        }
        loop {
            let notify = match self.lanes.check(self) {
                Ok(()) => return,
                Err(n) => n,
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The turn may have come between the check and `enable`.
            if self.lanes.check(self).is_ok() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = self.lanes.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lane) = map.get_mut(&self.identity) else {
            return;
        };
        if lane.serving == self.number {
            lane.serving += 1;
            while lane.abandoned.remove(&lane.serving) {
                lane.serving += 1;
            }
            if let Some(n) = &lane.notify {
                n.notify_waiters();
            }
        } else {
            lane.abandoned.insert(self.number);
        }
        if lane.serving == lane.next {
            map.remove(&self.identity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(n: &str) -> Identity {
        Identity::console(n)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tickets_are_served_in_the_order_taken() {
        let lanes = Arc::new(Lanes::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<Ticket> = (0..20).map(|_| lanes.ticket(&id("a"))).collect();
        // Spawned in reverse: the lane still serves them in ticket order.
        let mut tasks = Vec::new();
        for (i, t) in tickets.into_iter().enumerate().rev() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                t.turn().await;
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(t);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(lanes.len(), 0, "an idle lane is removed");
    }

    #[tokio::test]
    async fn a_ticket_given_up_is_skipped() {
        let lanes = Arc::new(Lanes::default());
        let first = lanes.ticket(&id("a"));
        let second = lanes.ticket(&id("a"));
        let third = lanes.ticket(&id("a"));
        drop(second); // its caller went away before its turn
        first.turn().await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), third.turn())
            .await
            .expect("the third is served");
        drop(third);
        assert_eq!(lanes.len(), 0);
    }

    #[tokio::test]
    async fn identities_do_not_wait_for_each_other() {
        let lanes = Arc::new(Lanes::default());
        let _busy = lanes.ticket(&id("a"));
        let other = lanes.ticket(&id("b"));
        tokio::time::timeout(Duration::from_secs(1), other.turn())
            .await
            .expect("b does not wait for a");
    }
}
