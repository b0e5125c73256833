//! New connections and refusals per minute over the last day, for the
//! console's Overview: a ring of 1,440 minute buckets, filled as logins
//! are recorded. Pure: the caller gives the time. Kept per node and
//! since it started (the trail holds the lasting record).

/// A day of minutes.
pub const MINUTES: usize = 1_440;

/// One minute's logins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Minute {
    /// Sessions let in.
    pub connections: u32,
    /// Logins refused, whatever the reason.
    pub refusals: u32,
}

impl std::ops::AddAssign for Minute {
    fn add_assign(&mut self, other: Minute) {
        self.connections = self.connections.saturating_add(other.connections);
        self.refusals = self.refusals.saturating_add(other.refusals);
    }
}

/// The ring: each slot holds the minute it counts (Unix minutes), so a
/// slot left from a day ago reads as empty.
pub struct Activity {
    slots: Box<[(i64, Minute)]>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            slots: vec![(i64::MIN, Minute::default()); MINUTES].into_boxed_slice(),
        }
    }
}

fn slot_of(minute: i64) -> usize {
    // In range by rem_euclid; the cast cannot truncate.
    minute.rem_euclid(MINUTES as i64) as usize
}

impl Activity {
    /// Counts a login at `unix_secs`.
    pub fn record(&mut self, unix_secs: i64, admitted: bool) {
        let minute = unix_secs.div_euclid(60);
        let slot = &mut self.slots[slot_of(minute)];
        if slot.0 != minute {
            *slot = (minute, Minute::default());
        }
        if admitted {
            slot.1.connections = slot.1.connections.saturating_add(1);
        } else {
            slot.1.refusals = slot.1.refusals.saturating_add(1);
        }
    }

    /// The last `n` minutes (at most a day), oldest first, ending with
    /// the minute that holds `unix_secs`.
    pub fn last(&self, unix_secs: i64, n: usize) -> Vec<Minute> {
        let now = unix_secs.div_euclid(60);
        let n = n.min(MINUTES) as i64;
        (now - n + 1..=now)
            .map(|minute| match self.slots[slot_of(minute)] {
                (m, counts) if m == minute => counts,
                _ => Minute::default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_count_and_old_ones_read_as_empty() {
        let mut a = Activity::default();
        let t = 1_700_000_000 - 1_700_000_000 % 60;
        a.record(t, true);
        a.record(t + 59, false);
        a.record(t + 60, true);
        a.record(t - 120, true);
        assert_eq!(
            a.last(t + 60, 4),
            vec![
                Minute {
                    connections: 1,
                    refusals: 0
                },
                Minute::default(),
                Minute {
                    connections: 1,
                    refusals: 1
                },
                Minute {
                    connections: 1,
                    refusals: 0
                },
            ]
        );
        // A day later the same slots are stale.
        let day = 86_400;
        assert_eq!(a.last(t + day + 60, 3), vec![Minute::default(); 3]);
        a.record(t + day, false);
        assert_eq!(
            a.last(t + day, 1),
            vec![Minute {
                connections: 0,
                refusals: 1
            }]
        );
        assert_eq!(a.last(t, 10_000).len(), MINUTES);
    }
}
