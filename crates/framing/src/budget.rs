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
//! Each principal may hold a quarter of the budget (or one lease of any
//! size while it holds none), and one waiting past its share does not
//! hold up others: a principal keeping its messages from finishing cannot
//! keep large messages from every other one. A session that holds a lease
//! and leaves its message unfinished for longer than [`read_within`] is
//! ended by the relay; once the message is scanned, only its bytes stay
//! leased until they are written.

use std::collections::{HashMap, VecDeque};
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
    /// What one principal's sessions may hold together, unless they hold
    /// nothing: a quarter of the limit, so that one principal keeping its
    /// messages from finishing (a stalled client, a server kept busy)
    /// cannot keep the rest of the budget from every other one.
    share: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: usize,
    /// Bytes held by each holder (a principal) that holds any.
    by_holder: HashMap<Arc<str>, usize>,
    next_ticket: u64,
    /// Sessions waiting, in the order they asked.
    queue: VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    ticket: u64,
    holder: Arc<str>,
    bytes: usize,
    waker: Waker,
}

impl State {
    /// Whether `holder` may take `bytes` more within its share.
    fn within_share(&self, holder: &str, bytes: usize, share: usize) -> bool {
        let held = self.by_holder.get(holder).copied().unwrap_or(0);
        held == 0 || held + bytes <= share
    }

    /// `holder`'s waiters go behind every other principal's: whenever a
    /// principal takes a lease or gives one back, the others have their
    /// turn before its next one (else one principal queueing many
    /// sessions that each hold the whole budget until their deadline
    /// could keep every other principal waiting for all of them).
    fn send_back(&mut self, holder: &str) {
        if self.queue.iter().any(|w| &*w.holder == holder) {
            let (theirs, others): (VecDeque<Waiting>, VecDeque<Waiting>) =
                self.queue.drain(..).partition(|w| &*w.holder == holder);
            self.queue = others;
            self.queue.extend(theirs);
        }
    }

    fn wake_all(&self) {
        for w in &self.queue {
            w.waker.wake_by_ref();
        }
    }
}

/// A principal's hold on a gateway's [`MessageBudget`]: what its
/// sessions' directions lease from.
#[derive(Clone, Debug)]
pub struct Share {
    budget: Arc<MessageBudget>,
    /// The principal's unique id.
    holder: Arc<str>,
}

impl MessageBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            share: limit / 4,
            state: Mutex::new(State::default()),
        })
    }

    /// The share of the principal `principal_id` (a user's or role's
    /// unique id: every session of a role shares one).
    pub fn share_of(self: &Arc<Self>, principal_id: &str) -> Share {
        Share {
            budget: self.clone(),
            holder: principal_id.into(),
        }
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

    /// A lease of `bytes` for `share`'s holder, once there is room, the
    /// holder is within its share, and every session that asked earlier
    /// and is within its own share has had its lease; `ticket` keeps the
    /// caller's place between polls (hold it in the session, and drop it
    /// with the session: a dropped ticket gives its place up). A session
    /// over its principal's share does not hold up those behind it.
    pub fn poll_lease(
        cx: &mut Context<'_>,
        share: &Share,
        ticket: &mut Option<Ticket>,
        bytes: usize,
    ) -> Poll<Lease> {
        let this = &share.budget;
        let holder = &share.holder;
        let mut state = this.lock();
        let mine = ticket.as_ref().map(|t| t.id);
        let ahead = state
            .queue
            .iter()
            .take_while(|w| Some(w.ticket) != mine)
            .any(|w| state.within_share(&w.holder, w.bytes, this.share));
        // Alone, a lease larger than the whole budget is granted: it
        // would never fit otherwise.
        if !ahead
            && state.within_share(holder, bytes, this.share)
            && (state.held + bytes <= this.limit || state.held == 0)
        {
            if let Some(mut used) = ticket.take() {
                state.queue.retain(|w| w.ticket != used.id);
                // Out of the queue already (and its lock is held here).
                used.budget = None;
            }
            state.held += bytes;
            *state.by_holder.entry(holder.clone()).or_default() += bytes;
            state.send_back(holder);
            // Those behind may fit too.
            state.wake_all();
            return Poll::Ready(Lease {
                budget: this.clone(),
                holder: holder.clone(),
                bytes,
            });
        }
        match mine {
            Some(id) => {
                if let Some(w) = state.queue.iter_mut().find(|w| w.ticket == id) {
                    w.waker.clone_from(cx.waker());
                    w.bytes = bytes;
                }
            }
            None => {
                let id = state.next_ticket;
                state.next_ticket += 1;
                state.queue.push_back(Waiting {
                    ticket: id,
                    holder: holder.clone(),
                    bytes,
                    waker: cx.waker().clone(),
                });
                *ticket = Some(Ticket {
                    budget: Some(this.clone()),
                    id,
                });
            }
        }
        Poll::Pending
    }

    fn give_back(&self, holder: &str, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut state = self.lock();
        state.held -= bytes;
        if let Some(held) = state.by_holder.get_mut(holder) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                state.by_holder.remove(holder);
            }
        }
        state.send_back(holder);
        state.wake_all();
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
        state.queue.retain(|w| w.ticket != self.id);
        // Those behind it may go now.
        state.wake_all();
    }
}

/// Memory a session may take for a large message, given back when
/// dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<MessageBudget>,
    holder: Arc<str>,
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
            self.budget.give_back(&self.holder, back);
        }
    }

    /// Takes `other`, the same holder's, in (both given back together).
    pub fn absorb(&mut self, mut other: Lease) {
        debug_assert_eq!(self.holder, other.holder);
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.give_back(&self.holder, self.bytes);
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

    /// A lease of `n` for principal `who`.
    fn poll(
        budget: &Arc<MessageBudget>,
        who: &str,
        w: &Waker,
        t: &mut Option<Ticket>,
        n: usize,
    ) -> Option<Lease> {
        let share = budget.share_of(who);
        match MessageBudget::poll_lease(&mut Context::from_waker(w), &share, t, n) {
            Poll::Ready(l) => Some(l),
            Poll::Pending => None,
        }
    }

    /// A principal of its own for each call.
    fn fresh() -> &'static str {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Box::leak(format!("p{}", NEXT.fetch_add(1, Ordering::SeqCst)).into_boxed_str())
    }

    #[test]
    fn leases_within_the_limit_are_granted_and_given_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let a = poll(&budget, fresh(), &w, &mut None, 60).expect("room");
        assert_eq!(budget.held(), 60);
        let mut t = None;
        assert!(
            poll(&budget, "t", &w, &mut t, 50).is_none(),
            "60 + 50 is over 100"
        );
        assert!(t.is_some());
        assert_eq!(budget.waiting(), 1);
        drop(a);
        assert_eq!(budget.held(), 0);
        let b = poll(&budget, "t", &w, &mut t, 50).expect("room again");
        assert!(t.is_none(), "the ticket is used up");
        assert_eq!((b.bytes(), budget.held(), budget.waiting()), (50, 50, 0));
    }

    #[test]
    fn a_waiter_is_woken_when_room_is_given_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let a = poll(&budget, fresh(), &w, &mut None, 100).expect("room");
        let (woken, w2) = waker();
        let mut t = None;
        assert!(poll(&budget, "t", &w2, &mut t, 10).is_none());
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        drop(a);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn leases_are_granted_in_the_order_asked() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let held = poll(&budget, fresh(), &w, &mut None, 60).expect("room");
        let mut big = None;
        assert!(poll(&budget, "big", &w, &mut big, 80).is_none());
        // 40 would fit, but the 80 asked first.
        let mut small = None;
        assert!(poll(&budget, "small", &w, &mut small, 40).is_none());
        assert!(
            poll(&budget, fresh(), &w, &mut None, 10).is_none(),
            "nor does a newcomer pass"
        );
        drop(held);
        assert!(
            poll(&budget, "small", &w, &mut small, 40).is_none(),
            "still not its turn"
        );
        let big_lease = poll(&budget, "big", &w, &mut big, 80).expect("its turn");
        assert!(
            poll(&budget, "small", &w, &mut small, 40).is_none(),
            "80 + 40 is over 100"
        );
        drop(big_lease);
        assert!(poll(&budget, "small", &w, &mut small, 40).is_some());
    }

    #[test]
    fn a_dropped_ticket_gives_its_place_up() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let held = poll(&budget, fresh(), &w, &mut None, 100).expect("room");
        let mut first = None;
        assert!(poll(&budget, "first", &w, &mut first, 50).is_none());
        let (woken, w2) = waker();
        let mut second = None;
        assert!(poll(&budget, "second", &w2, &mut second, 50).is_none());
        drop(held);
        drop(first);
        assert!(
            woken.0.load(Ordering::SeqCst) >= 1,
            "the next in line is woken"
        );
        assert!(poll(&budget, "second", &w2, &mut second, 50).is_some());
    }

    #[test]
    fn a_lease_larger_than_the_budget_is_granted_alone() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let small = poll(&budget, fresh(), &w, &mut None, 10).expect("room");
        let mut t = None;
        assert!(
            poll(&budget, "t", &w, &mut t, 500).is_none(),
            "not beside another"
        );
        drop(small);
        let big = poll(&budget, "t", &w, &mut t, 500).expect("alone");
        assert!(
            poll(&budget, fresh(), &w, &mut None, 1).is_none(),
            "nothing beside it"
        );
        drop(big);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_lease_kept_in_part_gives_the_rest_back() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        let mut a = poll(&budget, fresh(), &w, &mut None, 100).expect("room");
        let (woken, w2) = waker();
        let mut t = None;
        assert!(poll(&budget, "t", &w2, &mut t, 60).is_none());
        a.keep(40);
        assert_eq!((a.bytes(), budget.held()), (40, 40));
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the next in line is woken"
        );
        assert!(poll(&budget, "t", &w2, &mut t, 60).is_some());
        a.keep(50);
        assert_eq!(a.bytes(), 40, "keeping more takes nothing");
    }

    #[test]
    fn an_absorbed_lease_is_given_back_with_its_holder() {
        let budget = MessageBudget::new(1000);
        let (_, w) = waker();
        let mut a = poll(&budget, "a", &w, &mut None, 30).expect("room");
        a.absorb(poll(&budget, "a", &w, &mut None, 20).expect("room"));
        assert_eq!((a.bytes(), budget.held()), (50, 50));
        drop(a);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_principal_past_its_share_waits_without_holding_up_others() {
        // Shares of 100.
        let budget = MessageBudget::new(400);
        let (_, w) = waker();
        let first = poll(&budget, "greedy", &w, &mut None, 90).expect("room");
        let mut more = None;
        assert!(
            poll(&budget, "greedy", &w, &mut more, 50).is_none(),
            "90 + 50 is over its share"
        );
        // Asked later, another principal is not held up by it.
        let other = poll(&budget, "other", &w, &mut None, 200).expect("its own share is free");
        drop(first);
        let more = poll(&budget, "greedy", &w, &mut more, 50).expect("within its share");
        drop((more, other));
        // Holding nothing, a principal may take more than its share.
        let most = poll(&budget, "greedy", &w, &mut None, 300).expect("alone");
        assert_eq!((most.bytes(), budget.held()), (300, 300));
    }

    #[test]
    fn principals_take_turns() {
        let budget = MessageBudget::new(100);
        let (_, w) = waker();
        // One principal queues several sessions that each want it all.
        let first = poll(&budget, "greedy", &w, &mut None, 100).expect("room");
        let (mut second, mut third) = (None, None);
        assert!(poll(&budget, "greedy", &w, &mut second, 100).is_none());
        assert!(poll(&budget, "greedy", &w, &mut third, 100).is_none());
        // Another principal asks later.
        let mut other = None;
        assert!(poll(&budget, "other", &w, &mut other, 100).is_none());
        drop(first);
        // Its turn comes before the first one's next.
        assert!(poll(&budget, "greedy", &w, &mut second, 100).is_none());
        let other = poll(&budget, "other", &w, &mut other, 100).expect("its turn");
        drop(other);
        let second = poll(&budget, "greedy", &w, &mut second, 100).expect("then this");
        assert!(poll(&budget, "greedy", &w, &mut third, 100).is_none());
        drop(second);
        assert!(poll(&budget, "greedy", &w, &mut third, 100).is_some());
    }
}
