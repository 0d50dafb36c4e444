//! Group commit: which appends an fsync has covered, so concurrent appends under
//! [`SyncPolicy::Always`](super::SyncPolicy::Always) share one fsync.
//!
//! The state's lock is the innermost lock of the queue, and this file is the only code that can
//! take it: [`GroupCommit`] keeps its mutex private and its methods touch nothing but that state,
//! so no path can hold it while waiting for the writer, reader or shared lock. Callers build their
//! errors and do their I/O after a method returns, with the lock released.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Appends are numbered from 1 in write order (the writer's `appends` counter); an fsync of the
/// head chunk covers every append up to the number read just before it started.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Every append up to here is covered by a successful fsync, except those in `failed`.
    synced: u64,
    /// The appends after `.0` up to `.1` may have been covered by an fsync that failed: they stay
    /// failed whatever fsync succeeds later (it proves nothing about pages the kernel may have
    /// dropped). `None` until the first failure. A later failure widens the range from the first
    /// failed append through its own, so an appender that has not yet looked at an older failure
    /// is still told (appends between two failures that did succeed are then reported failed:
    /// the client retries and makes a duplicate, never a loss; appenders that already had their
    /// answer never ask again).
    failed: Option<(u64, u64)>,
    /// An appender is running an fsync for everyone.
    in_progress: bool,
}

impl State {
    fn has_failed(&self, n: u64) -> bool {
        self.failed.is_some_and(|(from, to)| from < n && n <= to)
    }

    fn record_failure(&mut self, upto: u64) {
        self.failed = Some(match self.failed {
            None => (self.synced.min(upto), upto),
            Some((from, to)) => (from.min(upto), to.max(upto)),
        });
    }
}

/// What an appender waiting for its fsync learns.
pub(super) enum Turn<'a> {
    /// A successful fsync covered the append.
    Covered,
    /// An fsync that covered the append failed: the append must report the failure (a later
    /// fsync that succeeds proves nothing about pages the kernel may have dropped).
    Failed,
    /// No fsync is running and none covered the append: the caller runs one for everyone and
    /// reports how it went through [`Leader::finish`].
    Lead(Leader<'a>),
}

/// The duty to run the next fsync. Dropping it unfinished (a panic mid-fsync) lets another
/// appender lead instead of leaving every waiter asleep.
pub(super) struct Leader<'a> {
    commit: &'a GroupCommit,
    finished: bool,
}

impl GroupCommit {
    fn state(&self) -> MutexGuard<'_, State> {
        // Three integers and a flag stay consistent whatever panicked while holding them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until append `n` is covered by an fsync (successful or not), or until the caller is
    /// to run the next one.
    pub(super) fn wait_for(&self, n: u64) -> Turn<'_> {
        let mut st = self.state();
        loop {
            if st.has_failed(n) {
                return Turn::Failed;
            }
            if st.synced >= n {
                return Turn::Covered;
            }
            if !st.in_progress {
                st.in_progress = true;
                return Turn::Lead(Leader {
                    commit: self,
                    finished: false,
                });
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Every append up to `upto` is covered by a successful fsync (a rollover's, a flush's or a
    /// leader's), or needs none any more.
    pub(super) fn synced(&self, upto: u64) {
        let mut st = self.state();
        st.synced = st.synced.max(upto);
        drop(st);
        self.changed.notify_all();
    }

    /// An fsync covering every append up to `upto` failed.
    pub(super) fn failed(&self, upto: u64) {
        let mut st = self.state();
        st.record_failure(upto);
        drop(st);
        self.changed.notify_all();
    }

    /// The last append a successful fsync covers.
    pub(super) fn synced_through(&self) -> u64 {
        self.state().synced
    }

    fn end_lead(&self, outcome: Option<(u64, bool)>) {
        let mut st = self.state();
        st.in_progress = false;
        match outcome {
            Some((upto, true)) => st.synced = st.synced.max(upto),
            Some((upto, false)) => st.record_failure(upto),
            None => {}
        }
        drop(st);
        self.changed.notify_all();
    }
}

impl Leader<'_> {
    /// The leader's fsync covered every append up to `upto` and succeeded (`ok`) or failed.
    pub(super) fn finish(mut self, upto: u64, ok: bool) {
        self.finished = true;
        self.commit.end_lead(Some((upto, ok)));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.commit.end_lead(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_waiter_leads_and_a_successful_fsync_covers_the_others() {
        let c = GroupCommit::default();
        let Turn::Lead(leader) = c.wait_for(1) else {
            panic!("nothing is synced and nobody leads: the caller must");
        };
        leader.finish(3, true);
        assert!(matches!(c.wait_for(2), Turn::Covered));
        assert!(matches!(c.wait_for(3), Turn::Covered));
        assert!(matches!(c.wait_for(4), Turn::Lead(_)));
    }

    #[test]
    fn a_failed_fsync_fails_every_append_it_covered_but_not_later_ones() {
        let c = GroupCommit::default();
        let Turn::Lead(leader) = c.wait_for(1) else {
            panic!("the caller must lead");
        };
        leader.finish(2, false);
        assert!(matches!(c.wait_for(1), Turn::Failed));
        assert!(matches!(c.wait_for(2), Turn::Failed));
        assert!(matches!(c.wait_for(3), Turn::Lead(_)));
    }

    #[test]
    fn a_later_successful_fsync_does_not_clear_a_failure() {
        let c = GroupCommit::default();
        c.synced(1);
        c.failed(3);
        c.synced(5);
        assert!(matches!(c.wait_for(1), Turn::Covered));
        assert!(matches!(c.wait_for(2), Turn::Failed));
        assert!(matches!(c.wait_for(3), Turn::Failed));
        assert!(matches!(c.wait_for(4), Turn::Covered));
    }

    #[test]
    fn an_appender_that_slept_through_two_failures_and_a_success_is_still_told_it_failed() {
        let c = GroupCommit::default();
        c.failed(3);
        c.synced(10);
        c.failed(12);
        assert!(matches!(c.wait_for(2), Turn::Failed));
        assert!(matches!(c.wait_for(12), Turn::Failed));
        assert!(matches!(c.wait_for(13), Turn::Lead(_)));
    }

    #[test]
    fn failures_that_touch_are_remembered_together() {
        let c = GroupCommit::default();
        c.failed(2);
        c.failed(4);
        assert!(matches!(c.wait_for(1), Turn::Failed));
        assert!(matches!(c.wait_for(4), Turn::Failed));
    }

    #[test]
    fn a_leader_dropped_unfinished_hands_the_lead_on() {
        let c = GroupCommit::default();
        let Turn::Lead(leader) = c.wait_for(1) else {
            panic!("the caller must lead");
        };
        drop(leader);
        assert!(matches!(c.wait_for(1), Turn::Lead(_)));
        assert_eq!(c.synced_through(), 0);
    }

    #[test]
    fn waiters_wake_when_the_leader_finishes() {
        let c = std::sync::Arc::new(GroupCommit::default());
        let Turn::Lead(leader) = c.wait_for(1) else {
            panic!("the caller must lead");
        };
        let waiter = {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || matches!(c.wait_for(1), Turn::Covered))
        };
        leader.finish(1, true);
        assert!(waiter.join().expect("the waiter returns"));
    }
}
