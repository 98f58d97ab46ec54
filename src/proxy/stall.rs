//! The idle timer shared by the body wrappers and the client's writes.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::Sleep;

/// A timer armed while a stream has nothing to give (or take), reset (not
/// reallocated) when it makes progress; it also adds up the time spent waiting.
#[derive(Debug)]
pub struct Stall {
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Since when the body has had nothing, while it has nothing.
    since: Option<tokio::time::Instant>,
    waited: Duration,
}

impl Stall {
    pub fn new(idle: Duration) -> Self {
        Stall {
            idle,
            timer: None,
            since: None,
            waited: Duration::ZERO,
        }
    }

    /// Give back the timer's memory while nothing waits (an idle
    /// connection); it is made again on the next wait.
    pub fn release(&mut self) {
        if self.since.is_none() {
            self.timer = None;
        }
    }

    /// After a poll that was (not) pending: whether `idle` has passed
    /// since it started waiting.
    pub fn passed(&mut self, cx: &mut Context<'_>, pending: bool) -> bool {
        if !pending {
            if let Some(since) = self.since.take() {
                self.waited += since.elapsed();
            }
            return false;
        }
        if self.since.is_none() {
            let now = tokio::time::Instant::now();
            self.since = Some(now);
            let at = now + self.idle;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }
}

impl Stall {
    /// The idle limit.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Time spent waiting so far (not counting a wait still going on).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}
