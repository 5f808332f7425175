//! A persistent team of worker threads for the CPU engine's steps.
//!
//! [`Team::run`] runs one job on every member at once: the calling thread is
//! member 0, the team's own threads members `1..n`. Between jobs the
//! threads wait, first spinning on an epoch counter (a job usually follows
//! within microseconds: the next step) and then parked, so an idle team
//! costs nothing and a busy one starts a job in well under a microsecond
//! instead of the several a fork-join thread pool spends waking threads and
//! joining them. The caller's writes (epoch, job) and the members' (done
//! count) lie in two cache lines, no lock taken: an empty job on two
//! members takes 0.25 us on dev-2c (0.72 with the job behind a mutex).
//!
//! A team may have idle work (`Fn(member, stop) -> bool`, true when it did
//! something): a member that waits, for the others to finish a job or for
//! the next job, calls it while it spins (the CPU engine computes Poisson
//! words ahead in that time, see `pool`). It must not block, and should
//! return soon after `stop()` turns true (the wait is over then: a job
//! start, or the caller's return, waits for it).
//!
//! A job is `Fn(member) + Sync`: it borrows from the caller's stack, which is
//! sound because `run` does not return before every member has finished it.
//! A member that panics makes `run` panic in the caller (after the others
//! have finished), as a scoped thread would.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a waiting member spins before it parks.
const SPIN: Duration = Duration::from_micros(50);

/// Idle work of a team (see the module documentation): `(member, stop)`.
pub(crate) type IdleFn = dyn Fn(usize, &dyn Fn() -> bool) -> bool + Send + Sync;

/// A team's idle work, shared with its threads.
pub(crate) type Idle = Arc<IdleFn>;

/// The job of the current epoch, its lifetime erased (see [`Team::run`]).
type Job = *const (dyn Fn(usize) + Sync);

/// What the caller of [`Team::run`] writes and the members read: one cache
/// line, so that a job start moves one line between cores.
#[repr(align(64))]
struct Start {
    /// Incremented to start a job; a member runs each epoch once.
    epoch: AtomicU64,
    /// The job of the current epoch: written by [`Team::run`] before it
    /// raises `epoch` (`Release`), read by each member once it sees the new
    /// epoch (`Acquire`) and before it counts itself done; written again
    /// only after every member has.
    job: UnsafeCell<Option<SendJob>>,
    /// The team is being dropped.
    stop: AtomicBool,
}

/// What the members write and the caller reads: its own cache line.
#[repr(align(64))]
struct Finish {
    /// Jobs finished by the members other than the caller, over all
    /// epochs (`epoch x (n - 1)` once the current one is done).
    done: AtomicU64,
    /// A member panicked in the current epoch.
    panicked: AtomicBool,
}

struct Shared {
    start: Start,
    finish: Finish,
}

// SAFETY: `job` is the only field not `Sync`; its writes and reads never
// overlap (the epoch protocol on `Start::job`), and the `Release`/`Acquire`
// pairs on `epoch` and `done` order them.
unsafe impl Sync for Shared {}

#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the pointee is `Sync` and outlives every use: `Team::run` keeps
// the job alive until all members are done with it.
unsafe impl Send for SendJob {}

/// A persistent team of `n` members (the caller and `n - 1` threads).
pub struct Team {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    idle: Option<Idle>,
}

impl Team {
    /// A team of `n >= 1` members with idle work `idle`; fails if the
    /// threads cannot be started.
    pub fn new(n: usize, idle: Option<Idle>) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            start: Start {
                epoch: AtomicU64::new(0),
                job: UnsafeCell::new(None),
                stop: AtomicBool::new(false),
            },
            finish: Finish {
                done: AtomicU64::new(0),
                panicked: AtomicBool::new(false),
            },
        });
        let mut team = Team {
            shared,
            threads: Vec::with_capacity(n.saturating_sub(1)),
            idle: idle.clone(),
        };
        for member in 1..n.max(1) {
            let s = team.shared.clone();
            let idle = idle.clone();
            // On failure, dropping `team` stops the threads already started.
            team.threads.push(
                std::thread::Builder::new()
                    .name(format!("snn-worker-{member}"))
                    .spawn(move || member_loop(&s, member, idle.as_deref()))?,
            );
        }
        Ok(team)
    }

    /// Run `job(member)` on every member at once and wait for all of them.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.threads.is_empty() {
            job(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: this only erases the borrow's lifetime. The members call
        // the job only between the epoch increment below and their `done`
        // increment, and this function does not return (nor unwind: the
        // caller's own part is caught) before `done` counts every member,
        // so the borrow outlives every call.
        let erased: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        // SAFETY: no member reads `job` now: each has counted itself done
        // with the previous epoch (the wait below), and none reads it
        // before it sees the increment that follows.
        unsafe { *s.start.job.get() = Some(SendJob(erased)) };
        let epoch = s.start.epoch.fetch_add(1, Ordering::Release) + 1;
        for t in &self.threads {
            t.thread().unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let target = epoch * self.threads.len() as u64;
        let over = || s.finish.done.load(Ordering::Relaxed) >= target;
        let mut wait = Waiter::new();
        while s.finish.done.load(Ordering::Acquire) < target {
            if wait.spinning() {
                if !self.idle.as_ref().is_some_and(|f| f(0, &over)) {
                    std::hint::spin_loop();
                }
            } else if !self.idle.as_ref().is_some_and(|f| f(0, &over)) {
                std::thread::yield_now();
            }
        }
        // SAFETY: every member has counted itself done with this epoch,
        // so none reads `job` until the next.
        unsafe { *s.start.job.get() = None };
        // Written only after a panic, so that the line stays with the
        // members otherwise.
        let panicked = s.finish.panicked.load(Ordering::Relaxed);
        if panicked {
            s.finish.panicked.store(false, Ordering::Relaxed);
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if panicked {
            panic!("a worker thread of the CPU engine panicked");
        }
    }
}

/// A barrier for the members of a team inside one job (the CPU engine's
/// steps of a rank alone in its run: the workers meet after every interval
/// instead of returning to the caller). Round `r` (1, 2, ...) is passed once
/// every member has arrived `r` times since [`StepBarrier::reset`]. A member
/// that waits does the team's idle work meanwhile. A member that panics
/// inside the job breaks the barrier ([`StepBarrier::guard`]), so that the
/// others stop waiting and the job ends (and `Team::run` panics).
pub(crate) struct StepBarrier {
    arrived: Padded<AtomicU64>,
    broken: Padded<AtomicBool>,
    members: u64,
}

/// A value alone in its cache line (atomics that one core writes and others
/// poll; see also `pool`).
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Breaks its barrier when dropped during a panic.
pub(crate) struct BreakOnPanic<'a>(&'a StepBarrier);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.broken.0.store(true, Ordering::Release);
        }
    }
}

impl StepBarrier {
    /// A barrier for `members` members.
    pub(crate) fn new(members: usize) -> StepBarrier {
        StepBarrier {
            arrived: Padded(AtomicU64::new(0)),
            broken: Padded(AtomicBool::new(false)),
            members: members.max(1) as u64,
        }
    }

    /// Back to round 0, not broken. Call only while no job uses it (the
    /// next `Team::run` then publishes the reset to the members).
    pub(crate) fn reset(&self) {
        self.arrived.0.store(0, Ordering::Relaxed);
        self.broken.0.store(false, Ordering::Relaxed);
    }

    /// A guard that breaks the barrier if the member holding it panics.
    pub(crate) fn guard(&self) -> BreakOnPanic<'_> {
        BreakOnPanic(self)
    }

    /// Arrive for round `round` and wait for the other members, calling
    /// `idle(stop)` meanwhile (see the module documentation); false if the
    /// barrier was broken. What every member wrote before arriving is
    /// visible to every member after it passes.
    pub(crate) fn wait(&self, round: u64, idle: &dyn Fn(&dyn Fn() -> bool) -> bool) -> bool {
        // `AcqRel`: each arrival continues the release sequence that the
        // last one's value, read with `Acquire` below, completes.
        self.arrived.0.fetch_add(1, Ordering::AcqRel);
        let target = round * self.members;
        let over = || {
            self.arrived.0.load(Ordering::Relaxed) >= target
                || self.broken.0.load(Ordering::Relaxed)
        };
        let mut wait = Waiter::new();
        while self.arrived.0.load(Ordering::Acquire) < target {
            if self.broken.0.load(Ordering::Acquire) {
                return false;
            }
            if wait.spinning() {
                if !idle(&over) {
                    std::hint::spin_loop();
                }
            } else if !idle(&over) {
                std::thread::yield_now();
            }
        }
        true
    }
}

/// Whether a wait is still in its spinning phase ([`SPIN`] since it
/// began); the clock is read once every 64 polls.
struct Waiter {
    start: Option<Instant>,
    polls: u32,
}

impl Waiter {
    fn new() -> Waiter {
        Waiter {
            start: None,
            polls: 0,
        }
    }

    #[inline]
    fn spinning(&mut self) -> bool {
        self.polls = self.polls.wrapping_add(1);
        if !self.polls.is_multiple_of(64) {
            return true;
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        start.elapsed() < SPIN
    }
}

fn member_loop(s: &Shared, member: usize, idle: Option<&IdleFn>) {
    let mut seen = 0u64;
    loop {
        let over = || {
            s.start.epoch.load(Ordering::Relaxed) != seen || s.start.stop.load(Ordering::Relaxed)
        };
        // Wait for the next epoch: spin, then park (an unpark between the
        // check and the park makes the park return at once).
        let mut wait = Waiter::new();
        let epoch = loop {
            let e = s.start.epoch.load(Ordering::Acquire);
            if e != seen || s.start.stop.load(Ordering::Relaxed) {
                break e;
            }
            if wait.spinning() {
                if !idle.is_some_and(|f| f(member, &over)) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::park();
            }
        };
        if s.start.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = epoch;
        // SAFETY: the caller wrote `job` before raising `epoch` to the value
        // just read (`Acquire`), and writes it again only after this member
        // counts itself done below.
        let job = unsafe { *s.start.job.get() };
        if let Some(SendJob(job)) = job {
            // SAFETY: see `Team::run`: the job is alive until every member
            // has counted itself done below.
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| f(member))).is_err() {
                s.finish.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.finish.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.start.stop.store(true, Ordering::Relaxed);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_member_runs_each_job_once() {
        for n in [1usize, 2, 3, 5] {
            let team = Team::new(n, None).unwrap();
            let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for round in 1..=200 {
                team.run(&|m| {
                    counts[m].fetch_add(1, Ordering::Relaxed);
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == round));
                if round % 50 == 0 {
                    // Long enough for the members to park.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    #[test]
    fn waiting_members_do_the_idle_work() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Counted only on the caller's thread (member 0).
        let caller = std::thread::current().id();
        let idle: Idle = {
            let calls = calls.clone();
            Arc::new(move |m, _| {
                if std::thread::current().id() == caller && m == 0 {
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                false
            })
        };
        let team = Team::new(2, Some(idle)).unwrap();
        for _ in 0..3 {
            let before = calls.load(Ordering::Relaxed);
            // Member 1 finishes only once member 0, waiting for it, has
            // called the idle work.
            team.run(&|m| {
                let t0 = Instant::now();
                while m == 1 && calls.load(Ordering::Relaxed) == before {
                    assert!(t0.elapsed() < Duration::from_secs(60));
                    std::thread::yield_now();
                }
            });
        }
    }

    #[test]
    fn the_barrier_orders_rounds_and_breaks_on_panic() {
        for n in [1usize, 2, 3] {
            let team = Team::new(n, None).unwrap();
            let barrier = StepBarrier::new(n);
            // Each member writes its slot of a round, then reads every
            // member's slot of that round after the barrier.
            let slots: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            let bad = AtomicUsize::new(0);
            for call in 0..3u64 {
                barrier.reset();
                team.run(&|m| {
                    for round in 1..=100u64 {
                        slots[m].store(call * 1000 + round, Ordering::Relaxed);
                        assert!(barrier.wait(2 * round - 1, &|_| false));
                        for s in &slots {
                            if s.load(Ordering::Relaxed) != call * 1000 + round {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        assert!(barrier.wait(2 * round, &|_| false));
                    }
                });
            }
            assert_eq!(bad.load(Ordering::Relaxed), 0);
            // A panicking member breaks the barrier: the others return
            // instead of waiting for ever, and the caller panics.
            if n > 1 {
                barrier.reset();
                let passed = AtomicUsize::new(0);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    team.run(&|m| {
                        let _guard = barrier.guard();
                        if m == n - 1 {
                            panic!("member {m}");
                        }
                        if barrier.wait(1, &|_| false) {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                }));
                assert!(r.is_err());
                assert_eq!(passed.load(Ordering::Relaxed), 0);
            }
        }
    }

    #[test]
    fn a_panicking_member_panics_the_caller() {
        let team = Team::new(3, None).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|m| {
                if m == 2 {
                    panic!("member 2");
                }
            })
        }));
        assert!(r.is_err());
        // The team still works afterwards.
        let hits = AtomicUsize::new(0);
        team.run(&|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }
}
