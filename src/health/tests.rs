//! The health state machine, step by step, on a synthetic clock.

use super::state::{BackendHealth, Cause};
use super::{Fault, HealthState, Pass};
use crate::routing::BackendAddr;

fn addr() -> BackendAddr {
    "10.0.0.1:80".parse().unwrap()
}

/// Passive settings: 3 failures in a row, 1 s cooldown, at `now_ms`.
fn at(now_ms: u64) -> Cause {
    Cause {
        threshold: 3,
        now_ms,
        cooldown_ms: 1000,
    }
}

fn fail_three_times(h: &BackendHealth, now_ms: u64) {
    for _ in 0..3 {
        h.request_failed(&addr(), Pass::Normal, Fault::ConnectRefused, &at(now_ms));
    }
}

#[test]
fn a_backend_is_unknown_until_there_is_evidence_and_up_after_an_answer() {
    let h = BackendHealth::new();
    assert_eq!(h.view().state, HealthState::Unknown);
    assert_eq!(h.view().reason, "no check or request yet");
    h.request_succeeded(&addr(), Pass::Normal, 200);
    let view = h.view();
    assert_eq!(view.state, HealthState::Up);
    assert_eq!(view.reason, "request answered: status 200");
}

#[test]
fn failures_in_a_row_take_it_down_and_one_answer_resets_the_count() {
    let h = BackendHealth::new();
    h.request_succeeded(&addr(), Pass::Normal, 200);
    for _ in 0..2 {
        h.request_failed(&addr(), Pass::Normal, Fault::Status(503), &at(0));
    }
    h.request_succeeded(&addr(), Pass::Normal, 200);
    for _ in 0..2 {
        h.request_failed(&addr(), Pass::Normal, Fault::Status(503), &at(0));
    }
    assert_eq!(h.state(), HealthState::Up, "never three in a row");
    h.request_failed(&addr(), Pass::Normal, Fault::Status(503), &at(0));
    let view = h.view();
    assert_eq!(view.state, HealthState::Down);
    assert_eq!(view.reason, "3 requests failed: status 503");
}

#[test]
fn a_down_backend_stays_down_after_its_cooldown_until_a_trial_answers() {
    let h = BackendHealth::new();
    fail_three_times(&h, 0);
    assert_eq!(h.admit(500, Some(1000)), None, "inside the cooldown");
    assert_eq!(h.state(), HealthState::Down);
    assert_eq!(h.admit(1000, Some(1000)), Some(Pass::Trial), "one trial");
    assert_eq!(h.admit(1001, Some(1000)), None, "only one");
    assert_eq!(
        h.state(),
        HealthState::Down,
        "still down while the trial runs"
    );
    // A request sent before the ejection answering late is not a trial.
    h.request_succeeded(&addr(), Pass::Normal, 200);
    assert_eq!(h.state(), HealthState::Down);
    // The trial fails: down, the next trial a cooldown later.
    h.request_failed(&addr(), Pass::Trial, Fault::ConnectRefused, &at(1000));
    let view = h.view();
    assert_eq!(view.state, HealthState::Down);
    assert_eq!(view.reason, "trial request failed: connect refused");
    assert_eq!(h.admit(1999, Some(1000)), None);
    assert_eq!(h.admit(2000, Some(1000)), Some(Pass::Trial));
    h.request_succeeded(&addr(), Pass::Trial, 204);
    let view = h.view();
    assert_eq!(view.state, HealthState::Up);
    assert_eq!(view.reason, "trial request answered: status 204");
    assert_eq!(h.admit(2001, Some(1000)), Some(Pass::Normal));
}

#[test]
fn failures_of_requests_sent_before_the_ejection_do_not_extend_it() {
    let h = BackendHealth::new();
    fail_three_times(&h, 0);
    fail_three_times(&h, 900);
    assert_eq!(h.admit(1000, Some(1000)), Some(Pass::Trial));
}

#[test]
fn active_checks_need_their_thresholds_and_one_passed_check_ends_an_ejection() {
    let h = BackendHealth::new();
    h.check_passed(&addr(), 2, 200);
    assert_eq!(h.view().reason, "check passed: status 200");
    assert_eq!(
        h.state(),
        HealthState::Up,
        "the first verdict needs one pass"
    );
    h.check_failed(&addr(), 3, Fault::Status(503));
    h.check_failed(&addr(), 3, Fault::Status(503));
    assert_eq!(h.state(), HealthState::Up);
    h.check_failed(&addr(), 3, Fault::Status(503));
    assert_eq!(h.view().reason, "3 checks failed: status 503");
    assert_eq!(
        h.admit(0, Some(1000)),
        None,
        "no trial while checks hold it down"
    );
    h.check_passed(&addr(), 2, 200);
    assert_eq!(h.state(), HealthState::Down, "one pass of two");
    h.check_passed(&addr(), 2, 200);
    assert_eq!(h.state(), HealthState::Up);

    fail_three_times(&h, 0);
    assert_eq!(h.state(), HealthState::Down);
    h.check_passed(&addr(), 2, 200);
    assert_eq!(h.state(), HealthState::Up, "one passed check decides");
}

#[test]
fn turning_active_checks_off_forgets_their_verdict_and_passive_off_ends_ejections() {
    let h = BackendHealth::new();
    h.check_failed(&addr(), 1, Fault::ConnectTimeout);
    assert_eq!(h.view().reason, "1 check failed: connect timed out");
    h.forget_checks(&addr());
    assert_eq!(h.state(), HealthState::Unknown);

    let h = BackendHealth::new();
    fail_three_times(&h, 0);
    assert_eq!(h.admit(10, None), Some(Pass::Normal));
    h.forget_requests(&addr());
    let view = h.view();
    assert_eq!(
        (view.state, view.reason.as_str()),
        (HealthState::Unknown, "passive checks turned off"),
        "no longer shown down while it takes traffic"
    );
}

#[test]
fn a_trial_given_back_lets_the_next_request_try_at_once() {
    let h = BackendHealth::new();
    fail_three_times(&h, 0);
    assert_eq!(h.admit(1000, Some(1000)), Some(Pass::Trial));
    assert_eq!(h.admit(1100, Some(1000)), None);
    h.release_trial(1200);
    assert_eq!(h.admit(1200, Some(1000)), Some(Pass::Trial));
    h.request_succeeded(&addr(), Pass::Trial, 200);
    h.release_trial(1300);
    assert_eq!(
        h.admit(1300, Some(1000)),
        Some(Pass::Normal),
        "not out any more"
    );
}

#[test]
fn turning_checks_off_forgets_an_answer_from_before_they_took_it_down() {
    let h = BackendHealth::new();
    h.request_succeeded(&addr(), Pass::Normal, 200);
    h.check_failed(&addr(), 1, Fault::ConnectRefused);
    assert_eq!(h.state(), HealthState::Down);
    h.forget_checks(&addr());
    assert_eq!(h.state(), HealthState::Unknown, "not up on stale evidence");
}
