//! The queue in front of the limit, on paused time.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Mutex as StdMutex;

use tokio::task::JoinHandle;
use tokio::time::sleep;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// A fixed limit of `limit`, generous waits, no CoDel unless a test shortens it.
fn fixed(limit: usize) -> AdmissionConfig {
    AdmissionConfig {
        adaptive: false,
        max_limit: limit,
        max_wait: [Duration::from_secs(10); Priority::COUNT],
        ..AdmissionConfig::default()
    }
}

/// Lets spawned tasks run up to their next wait, without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Teaches the latency estimate that calls take `latency`.
async fn calibrate(adm: &Arc<Admission>, latency: Duration) {
    for _ in 0..12 {
        let slot = adm.try_acquire(Priority::Other).unwrap();
        sleep(latency).await;
        slot.record(latency, CallOutcome::Ok);
    }
    sleep(Duration::from_millis(100)).await;
    adm.try_acquire(Priority::Other)
        .unwrap()
        .record(latency, CallOutcome::Ok);
    assert_eq!(adm.snapshot().latency, Some(latency));
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_highest_priority_first() {
    let adm = Admission::new(fixed(1));
    calibrate(&adm, MS).await;
    let held = adm.try_acquire(Priority::Other).unwrap();
    let order = Arc::new(StdMutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Lowest priority first, so arrival order is the opposite of service order.
    for &p in Priority::ALL.iter().rev() {
        let (adm, order) = (Arc::clone(&adm), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let slot = adm.acquire(p, far()).await.unwrap();
            order.lock().unwrap().push(p);
            sleep(MS).await;
            slot.record(MS, CallOutcome::Ok);
        }));
        settle().await;
    }
    assert_eq!(adm.snapshot().queued, [1; Priority::COUNT]);
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), Priority::ALL);
    let snap = adm.snapshot();
    assert_eq!((snap.in_flight, snap.queued_total), (0, 0));
    assert!(snap.sojourn_count >= 6 && snap.sojourn_recent_max >= MS);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_deadline_passes_is_refused_and_never_reaches_the_origin() {
    let adm = Admission::new(fixed(1));
    // Before any latency is known the estimate is pessimistic (100 ms a call): a request
    // with 50 ms left is refused on arrival, having waited nothing.
    let held = adm.try_acquire(Priority::Other).unwrap();
    let start = Instant::now();
    let refused = adm
        .acquire(Priority::Scan, start + 50 * MS)
        .await
        .unwrap_err();
    assert_eq!(refused.reason, ShedReason::Deadline);
    assert_eq!(refused.waited, Duration::ZERO);
    assert_eq!(Instant::now(), start);
    assert_eq!(refused.retry_after, 100 * MS);
    drop(held);

    calibrate(&adm, MS).await;
    let held = adm.try_acquire(Priority::Other).unwrap();
    let admitted = adm.snapshot().admitted_total();
    let start = Instant::now();
    let refused = adm
        .acquire(Priority::Scan, start + 50 * MS)
        .await
        .unwrap_err();
    assert_eq!(refused.reason, ShedReason::Deadline);
    assert_eq!(refused.waited, 50 * MS);
    assert_eq!(adm.snapshot().queued_total, 0, "taken out of the queue");
    drop(held);
    let snap = adm.snapshot();
    assert_eq!(snap.in_flight, 0, "the freed call went to nobody");
    assert_eq!(snap.admitted_total(), admitted);
    assert_eq!(snap.shed(Priority::Scan, ShedReason::Deadline), 2);
    // A deadline already past is refused outright.
    let refused = adm
        .acquire(Priority::Scan, Instant::now())
        .await
        .unwrap_err();
    assert_eq!(refused.reason, ShedReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn the_wait_is_bounded_by_the_priority_max_wait() {
    let mut cfg = fixed(1);
    cfg.max_wait[Priority::DisplayRefresh.index()] = 100 * MS;
    cfg.max_wait[Priority::Other.index()] = Duration::ZERO;
    let adm = Admission::new(cfg);
    calibrate(&adm, MS).await;
    let _held = adm.try_acquire(Priority::Other).unwrap();
    let refused = adm
        .acquire(Priority::DisplayRefresh, far())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.reason, refused.waited),
        (ShedReason::MaxWait, 100 * MS)
    );
    // max_wait 0: never waits.
    let refused = adm.acquire(Priority::Other, far()).await.unwrap_err();
    assert_eq!(
        (refused.reason, refused.waited),
        (ShedReason::MaxWait, Duration::ZERO)
    );
    assert_eq!(
        adm.snapshot()
            .shed(Priority::DisplayRefresh, ShedReason::MaxWait),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_standing_queue_gets_the_codel_timeout_and_is_served_lifo() {
    let adm = Admission::new(fixed(1));
    calibrate(&adm, MS).await;
    let held = adm.try_acquire(Priority::Other).unwrap();
    let spawn = |p: Priority| -> JoinHandle<Result<Slot, Refused>> {
        let adm = Arc::clone(&adm);
        tokio::spawn(async move { adm.acquire(p, far()).await })
    };
    let first = spawn(Priority::Register);
    settle().await;
    assert!(!adm.snapshot().standing);
    sleep(Duration::from_millis(100)).await;
    assert!(adm.snapshot().standing, "not empty for codel_interval");
    // A new arrival at the standing queue may wait codel_target (5 ms), not its 10 s.
    let start = Instant::now();
    let refused = adm.acquire(Priority::Other, far()).await.unwrap_err();
    assert_eq!(refused.reason, ShedReason::Codel);
    assert_eq!(Instant::now() - start, 5 * MS);
    // Served newest first while standing: a later Register overtakes the first one.
    let second = spawn(Priority::Register);
    settle().await;
    drop(held);
    let slot = second.await.unwrap().unwrap();
    assert!(slot.waited() < 5 * MS);
    assert!(!first.is_finished(), "the oldest waits on");
    drop(slot);
    assert!(first.await.unwrap().is_ok());
    assert_eq!(adm.snapshot().shed_for(ShedReason::Codel), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_the_lowest_priority_first() {
    let cfg = AdmissionConfig {
        max_waiters: 2,
        ..fixed(1)
    };
    let adm = Admission::new(cfg);
    calibrate(&adm, MS).await;
    let _held = adm.try_acquire(Priority::Other).unwrap();
    let spawn = |p: Priority| -> JoinHandle<Result<Slot, Refused>> {
        let adm = Arc::clone(&adm);
        tokio::spawn(async move { adm.acquire(p, far()).await })
    };
    let oldest = spawn(Priority::DisplayRefresh);
    settle().await;
    let newer = spawn(Priority::DisplayRefresh);
    settle().await;
    // Same priority, queue full: refused on arrival.
    let refused = adm
        .acquire(Priority::DisplayRefresh, far())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.reason, refused.waited),
        (ShedReason::QueueFull, Duration::ZERO)
    );
    // A scan pushes out the oldest refresh.
    let scan = spawn(Priority::Scan);
    settle().await;
    let pushed_out = oldest.await.unwrap().unwrap_err();
    assert_eq!(pushed_out.reason, ShedReason::QueueFull);
    let snap = adm.snapshot();
    assert_eq!(snap.queued(Priority::Scan), 1);
    assert_eq!(snap.queued(Priority::DisplayRefresh), 1);
    assert_eq!(
        snap.shed(Priority::DisplayRefresh, ShedReason::QueueFull),
        2
    );
    // A reload with room for one refuses the lowest priority left.
    adm.reconfigure(AdmissionConfig {
        max_waiters: 1,
        ..fixed(1)
    });
    assert_eq!(
        newer.await.unwrap().unwrap_err().reason,
        ShedReason::QueueFull
    );
    assert_eq!(adm.snapshot().queued(Priority::Scan), 1);
    // A reload with a higher limit lets the scan in.
    adm.reconfigure(fixed(2));
    assert!(scan.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_frees_its_place_and_its_call() {
    let adm = Admission::new(fixed(1));
    calibrate(&adm, MS).await;
    let held = adm.try_acquire(Priority::Other).unwrap();

    // Gives up while queued: the place is freed.
    let waiter = {
        let adm = Arc::clone(&adm);
        tokio::spawn(async move { adm.acquire(Priority::Declare, far()).await })
    };
    settle().await;
    assert_eq!(adm.snapshot().queued_total, 1);
    waiter.abort();
    settle().await;
    let snap = adm.snapshot();
    assert_eq!(snap.queued_total, 0);
    assert_eq!(snap.abandoned[Priority::Declare.index()], 1);

    // Granted but gone before it noticed: the call goes back.
    let mut pending = Box::pin(adm.acquire(Priority::Declare, far()));
    tokio::select! {
        biased;
        _ = &mut pending => panic!("no call is free"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(adm.snapshot().queued_total, 1);
    drop(held);
    assert_eq!(adm.in_flight(), 1, "granted to the waiter");
    drop(pending);
    assert_eq!(adm.in_flight(), 0, "and given back");

    // A slot dropped unrecorded frees its call without a sample.
    let latency = adm.snapshot().latency;
    let slot = adm.try_acquire(Priority::Scan).unwrap();
    sleep(Duration::from_secs(1)).await;
    drop(slot);
    assert_eq!(adm.in_flight(), 0);
    assert_eq!(adm.snapshot().latency, latency);
}

#[tokio::test(start_paused = true)]
async fn the_estimated_wait_counts_who_is_ahead_and_refuses_at_once_past_the_budget() {
    let adm = Admission::new(fixed(2));
    calibrate(&adm, 10 * MS).await;
    let held = [
        adm.try_acquire(Priority::Other).unwrap(),
        adm.try_acquire(Priority::Other).unwrap(),
    ];
    assert_eq!(adm.estimated_wait(Priority::Scan), 5 * MS);
    let mut waiters = Vec::new();
    for _ in 0..4 {
        let adm = Arc::clone(&adm);
        waiters.push(tokio::spawn(async move {
            adm.acquire(Priority::Other, far()).await
        }));
    }
    settle().await;
    assert_eq!(adm.estimated_wait(Priority::Other), 25 * MS);
    assert_eq!(adm.estimated_wait(Priority::Scan), 5 * MS);
    // 20 ms left but 25 ms to wait: refused now, with that estimate.
    let refused = adm
        .acquire(Priority::Other, Instant::now() + 20 * MS)
        .await
        .unwrap_err();
    assert_eq!(refused.reason, ShedReason::Deadline);
    assert_eq!(refused.waited, Duration::ZERO);
    assert_eq!(refused.retry_after, 25 * MS);
    assert_eq!(refused.retry_after_secs(7), 1);
    // try_acquire never waits.
    let busy = adm.try_acquire(Priority::Scan).unwrap_err();
    assert_eq!(busy.reason, ShedReason::Busy);
    assert_eq!(adm.snapshot().shed(Priority::Scan, ShedReason::Busy), 1);
    drop(held);
    for w in waiters {
        assert!(w.await.unwrap().is_ok());
    }
}

#[test]
fn retry_after_rounds_up_with_jitter_and_a_cap() {
    let refused = |secs: f64| Refused {
        reason: ShedReason::QueueFull,
        retry_after: Duration::from_secs_f64(secs),
        waited: Duration::ZERO,
    };
    let spread: Vec<u64> = (0..200)
        .map(|s| refused(10.0).retry_after_secs(s))
        .collect();
    assert!(spread.iter().all(|&s| (10..=15).contains(&s)), "{spread:?}");
    assert!(spread.iter().any(|&s| s >= 13) && spread.iter().any(|&s| s <= 11));
    assert_eq!(refused(0.0).retry_after_secs(1), 1);
    assert_eq!(refused(1e6).retry_after_secs(1), MAX_RETRY_AFTER_SECS);
}

#[tokio::test(start_paused = true)]
async fn slow_start_lowers_the_limit_and_the_floor_and_ceiling_hold() {
    let cfg = AdmissionConfig {
        min_limit: 2,
        initial_limit: 4,
        max_limit: 64,
        ..AdmissionConfig::default()
    };
    let adm = Admission::new(cfg);
    assert_eq!(adm.snapshot().phase, LimitPhase::SlowStart);
    // Calls that all take 10 ms however many run: the limit doubles to the ceiling.
    let mut limits = Vec::new();
    for _ in 0..10 {
        let limit = adm.limit();
        limits.push(limit);
        for _ in 0..3 {
            let slots: Vec<Slot> = (0..limit)
                .map(|_| adm.try_acquire(Priority::Other).unwrap())
                .collect();
            sleep(40 * MS).await;
            for s in slots {
                s.record(10 * MS, CallOutcome::Ok);
            }
        }
    }
    assert_eq!(limits[..5], [4, 8, 16, 32, 64]);
    assert_eq!(*limits.iter().max().unwrap(), 64);
    adm.slow_start();
    assert_eq!(adm.limit(), 4);
    // Timeouts, round after round, take it to the floor and no lower.
    for _ in 0..20 {
        let slot = adm.try_acquire(Priority::Other).unwrap();
        sleep(MS).await;
        slot.record(Duration::from_secs(2), CallOutcome::Timeout);
    }
    assert_eq!(adm.limit(), 2);
    assert!(adm.snapshot().backoffs >= 2);
}

#[tokio::test(start_paused = true)]
async fn a_priority_overtaken_until_its_waiter_timed_out_is_refused_at_once_until_served() {
    let mut cfg = fixed(1);
    cfg.max_wait = [Duration::from_millis(50); Priority::COUNT];
    cfg.max_wait[Priority::Scan.index()] = Duration::from_secs(10);
    let adm = Admission::new(cfg);
    calibrate(&adm, MS).await;
    // Timed out with nobody overtaking it (the origin is only slow): the next one waits too.
    let held = adm.try_acquire(Priority::Other).unwrap();
    let slow = adm.acquire(Priority::Other, far()).await.unwrap_err();
    assert_eq!(slow.waited, Duration::from_millis(50));
    // A scan takes the call while `other` waits, and holds it: `other` times out overtaken.
    let scan = {
        let adm = Arc::clone(&adm);
        tokio::spawn(async move {
            let slot = adm.acquire(Priority::Scan, far()).await.unwrap();
            sleep(Duration::from_secs(1)).await;
            slot.record(Duration::from_secs(1), CallOutcome::Ok);
        })
    };
    settle().await;
    let overtaken = {
        let adm = Arc::clone(&adm);
        tokio::spawn(async move { adm.acquire(Priority::Other, far()).await.unwrap_err() })
    };
    settle().await;
    drop(held);
    assert_eq!(overtaken.await.unwrap().waited, Duration::from_millis(50));
    // Newcomers of `other` are refused at once; other priorities still wait their turn.
    let next = adm.acquire(Priority::Other, far()).await.unwrap_err();
    assert_eq!(next.waited, Duration::ZERO);
    let declare = adm.acquire(Priority::Declare, far()).await.unwrap_err();
    assert_eq!(declare.waited, Duration::from_millis(50));
    // A free call still goes to `other` (which clears it).
    scan.await.unwrap();
    drop(adm.acquire(Priority::Other, far()).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_sub_millisecond_origin_slowed_by_the_proxy_itself_keeps_its_limit_growing() {
    // The origin answers in 0.4 ms at first; loaded, its answers take 0.9 ms: the proxy's
    // own scheduling. Below the 5 ms floor that is not congestion; without the floor the
    // limit would shrink.
    let run = |floor: Duration| async move {
        let adm = Admission::new(AdmissionConfig {
            latency_floor: floor,
            ..AdmissionConfig::default()
        });
        for round in 0..60 {
            let latency = if round < 8 {
                Duration::from_micros(400)
            } else {
                Duration::from_micros(900)
            };
            let slots: Vec<Slot> = (0..adm.limit())
                .map(|_| adm.try_acquire(Priority::Other).unwrap())
                .collect();
            sleep(Duration::from_millis(30)).await;
            for slot in slots {
                slot.record(latency, CallOutcome::Ok);
            }
        }
        adm.limit()
    };
    let with_floor = run(Duration::from_millis(5)).await;
    let without = run(Duration::ZERO).await;
    assert!(
        with_floor >= 100,
        "with the floor the limit reached {with_floor}"
    );
    assert!(
        without < with_floor / 2,
        "without it {without} (with {with_floor})"
    );
}
