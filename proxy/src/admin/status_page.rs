//! `GET /status`: the live picture for the person on call, without Grafana. A browser (an
//! `Accept` that prefers `text/html`) gets a small bilingual page that reloads itself every
//! [`REFRESH_SECS`] seconds and loads nothing else; tools get the same figures as JSON, as
//! does `GET /status.json` whatever it asks for.
//!
//! Traffic is read back from the metrics registry (`shouhu_requests_total` by class and
//! outcome, `shouhu_origin_failures_total`, `shouhu_fallback_codes_total`), so the page and
//! the dashboards count the same things; the rest comes from the components themselves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shouhu_code::page::escape_html;

use super::AdminState;

/// How often the page reloads itself, seconds.
pub const REFRESH_SECS: u32 = 5;

/// Counter totals since start: label values (in the metric's label order) to count.
type Series = BTreeMap<String, u64>;

/// Everything `/status` shows.
#[derive(Debug, Serialize)]
struct Picture {
    breaker: &'static str,
    origin_in_flight: usize,
    origin_limit: usize,
    origin_limit_phase: &'static str,
    origin_latency_seconds: Option<f64>,
    origin_baseline_seconds: Option<f64>,
    admission_queued: usize,
    journal_backlog: Option<u64>,
    waiting_room_depth: Option<u64>,
    cache_entries: u64,
    snapshot_watermark_age_seconds: Option<i64>,
    redis: &'static str,
    trust_keys: usize,
    fallback_keys: bool,
    /// `shouhu_requests_total` since start, class then outcome; series at zero left out.
    requests: BTreeMap<String, Series>,
    /// `shouhu_origin_failures_total` by kind, since start.
    origin_failures: Series,
    /// `shouhu_fallback_codes_total` by colour, since start.
    fallback_codes: Series,
}

impl Picture {
    async fn of(state: &AdminState) -> Self {
        let (age, backlog) = state.refresh_gauges().await;
        let admission = state.admission.snapshot();
        let families = state.metrics.registry().gather();
        let mut requests: BTreeMap<String, Series> = BTreeMap::new();
        for (labels, n) in counter(&families, "shouhu_requests_total", &["class", "outcome"]) {
            if let Ok([class, outcome]) = <[String; 2]>::try_from(labels) {
                requests.entry(class).or_default().insert(outcome, n);
            }
        }
        let by_one = |name: &str, label: &str| -> Series {
            counter(&families, name, &[label])
                .into_iter()
                .filter_map(|(mut labels, n)| Some((labels.pop()?, n)))
                .collect()
        };
        Self {
            breaker: state.breaker.state().as_str(),
            origin_in_flight: admission.in_flight,
            origin_limit: admission.limit,
            origin_limit_phase: admission.phase.as_str(),
            origin_latency_seconds: admission.latency.map(|d| d.as_secs_f64()),
            origin_baseline_seconds: admission.baseline.map(|d| d.as_secs_f64()),
            admission_queued: admission.queued_total,
            journal_backlog: backlog,
            waiting_room_depth: state.waiting_room.as_ref().map(|r| r.depth()),
            cache_entries: state.cache_entries(),
            snapshot_watermark_age_seconds: age,
            redis: state.redis(),
            trust_keys: state.trust.len(),
            fallback_keys: state.fallback_keys,
            requests,
            origin_failures: by_one("shouhu_origin_failures_total", "kind"),
            fallback_codes: by_one("shouhu_fallback_codes_total", "colour"),
        }
    }
}

/// The non-zero series of counter `name`: the values of `labels`, in that order, and the count.
fn counter(
    families: &[prometheus::proto::MetricFamily],
    name: &str,
    labels: &[&str],
) -> Vec<(Vec<String>, u64)> {
    let Some(family) = families.iter().find(|f| f.name() == name) else {
        return Vec::new();
    };
    family
        .get_metric()
        .iter()
        .filter_map(|m| {
            let value = m.get_counter().get_value();
            if value < 1.0 {
                return None;
            }
            let values = labels
                .iter()
                .map(|want| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == *want)
                        .map(|l| l.value().to_owned())
                })
                .collect::<Option<Vec<String>>>()?;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a counter is a non-negative whole number below 2^53"
            )]
            Some((values, value as u64))
        })
        .collect()
}

/// `GET /status`: the page for a browser, JSON otherwise.
pub(super) async fn status(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let picture = Picture::of(&state).await;
    let accept = headers.get(header::ACCEPT).map(|v| v.as_bytes());
    if prefers_html(accept) {
        let page = render(&picture, shouhu_code::time::now());
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
            .into_response()
    } else {
        axum::Json(picture).into_response()
    }
}

/// `GET /status.json`.
pub(super) async fn status_json(State(state): State<Arc<AdminState>>) -> Response {
    axum::Json(Picture::of(&state).await).into_response()
}

/// Whether an `Accept` header asks for HTML before JSON. `*/*` (curl, most clients) is JSON:
/// only a client that names `text/html` gets the page.
fn prefers_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("text/html") {
            html = html.max(q);
        } else if media.eq_ignore_ascii_case("application/json") {
            json = json.max(q);
        }
    }
    html > 0.0 && html >= json
}

/// Names of the labels the page knows, in Chinese and English; others are shown as they are.
fn name_of(label: &str) -> Option<(&'static str, &'static str)> {
    Some(match label {
        // Classes.
        "display" => ("亮码", "display"),
        "scan" => ("扫码核验", "scan"),
        "declare" => ("健康申报", "declare"),
        "register" => ("注册登录", "register"),
        "static" => ("静态资源", "static"),
        "other" => ("其他", "other"),
        // Outcomes.
        "origin" => ("源站", "origin"),
        "cache_fresh" | "cache" => ("缓存", "cache"),
        "cache_stale" | "stale" => ("缓存（待刷新）", "stale cache"),
        "cache_failover" => ("缓存（源站故障）", "cache, origin down"),
        "fallback" => ("后备签发", "fallback"),
        "fallback_unknown" | "unknown" => ("未知（人工核验）", "unknown: check by hand"),
        "origin_denied" => ("源站拒绝", "origin denied"),
        "unavailable" => ("不可用", "unavailable"),
        "proxied" => ("转发", "proxied"),
        "origin_failed" => ("源站失败", "origin failed"),
        "shed" => ("限流拒绝", "shed"),
        "queued" => ("排队", "queued"),
        "unauthorized" => ("未登录", "unauthorized"),
        "edge_verified" => ("边缘核验", "verified at edge"),
        "local" => ("本地应答", "local"),
        "bad_request" => ("请求无效", "bad request"),
        "aborted" => ("客户端中断", "aborted"),
        "journalled" => ("已暂存", "journalled"),
        "waiting_room" => ("排队等候", "waiting room"),
        "rate_limited" => ("频率超限", "rate limited"),
        "error" => ("错误", "error"),
        // Breaker and Redis states.
        "closed" => ("正常", "closed"),
        "half_open" => ("试探中", "half-open"),
        "open" => ("已熔断", "open"),
        "connected" => ("已连接", "connected"),
        "unreachable" => ("无法连接", "unreachable"),
        "off" => ("未配置", "off"),
        // Origin failure kinds.
        "timeout" => ("超时", "timeout"),
        "refused" => ("连接被拒", "refused"),
        "status_5xx" => ("5xx 错误", "5xx"),
        "io" => ("网络错误", "I/O"),
        // Colours.
        "green" => ("绿码", "green"),
        "yellow" => ("黄码", "yellow"),
        "red" => ("红码", "red"),
        _ => return None,
    })
}

/// `中文 English` of a label, escaped.
fn bilingual(label: &str) -> String {
    match name_of(label) {
        Some((zh, en)) => format!("{zh} <span class=\"en\">{en}</span>"),
        None => escape_html(label),
    }
}

fn millis(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "—".to_owned(), |s| format!("{:.1} ms", s * 1000.0))
}

fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "—".to_owned(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7200 => format!("{} min {} s", s / 60, s % 60),
        Some(s) => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| v.to_string())
}

const STYLE: &str = "\
body{font-family:system-ui,'Noto Sans CJK SC','PingFang SC',sans-serif;margin:0;\
background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 20px}\
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;font-size:13px;color:#b8c0cc}\
header a{color:#9cc3ff}main{padding:12px 20px;display:grid;gap:16px;\
grid-template-columns:repeat(auto-fit,minmax(380px,1fr))}\
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}\
h2{font-size:16px;margin:0 0 8px}.en{color:#6b7280;font-size:.85em}\
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:0}\
dl div{border:1px solid #e5e7eb;border-radius:6px;padding:6px 10px}\
dt{font-size:12px;color:#4b5563}dd{margin:2px 0 0;font-size:20px;font-weight:600}\
.good{color:#15803d}.warn{color:#b45309}.bad{color:#b91c1c}.dim{color:#6b7280}\
table{border-collapse:collapse;width:100%;font-size:14px}\
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.bar{background:#3b82f6;height:8px;border-radius:4px;min-width:1px}\
footer{padding:0 20px 16px;font-size:12px;color:#6b7280}";

/// The page.
fn render(p: &Picture, now: u64) -> String {
    let mut page = String::with_capacity(8 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>守护 状态 · shouhu status</title><style>{STYLE}</style></head><body>\
         <header><h1>守护 shouhu · 运行状态 <span class=\"en\">live status</span></h1>\
         <p>每 {REFRESH_SECS} 秒自动刷新 · refreshes every {REFRESH_SECS} s · \
         <a href=\"/status.json\">JSON</a> · <a href=\"/metrics\">metrics</a></p></header><main>"
    );
    origin_section(&mut page, p);
    fallback_section(&mut page, p);
    traffic_section(&mut page, p);
    let _ = write!(
        page,
        "</main><footer>生成于 generated at <time id=\"generated\" data-unix=\"{now}\">{}\
         </time> · 计数为自启动以来 counts are since the proxy started</footer></body></html>",
        escape_html(&shouhu_code::time::format_rfc3339(now)),
    );
    page
}

fn tone(state: &str) -> &'static str {
    match state {
        "closed" | "connected" => "good",
        "half_open" => "warn",
        "open" | "unreachable" => "bad",
        _ => "dim",
    }
}

/// One figure: `<div><dt>zh en</dt><dd id=..>value</dd></div>`; `value` is already HTML.
fn figure(page: &mut String, id: &str, zh: &str, en: &str, class: &str, value: &str) {
    let _ = write!(
        page,
        "<div><dt>{zh} <span class=\"en\">{en}</span></dt>\
         <dd id=\"{id}\" class=\"{class}\">{value}</dd></div>"
    );
}

fn origin_section(page: &mut String, p: &Picture) {
    page.push_str("<section id=\"origin\"><h2>源站 <span class=\"en\">Origin</span></h2><dl>");
    figure(
        page,
        "breaker",
        "熔断器",
        "breaker",
        tone(p.breaker),
        &bilingual(p.breaker),
    );
    figure(
        page,
        "origin-limit",
        "并发上限",
        "concurrency limit",
        "",
        &format!(
            "{} <span class=\"en\">{}</span>",
            p.origin_limit,
            escape_html(p.origin_limit_phase)
        ),
    );
    figure(
        page,
        "origin-in-flight",
        "进行中",
        "in flight",
        "",
        &p.origin_in_flight.to_string(),
    );
    figure(
        page,
        "admission-queued",
        "排队中",
        "queued",
        if p.admission_queued > 0 { "warn" } else { "" },
        &p.admission_queued.to_string(),
    );
    figure(
        page,
        "origin-latency",
        "近期延迟",
        "recent latency",
        "",
        &millis(p.origin_latency_seconds),
    );
    figure(
        page,
        "origin-baseline",
        "空载延迟",
        "baseline latency",
        "dim",
        &millis(p.origin_baseline_seconds),
    );
    page.push_str("</dl>");
    counts(
        page,
        "源站失败",
        "origin failures",
        "kind",
        &p.origin_failures,
    );
    page.push_str("</section>");
}

/// A small titled table of counts by label, when there are any; `attr` names the `data-`
/// attribute that carries each label.
fn counts(page: &mut String, zh: &str, en: &str, attr: &str, rows: &Series) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<h2 style=\"margin-top:10px\">{zh} <span class=\"en\">{en}</span></h2><table>"
    );
    for (label, n) in rows {
        let _ = write!(
            page,
            "<tr data-{attr}=\"{}\"><th>{}</th><td class=\"n\">{n}</td></tr>",
            escape_html(label),
            bilingual(label)
        );
    }
    page.push_str("</table>");
}

fn fallback_section(page: &mut String, p: &Picture) {
    page.push_str(
        "<section id=\"fallback\"><h2>后备与暂存 <span class=\"en\">Fallback and journal</span>\
         </h2><dl>",
    );
    figure(
        page,
        "redis",
        "Redis",
        "",
        tone(p.redis),
        &bilingual(p.redis),
    );
    figure(
        page,
        "snapshot-age",
        "快照水位线时长",
        "snapshot watermark age",
        "",
        &age(p.snapshot_watermark_age_seconds),
    );
    figure(
        page,
        "journal-backlog",
        "待回放申报",
        "journal backlog",
        if p.journal_backlog.unwrap_or(0) > 0 {
            "warn"
        } else {
            ""
        },
        &or_dash(p.journal_backlog),
    );
    figure(
        page,
        "waiting-room-depth",
        "等候室人数",
        "waiting room",
        "",
        &or_dash(p.waiting_room_depth),
    );
    figure(
        page,
        "cache-entries",
        "缓存码数",
        "cached codes",
        "",
        &p.cache_entries.to_string(),
    );
    figure(
        page,
        "trust-keys",
        "信任公钥",
        "trust keys",
        if p.fallback_keys { "" } else { "warn" },
        &p.trust_keys.to_string(),
    );
    page.push_str("</dl>");
    counts(
        page,
        "后备签发",
        "fallback codes",
        "colour",
        &p.fallback_codes,
    );
    page.push_str("</section>");
}

fn traffic_section(page: &mut String, p: &Picture) {
    page.push_str(
        "<section id=\"traffic\" style=\"grid-column:1/-1\"><h2>流量来源 \
         <span class=\"en\">Traffic by source</span></h2>",
    );
    if p.requests.is_empty() {
        page.push_str("<p class=\"dim\">尚无请求 <span class=\"en\">no requests yet</span></p>");
    }
    // Display first: where citizens' codes came from is the question on call.
    let order = p
        .requests
        .iter()
        .filter(|(c, _)| c.as_str() == "display")
        .chain(p.requests.iter().filter(|(c, _)| c.as_str() != "display"));
    for (class, outcomes) in order {
        let total: u64 = outcomes.values().sum();
        let _ = write!(
            page,
            "<table data-class=\"{c}\" style=\"margin-bottom:10px\"><tr><th colspan=\"2\">{}</th>\
             <td class=\"n\" data-total>{total}</td><td style=\"width:40%\"></td></tr>",
            bilingual(class),
            c = escape_html(class),
        );
        let mut rows: Vec<(&String, &u64)> = outcomes.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (outcome, n) in rows {
            let share = if total == 0 {
                0.0
            } else {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "a share for display, not an exact figure"
                )]
                let share = *n as f64 * 100.0 / total as f64;
                share
            };
            let _ = write!(
                page,
                "<tr data-class=\"{c}\" data-outcome=\"{o}\"><td></td><td>{}</td>\
                 <td class=\"n count\">{n}</td><td><div class=\"bar\" style=\"width:{share:.1}%\">\
                 </div></td></tr>",
                bilingual(outcome),
                c = escape_html(class),
                o = escape_html(outcome),
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture() -> Picture {
        let mut requests = BTreeMap::new();
        requests.insert(
            "display".to_owned(),
            BTreeMap::from([("origin".to_owned(), 3), ("fallback".to_owned(), 1)]),
        );
        requests.insert(
            "other".to_owned(),
            BTreeMap::from([("<script>".to_owned(), 2)]),
        );
        Picture {
            breaker: "open",
            origin_in_flight: 2,
            origin_limit: 17,
            origin_limit_phase: "steady",
            origin_latency_seconds: Some(0.0123),
            origin_baseline_seconds: None,
            admission_queued: 0,
            journal_backlog: Some(4),
            waiting_room_depth: None,
            cache_entries: 9,
            snapshot_watermark_age_seconds: Some(130),
            redis: "connected",
            trust_keys: 2,
            fallback_keys: true,
            requests,
            origin_failures: BTreeMap::from([("timeout".to_owned(), 5)]),
            fallback_codes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_page_shows_the_figures_and_escapes_labels() {
        let page = render(&picture(), 1_700_000_000);
        assert!(page.contains("<dd id=\"breaker\" class=\"bad\">已熔断"));
        assert!(page.contains("<dd id=\"origin-limit\" class=\"\">17 "));
        assert!(page.contains("12.3 ms"));
        assert!(page.contains("2 min 10 s"));
        assert!(page.contains("data-outcome=\"origin\""));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("content=\"5\""));
        // Display comes first, whatever the alphabet says.
        assert!(page.find("data-class=\"display\"") < page.find("data-class=\"other\""));
    }

    #[test]
    fn html_only_for_clients_that_name_it_first() {
        let browser = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(prefers_html(Some(browser)));
        assert!(!prefers_html(Some(b"*/*")));
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some(b"application/json")));
        assert!(!prefers_html(Some(b"text/html;q=0.5, application/json")));
        assert!(!prefers_html(Some(b"text/html;q=0")));
    }
}
