//! What a waiting person is shown: a small bilingual page (Chinese first) that reloads itself,
//! or JSON for apps, and when to ask again.

use std::fmt::Write as _;
use std::time::Duration;

/// Jitter of the refresh interval and of the wait, as a fraction.
pub(crate) const JITTER: f64 = 0.25;

/// When to ask again, whole seconds: the estimated wait plus up to [`JITTER`], but at most
/// the refresh interval ±[`JITTER`], and at least 1 s. `u1` and `u2` are uniform in
/// `[0, 1)`. An unknown wait counts as a long one.
pub(crate) fn retry_after(wait: Option<Duration>, refresh: Duration, u1: f64, u2: f64) -> u32 {
    let refresh = refresh.as_secs_f64() * (1.0 - JITTER + 2.0 * JITTER * u2);
    let secs = match wait {
        Some(w) => (w.as_secs_f64() * (1.0 + JITTER * u1)).min(refresh),
        None => refresh,
    };
    // At most MAX_WAITING_ROOM_REFRESH * 1.25, so the cast cannot overflow.
    (secs.ceil() as u32).max(1)
}

/// A waiting person's place, for display.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    /// Tickets ahead.
    pub(crate) ahead: u64,
    /// Estimated wait; `None` if nobody is being let in now.
    pub(crate) wait: Option<Duration>,
    /// Seconds until the page reloads itself / `Retry-After`.
    pub(crate) retry_after: u32,
}

/// `(Chinese, English)` for a wait.
fn wait_text(wait: Option<Duration>) -> (String, String) {
    match wait.map(|w| w.as_secs_f64().ceil() as u64) {
        None => (
            "暂时无法估计（系统繁忙）".to_owned(),
            "cannot be estimated yet (the system is very busy)".to_owned(),
        ),
        Some(0..=1) => ("即将轮到您".to_owned(), "any moment now".to_owned()),
        Some(s @ 2..=119) => (format!("约 {s} 秒"), format!("about {s} seconds")),
        Some(s) => {
            let m = s.div_ceil(60);
            (format!("约 {m} 分钟"), format!("about {m} minutes"))
        }
    }
}

/// The waiting page.
pub(crate) fn html(view: &View) -> String {
    let (wait_zh, wait_en) = wait_text(view.wait);
    let ahead = view.ahead;
    let wait_secs = view
        .wait
        .map_or_else(String::new, |w| w.as_secs_f64().ceil().to_string());
    let mut page = String::with_capacity(2048);
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>正在排队 · Please wait</title>
<style>
body{{font:1.15rem/1.6 system-ui,sans-serif;margin:0 auto;max-width:34rem;padding:1.5rem;color:#111;background:#fff}}
h1{{font-size:1.5rem;margin:0 0 1rem}}
.n{{font-size:2.5rem;font-weight:700}}
.en{{color:#444}}
</style>
</head>
<body>
<main>
<h1>正在排队<br><span class="en" lang="en">You are in the queue</span></h1>
<div role="status" aria-live="polite">
<p id="position" data-ahead="{ahead}" data-position="{position}">您前面还有 <span class="n">{ahead}</span> 人<br><span class="en" lang="en">{ahead} {people} ahead of you</span></p>
<p id="wait" data-seconds="{wait_secs}">预计等待：{wait_zh}<br><span class="en" lang="en">Estimated wait: {wait_en}</span></p>
</div>
<p>轮到您时本页会自动进入登记页面。请保持本页打开，无需反复刷新，刷新不会让您排得更靠前。<br><span class="en" lang="en">When it is your turn this page opens the registration page by itself. Please keep it open; there is no need to reload it, and reloading does not move you forward.</span></p>
</main>
</body>
</html>
"#,
        refresh = view.retry_after,
        position = ahead + 1,
        people = if ahead == 1 { "person" } else { "people" },
    );
    page
}

/// The JSON answer for apps: the origin's error shape (`error`, `message`, `message_zh`)
/// plus the place.
pub(crate) fn json(view: &View) -> String {
    let (wait_zh, wait_en) = wait_text(view.wait);
    serde_json::json!({
        "error": "waiting_room",
        "message": format!(
            "Many people are registering now. You are in the queue with {} ahead of you; \
             estimated wait: {wait_en}. Please try again after the Retry-After time.",
            view.ahead
        ),
        "message_zh": format!(
            "当前登记人数较多，您正在排队，前面还有 {} 人，预计等待：{wait_zh}。请在 Retry-After 所示时间后重试。",
            view.ahead
        ),
        "position": view.ahead + 1,
        "ahead": view.ahead,
        "estimated_wait_seconds": view.wait.map(|w| w.as_secs_f64().ceil() as u64),
        "retry_after_seconds": view.retry_after,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const REFRESH: Duration = Duration::from_secs(20);

    #[test]
    fn retry_after_follows_the_wait_with_jitter_and_the_refresh_bounds() {
        let s = Duration::from_secs;
        // Short waits: the wait plus 0..25 %, rounded up.
        assert_eq!(retry_after(Some(s(8)), REFRESH, 0.0, 0.5), 8);
        assert_eq!(retry_after(Some(s(8)), REFRESH, 0.999, 0.5), 10);
        // Long or unknown waits: the refresh interval, 15..25 s.
        assert_eq!(retry_after(Some(s(600)), REFRESH, 0.5, 0.0), 15);
        assert_eq!(retry_after(Some(s(600)), REFRESH, 0.5, 0.999), 25);
        assert_eq!(retry_after(None, REFRESH, 0.5, 0.5), 20);
        // Never 0.
        assert_eq!(retry_after(Some(Duration::ZERO), REFRESH, 0.0, 0.0), 1);
        assert_eq!(
            retry_after(Some(Duration::ZERO), Duration::from_millis(100), 0.0, 0.0),
            1
        );
    }

    #[test]
    fn the_page_shows_place_and_wait_in_chinese_first() {
        let view = View {
            ahead: 3,
            wait: Some(Duration::from_secs(150)),
            retry_after: 17,
        };
        let page = html(&view);
        assert!(page.contains(r#"<meta http-equiv="refresh" content="17">"#));
        assert!(page.contains(r#"data-ahead="3" data-position="4""#));
        assert!(page.contains("您前面还有 <span class=\"n\">3</span> 人"));
        assert!(page.contains("约 3 分钟") && page.contains("about 3 minutes"));
        assert!(page.find("正在排队").unwrap() < page.find("You are in the queue").unwrap());
        // No external assets.
        for needle in ["src=", "href=", "http://", "https://", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    #[test]
    fn json_carries_place_wait_and_messages() {
        let view = View {
            ahead: 0,
            wait: None,
            retry_after: 21,
        };
        let v: serde_json::Value = serde_json::from_str(&json(&view)).unwrap();
        assert_eq!(v["error"], "waiting_room");
        assert_eq!(v["position"], 1);
        assert_eq!(v["ahead"], 0);
        assert_eq!(v["estimated_wait_seconds"], serde_json::Value::Null);
        assert_eq!(v["retry_after_seconds"], 21);
        assert!(v["message_zh"].as_str().unwrap().contains("排队"));
        assert!(v["message"].as_str().unwrap().contains("queue"));
    }

    #[test]
    fn waits_read_naturally() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(wait_text(s(0)).1, "any moment now");
        assert_eq!(wait_text(s(45)).0, "约 45 秒");
        assert_eq!(wait_text(s(119)).1, "about 119 seconds");
        assert_eq!(wait_text(s(121)).1, "about 3 minutes");
    }
}
