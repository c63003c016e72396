#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const KEY: [u8; 32] = [42; 32];

fn t(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(secs)
}

fn config(max_rate: u32) -> shouhu_config::proxy::WaitingRoom {
    shouhu_config::proxy::WaitingRoom {
        max_rate: Some(max_rate),
        ..Default::default()
    }
}

/// The `name=value` part of a `Set-Cookie`, as a browser would send it back.
fn jar(set_cookie: &str) -> Vec<u8> {
    set_cookie.split(';').next().unwrap().as_bytes().to_vec()
}

fn wait(d: Decision) -> Wait {
    match d {
        Decision::Wait(w) => w,
        Decision::Pass { reason, .. } => panic!("passed ({reason:?})"),
    }
}

fn pass(d: Decision) -> (PassReason, Option<String>) {
    match d {
        Decision::Pass { reason, set_cookie } => (reason, set_cookie),
        Decision::Wait(w) => panic!("waits, {} ahead", w.ahead),
    }
}

/// A room at 1/s whose bucket is empty at `t(0)`, with `n` tickets already waiting.
fn busy_room(n: usize) -> (WaitingRoom, Vec<Vec<u8>>) {
    let room = WaitingRoom::new(&config(1), &KEY);
    pass(room.check(None, false, t(0.0)));
    let tickets = (0..n)
        .map(|_| jar(&wait(room.check(None, false, t(0.0))).set_cookie))
        .collect();
    (room, tickets)
}

#[test]
fn passes_without_a_page_while_the_room_is_not_needed() {
    let room = WaitingRoom::new(&config(10), &KEY);
    let (reason, cookie) = pass(room.check(None, false, t(0.0)));
    assert_eq!(reason, PassReason::NotNeeded);
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("shouhu_waiting_room="), "{cookie}");
    assert!(
        cookie.contains("Max-Age=600") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // The admitted cookie then passes without a new one, even once a queue forms.
    for _ in 0..20 {
        room.check(None, false, t(0.0));
    }
    assert_eq!(room.stats_at(t(0.0)).depth, 20 - 9);
    assert_eq!(
        pass(room.check(Some(&jar(&cookie)), true, t(1.0))),
        (PassReason::AlreadyAdmitted, None)
    );
    // Until it expires: then its holder is a newcomer.
    assert_eq!(room.stats_at(t(601.0)).depth, 0);
    for _ in 0..20 {
        room.check(None, false, t(601.0));
    }
    assert!(matches!(
        room.check(Some(&jar(&cookie)), false, t(601.0)),
        Decision::Wait(_)
    ));
}

#[test]
fn a_page_for_browsers_and_503_json_for_apps() {
    let (room, _) = busy_room(2);
    let page = wait(room.check(None, false, t(0.0)));
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert_eq!(page.ahead, 2);
    assert_eq!(page.estimated_wait, Some(Duration::from_secs(3)));
    let html = std::str::from_utf8(&page.body).unwrap();
    assert!(html.contains(r#"data-ahead="2""#), "{html}");
    assert!(html.contains(&format!(
        r#"<meta http-equiv="refresh" content="{}">"#,
        page.retry_after
    )));
    let headers = page.headers();
    assert!(headers.contains(&("cache-control", "no-store".to_owned())));
    assert!(headers.contains(&("retry-after", page.retry_after.to_string())));

    let app = wait(room.check(None, true, t(0.0)));
    assert_eq!(app.status, 503);
    assert_eq!(app.content_type, "application/json");
    assert_eq!(app.ahead, 3);
    let v: serde_json::Value = serde_json::from_slice(&app.body).unwrap();
    assert_eq!(v["position"], 4);
    assert_eq!(v["estimated_wait_seconds"], 4);
    assert_eq!(v["retry_after_seconds"], app.retry_after);
}

#[test]
fn tickets_are_let_in_in_order_and_the_admitted_cookie_lasts() {
    let (room, tickets) = busy_room(3);
    // Asking again keeps the place and the same ticket.
    let again = wait(room.check(Some(&tickets[1]), false, t(0.5)));
    assert_eq!(again.ahead, 1);
    assert_eq!(jar(&again.set_cookie), tickets[1]);
    // One per second, oldest first.
    let (reason, admitted) = pass(room.check(Some(&tickets[0]), false, t(1.0)));
    assert_eq!(reason, PassReason::Admitted);
    assert_eq!(wait(room.check(Some(&tickets[1]), false, t(1.0))).ahead, 0);
    assert_eq!(wait(room.check(Some(&tickets[2]), false, t(1.0))).ahead, 1);
    assert_eq!(
        pass(room.check(Some(&tickets[2]), false, t(3.0))).0,
        PassReason::Admitted
    );
    assert_eq!(
        pass(room.check(Some(&tickets[1]), false, t(3.0))).0,
        PassReason::Admitted
    );
    // The admitted cookie lets its holder load the form and post it for 10 minutes.
    let admitted = jar(&admitted.unwrap());
    for s in [2.0, 60.0, 599.0] {
        assert_eq!(
            pass(room.check(Some(&admitted), true, t(s))),
            (PassReason::AlreadyAdmitted, None)
        );
    }
}

#[test]
fn a_forged_or_altered_ticket_is_no_ticket() {
    let (room, tickets) = busy_room(3);
    let mut altered = tickets[2].clone();
    // Flip one character of the value (after "shouhu_waiting_room=").
    let i = COOKIE_NAME.len() + 5;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let w = wait(room.check(Some(&altered), false, t(0.0)));
    assert_eq!(w.ahead, 3, "a new ticket at the back");
    assert_ne!(jar(&w.set_cookie), altered);
    // Signed with another key: the same.
    let other = WaitingRoom::new(&config(1), &[7; 32]);
    pass(other.check(None, false, t(0.0)));
    let foreign = jar(&wait(other.check(None, false, t(0.0))).set_cookie);
    assert_eq!(wait(room.check(Some(&foreign), false, t(0.0))).ahead, 4);
    // A forged admitted cookie passes nothing either.
    assert!(matches!(
        room.check(Some(b"shouhu_waiting_room=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), false, t(0.0)),
        Decision::Wait(_)
    ));
    // A ticket older than a day is no ticket.
    let stale = WaitingRoom::new(&config(1), &KEY);
    pass(stale.check(None, false, t(0.0)));
    let old = jar(&wait(stale.check(None, false, t(0.0))).set_cookie);
    let later = t(TICKET_MAX_AGE.as_secs_f64() + 1.0);
    let fresh = WaitingRoom::new(&config(1), &KEY);
    pass(fresh.check(None, false, later));
    // (A valid old ticket would go in on credit; this one waits like a newcomer.)
    let w = wait(fresh.check(Some(&old), false, later));
    assert_ne!(
        jar(&w.set_cookie),
        old,
        "a fresh ticket replaced the stale one"
    );
}

#[test]
fn after_a_restart_old_tickets_go_before_newcomers() {
    let (room, tickets) = busy_room(5);
    drop(room);
    // The new process has the same key and an empty queue; it starts a minute later.
    let restarted = WaitingRoom::new(&config(1), &KEY);
    let start = t(60.0);
    // The one token of the new bucket goes to the first newcomer; the next waits.
    pass(restarted.check(None, false, start));
    let newcomer = jar(&wait(restarted.check(None, false, start)).set_cookie);
    // Old tickets come back as their pages refresh and are let in at once, on credit
    // (20 s × 1/s), although the newcomer still waits.
    for ticket in &tickets {
        let (reason, cookie) = pass(restarted.check(Some(ticket), false, start));
        assert_eq!(reason, PassReason::Admitted);
        assert!(cookie.is_some());
    }
    let w = wait(restarted.check(Some(&newcomer), false, t(61.0)));
    assert_eq!(w.ahead, 0);
    assert!(w.estimated_wait.unwrap() >= Duration::from_secs(4), "{w:?}");
    // The room that forgot everything still signs with the same key: its own old tickets
    // never count as forged.
    assert_eq!(restarted.stats_at(t(61.0)).depth, 1);
}

#[test]
fn retry_after_is_the_wait_with_jitter_within_bounds() {
    // Long wait (100 tickets at 1/s): 15..=25 s; short wait: the wait plus up to 25 %.
    let (room, tickets) = busy_room(100);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let w = wait(room.check(Some(&tickets[99]), false, t(0.0)));
        assert!((15..=25).contains(&w.retry_after), "{}", w.retry_after);
        seen.insert(w.retry_after);
        let w = wait(room.check(Some(&tickets[7]), true, t(0.0)));
        // 8 s to go: 8 to 10 s.
        assert!((8..=10).contains(&w.retry_after), "{}", w.retry_after);
    }
    assert!(seen.len() >= 5, "jittered: {seen:?}");
}

#[test]
fn the_refresh_setting_shortens_the_page_reload() {
    let cfg = shouhu_config::proxy::WaitingRoom {
        max_rate: Some(1),
        refresh: shouhu_config::Duration::from_secs(2),
        ..Default::default()
    };
    let room = WaitingRoom::new(&cfg, &KEY);
    pass(room.check(None, false, t(0.0)));
    for _ in 0..50 {
        room.check(None, false, t(0.0));
    }
    let w = wait(room.check(None, false, t(0.0)));
    assert!((2..=3).contains(&w.retry_after), "{}", w.retry_after);
}

#[test]
fn follows_the_spare_rate_and_reports_depth_and_wait() {
    let room = WaitingRoom::new(&shouhu_config::proxy::WaitingRoom::default(), &KEY);
    // Without max_rate and before any spare rate is known, nobody queues.
    for _ in 0..1000 {
        assert_eq!(
            pass(room.check(None, true, t(0.0))).0,
            PassReason::NotNeeded
        );
    }
    room.note_spare(2.0);
    pass(room.check(None, true, t(0.0)));
    pass(room.check(None, true, t(0.0)));
    for _ in 0..10 {
        wait(room.check(None, true, t(0.0)));
    }
    let stats = room.stats_at(t(0.0));
    assert_eq!(stats.depth, 10);
    assert_eq!(stats.rate, 2.0);
    assert_eq!(stats.estimated_wait, Some(Duration::from_secs_f64(5.5)));
    assert_eq!(room.stats_at(t(2.0)).depth, 6);
    room.note_spare(0.0);
    assert_eq!(room.stats_at(t(10.0)).estimated_wait, None);
    // With a cap the spare rate cannot lift it.
    let capped = WaitingRoom::new(&config(3), &KEY);
    capped.note_spare(1000.0);
    assert_eq!(capped.stats_at(t(0.0)).rate, 3.0);
}

#[test]
fn reconfigure_and_disable_keep_the_queue() {
    let (room, tickets) = busy_room(3);
    let off = shouhu_config::proxy::WaitingRoom {
        enabled: false,
        ..config(1)
    };
    room.reconfigure(&off);
    assert_eq!(
        pass(room.check(None, false, t(0.0))),
        (PassReason::NotNeeded, None)
    );
    room.reconfigure(&config(1));
    assert_eq!(wait(room.check(Some(&tickets[2]), false, t(0.0))).ahead, 2);
}

#[test]
fn prefers_an_admitted_cookie_among_several() {
    let (room, tickets) = busy_room(2);
    let (_, admitted) = pass(room.check(Some(&tickets[0]), false, t(1.0)));
    let mut header = tickets[1].clone();
    header.extend_from_slice(b"; other=1; ");
    header.extend_from_slice(&jar(&admitted.unwrap()));
    assert_eq!(
        pass(room.check(Some(&header), false, t(1.0))).0,
        PassReason::AlreadyAdmitted
    );
}

#[test]
fn json_for_api_paths_and_json_accept() {
    assert!(wants_json("/api/register", None));
    assert!(wants_json("/register", Some(b"application/json, */*")));
    assert!(wants_json("/register", Some(b"Application/JSON")));
    assert!(!wants_json(
        "/register",
        Some(b"text/html,application/xhtml+xml,*/*;q=0.8")
    ));
    assert!(!wants_json("/register", None));
}
