//! How much memory a gateway lets its sessions' large client messages
//! take at once.
//!
//! A client message the followers read whole (SQL, so that nothing padded
//! slips past the checks) is held in the session's buffer until it is all
//! there, and the SQL guard then keeps a token per word of it. One 64 MiB
//! message can cost a gigabyte or more; a principal allowed a thousand
//! sessions could otherwise make the gateway take more memory than the
//! machine has, and the kernel would end it with every session and the
//! audit records not yet written. So a session that needs room for a
//! message over [`LARGE_MESSAGE`] bytes takes a [`Lease`] on the gateway's
//! [`MessageBudget`] first, and reads no more from its client until it
//! has one. Leases are granted in the order they were asked for (a large
//! message is not passed over for ever by smaller ones), and one that
//! needs more than the whole budget is granted once no other is held.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Messages that grow a buffer past this many bytes take a lease; the
/// smaller ones sessions read all the time do not.
pub const LARGE_MESSAGE: usize = 1 << 20;

/// Bytes of memory a session may take per byte of a message it reads
/// whole: the message itself, and the SQL guard's tokens (24 bytes each,
/// one per byte of SQL such as `1,1,1,…` at worst).
pub const WORK_PER_BYTE: usize = 25;

/// What a message of `bytes` read whole may cost.
pub fn cost(bytes: usize) -> usize {
    bytes.saturating_mul(WORK_PER_BYTE)
}

/// How long a session holding a lease for a message of `bytes` may take
/// to send the rest of it: 10 s, and a second per MiB (a client slower
/// than 1 MiB/s). A client that sends part of a large message and stops
/// would otherwise hold its room, and every session queued behind it,
/// for ever.
pub fn read_within(bytes: usize) -> std::time::Duration {
    std::time::Duration::from_secs(10 + (bytes >> 20) as u64)
}

/// A gateway's budget of memory for large client messages.
#[derive(Debug)]
pub struct MessageBudget {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: usize,
    next_ticket: u64,
    /// Sessions waiting, in the order they asked.
    queue: VecDeque<(u64, Waker)>,
}

impl MessageBudget {
    /// A budget of `limit` bytes (at least one large message's cost).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            state: Mutex::new(State::default()),
        })
    }

    /// Bytes leased now.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Sessions waiting for a lease now.
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lease of `bytes`, once there is room and every session that
    /// asked earlier has had its own; `ticket` keeps the caller's place
    /// between polls (hold it in the session, and drop it with the
    /// session: a dropped ticket gives its place up).
    pub fn poll_lease(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        ticket: &mut Option<Ticket>,
        bytes: usize,
    ) -> Poll<Lease> {
        let mut state = self.lock();
        let first = match ticket {
            Some(t) => state.queue.front().is_some_and(|(id, _)| *id == t.id),
            None => state.queue.is_empty(),
        };
        // Alone, a lease larger than the whole budget is granted: it
        // would never fit otherwise.
        if first && (state.held + bytes <= self.limit || state.held == 0) {
            if let Some(mut used) = ticket.take() {
                state.queue.pop_front();
                // Out of the queue already (and its lock is held here).
                used.budget = None;
            }
            state.held += bytes;
            // The next in line may fit too.
            if let Some((_, next)) = state.queue.front() {
                next.wake_by_ref();
            }
            return Poll::Ready(Lease {
                budget: self.clone(),
                bytes,
            });
        }
        match ticket {
            Some(t) => {
                if let Some((_, waker)) = state.queue.iter_mut().find(|(id, _)| *id == t.id) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                let id = state.next_ticket;
                state.next_ticket += 1;
                state.queue.push_back((id, cx.waker().clone()));
                *ticket = Some(Ticket {
                    budget: Some(self.clone()),
                    id,
                });
            }
        }
        Poll::Pending
    }

    fn give_back(&self, bytes: usize) {
        let mut state = self.lock();
        state.held -= bytes;
        if let Some((_, next)) = state.queue.front() {
            next.wake_by_ref();
        }
    }
}

/// A session's place in the queue for a lease.
#[derive(Debug)]
pub struct Ticket {
    /// `None` once the lease is granted.
    budget: Option<Arc<MessageBudget>>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(budget) = self.budget.take() else {
            return;
        };
        let mut state = budget.lock();
        let was_first = state.queue.front().is_some_and(|(id, _)| *id == self.id);
        state.queue.retain(|(id, _)| *id != self.id);
        if was_first && let Some((_, next)) = state.queue.front() {
            next.wake_by_ref();
        }
    }
}

/// Memory a session may take for a large message, given back when
/// dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<MessageBudget>,
    bytes: usize,
}

impl Lease {
    /// Bytes leased.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back all but `bytes` of it.
    pub fn keep(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let back = self.bytes - bytes;
            self.bytes = bytes;
            self.budget.give_back(back);
        }
    }

    /// Takes `other` in (both given back together).
    pub fn absorb(&mut self, mut other: Lease) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn poll(
        budget: &Arc<MessageBudget>,
        w: &Waker,
        t: &mut Option<Ticket>,
        n: usize,
    ) -> Option<Lease> {
        match budget.poll_lease(&mut Context::from_waker(w), t, n) {
            Poll::Ready(l) => Some(l),
            Poll::Pending => None,
        }
    }

    #[test]
    fn leases_within_the_limit_are_granted_and_given_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let a = poll(&budget, &w, &mut None, 60).expect("room");
        assert_eq!(budget.held(), 60);
        let mut t = None;
        assert!(
            poll(&budget, &w, &mut t, 50).is_none(),
            "60 + 50 is over 100"
        );
        assert!(t.is_some());
        assert_eq!(budget.waiting(), 1);
        drop(a);
        assert_eq!(budget.held(), 0);
        let b = poll(&budget, &w, &mut t, 50).expect("room again");
        assert!(t.is_none(), "the ticket is used up");
        assert_eq!((b.bytes(), budget.held(), budget.waiting()), (50, 50, 0));
    }

    #[test]
    fn a_waiter_is_woken_when_room_is_given_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let a = poll(&budget, &w, &mut None, 100).expect("room");
        let (woken, w2) = waker();
        let mut t = None;
        assert!(poll(&budget, &w2, &mut t, 10).is_none());
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        drop(a);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn leases_are_granted_in_the_order_asked() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let held = poll(&budget, &w, &mut None, 60).expect("room");
        let mut big = None;
        assert!(poll(&budget, &w, &mut big, 80).is_none());
        // 40 would fit, but the 80 asked first.
        let mut small = None;
        assert!(poll(&budget, &w, &mut small, 40).is_none());
        assert!(
            poll(&budget, &w, &mut None, 10).is_none(),
            "nor does a newcomer pass"
        );
        drop(held);
        assert!(
            poll(&budget, &w, &mut small, 40).is_none(),
            "still not its turn"
        );
        let big_lease = poll(&budget, &w, &mut big, 80).expect("its turn");
        assert!(
            poll(&budget, &w, &mut small, 40).is_none(),
            "80 + 40 is over 100"
        );
        drop(big_lease);
        assert!(poll(&budget, &w, &mut small, 40).is_some());
    }

    #[test]
    fn a_dropped_ticket_gives_its_place_up() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let held = poll(&budget, &w, &mut None, 100).expect("room");
        let mut first = None;
        assert!(poll(&budget, &w, &mut first, 50).is_none());
        let (woken, w2) = waker();
        let mut second = None;
        assert!(poll(&budget, &w2, &mut second, 50).is_none());
        drop(held);
        drop(first);
        assert!(
            woken.0.load(Ordering::SeqCst) >= 1,
            "the next in line is woken"
        );
        assert!(poll(&budget, &w2, &mut second, 50).is_some());
    }

    #[test]
    fn a_lease_larger_than_the_budget_is_granted_alone() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let small = poll(&budget, &w, &mut None, 10).expect("room");
        let mut t = None;
        assert!(
            poll(&budget, &w, &mut t, 500).is_none(),
            "not beside another"
        );
        drop(small);
        let big = poll(&budget, &w, &mut t, 500).expect("alone");
        assert!(
            poll(&budget, &w, &mut None, 1).is_none(),
            "nothing beside it"
        );
        drop(big);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_lease_kept_in_part_gives_the_rest_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let mut a = poll(&budget, &w, &mut None, 100).expect("room");
        let (woken, w2) = waker();
        let mut t = None;
        assert!(poll(&budget, &w2, &mut t, 60).is_none());
        a.keep(40);
        assert_eq!((a.bytes(), budget.held()), (40, 40));
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the next in line is woken"
        );
        assert!(poll(&budget, &w2, &mut t, 60).is_some());
        a.keep(50);
        assert_eq!(a.bytes(), 40, "keeping more takes nothing");
    }

    #[test]
    fn an_absorbed_lease_is_given_back_with_its_holder() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let mut a = poll(&budget, &w, &mut None, 30).expect("room");
        a.absorb(poll(&budget, &w, &mut None, 20).expect("room"));
        assert_eq!((a.bytes(), budget.held()), (50, 50));
        drop(a);
        assert_eq!(budget.held(), 0);
    }
}
