//! The bodies `display` sends: a code as JSON or HTML (the same bytes the origin sends), and
//! the bilingual refusals. The HTML page is rendered once per cached code and split around
//! its reload time, which is the only part that changes from one answer to the next.

use bytes::{BufMut, Bytes, BytesMut};
use shouhu_code::CodeView;
use shouhu_code::time::UnixTime;

/// `Content-Type` of JSON answers.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// `Content-Type` of HTML answers.
pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";

/// The refresh meta tag of [`shouhu_code::render_page`], up to its number.
const REFRESH_META: &str = "<meta http-equiv=\"refresh\" content=\"";

/// A code's JSON body.
#[must_use]
pub fn view_json(view: &CodeView) -> Bytes {
    // A CodeView holds strings and integers only, so serialising cannot fail.
    Bytes::from(serde_json::to_vec(view).unwrap_or_default())
}

/// A code's page served at `now`, rendered from scratch (for codes not cached).
#[must_use]
pub fn view_html(view: &CodeView, now: UnixTime) -> Bytes {
    Bytes::from(shouhu_code::render_page(view, now))
}

/// A rendered page split around its reload seconds.
#[derive(Debug)]
pub struct PageTemplate {
    head: Bytes,
    tail: Bytes,
}

impl PageTemplate {
    /// Renders the page once.
    #[must_use]
    pub fn new(view: &CodeView) -> Self {
        let page = shouhu_code::render_page(view, view.issued_at);
        let split = page.find(REFRESH_META).and_then(|at| {
            let start = at + REFRESH_META.len();
            page[start..].find('"').map(|len| (start, start + len))
        });
        let bytes = Bytes::from(page);
        match split {
            Some((start, end)) => Self {
                head: bytes.slice(..start),
                tail: bytes.slice(end..),
            },
            // The page has no reload tag (render_page changed): serve it as rendered.
            None => Self {
                head: bytes,
                tail: Bytes::new(),
            },
        }
    }

    /// The page with `refresh_secs` filled in.
    #[must_use]
    pub fn render(&self, refresh_secs: u64) -> Bytes {
        if self.tail.is_empty() {
            return self.head.clone();
        }
        let mut out = BytesMut::with_capacity(self.head.len() + self.tail.len() + 20);
        out.put_slice(&self.head);
        // Writing into BytesMut cannot fail; it grows as needed.
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{refresh_secs}"));
        out.put_slice(&self.tail);
        out.freeze()
    }
}

/// What a refusal says, in both languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Stable error code.
    pub code: &'static str,
    /// English.
    pub en: &'static str,
    /// Chinese.
    pub zh: &'static str,
}

/// No code can be shown: neither the origin, the cache nor a fallback issuer can answer.
pub const UNAVAILABLE: Refusal = Refusal {
    code: "unavailable",
    en: "Your health code cannot be shown right now; please ask staff to check manually, or try again shortly",
    zh: "暂时无法显示健康码，请工作人员人工核验，或稍后再试",
};

/// A refusal as JSON: `{"error", "message", "message_zh"}` like the origin's errors.
#[must_use]
pub fn refusal_json(r: &Refusal) -> Bytes {
    Bytes::from(
        serde_json::json!({"error": r.code, "message": r.en, "message_zh": r.zh}).to_string(),
    )
}

/// A refusal as a small page.
#[must_use]
pub fn refusal_html(r: &Refusal) -> Bytes {
    Bytes::from(format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>健康码 / Health code</title>\n</head>\n\
         <body style=\"font-family:sans-serif;text-align:center\">\n\
         <h1 data-error=\"{code}\">{zh}</h1>\n<p>{en}</p>\n</body>\n</html>\n",
        code = r.code,
        zh = r.zh,
        en = r.en,
    ))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use shouhu_code::{Claims, Colour, KeyPair, KeyRole, Source};

    use super::*;

    fn view() -> CodeView {
        let region: shouhu_code::Region = "370000".parse().unwrap();
        let claims = Claims {
            issuer: region.clone(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_000_300,
            code_id: shouhu_code::CodeId([1; 12]),
            colour: Colour::Green,
            subject: shouhu_code::SubjectId([9; 16]),
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
            source: Source::Origin,
            as_of: 1_800_000_000,
            ruleset_version: 1,
        };
        let key = KeyPair::from_seed([3; 32], KeyRole::Origin, region, 0, 2_000_000_000);
        CodeView::new(&claims, &key.sign(&claims).unwrap())
    }

    #[test]
    fn the_template_gives_exactly_the_origins_page() {
        let v = view();
        let t = PageTemplate::new(&v);
        assert!(!t.tail.is_empty());
        for now in [
            v.issued_at,
            v.issued_at + 100,
            v.expires_at,
            v.expires_at + 50,
        ] {
            let ours = t.render(v.refresh_after_secs(now));
            assert_eq!(ours, shouhu_code::render_page(&v, now).as_bytes(), "{now}");
        }
    }

    #[test]
    fn json_round_trips() {
        let v = view();
        let back: CodeView = serde_json::from_slice(&view_json(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn refusals_speak_both_languages() {
        let j: serde_json::Value = serde_json::from_slice(&refusal_json(&UNAVAILABLE)).unwrap();
        assert_eq!(j["error"], "unavailable");
        assert!(j["message"].as_str().unwrap().contains("staff"));
        let h = String::from_utf8(refusal_html(&UNAVAILABLE).to_vec()).unwrap();
        assert!(h.contains("人工核验") && h.contains("check manually"));
    }
}
