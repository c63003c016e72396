//! The citizen-facing view of a code: the JSON body of `GET /api/code` ([`CodeView`]) and the
//! mobile HTML page of `GET /code` ([`render_page`]).
//!
//! The origin and the fallback issuer both render through here, so a citizen cannot tell one
//! from the other except by the "data as of" line that every fallback code carries. The page is
//! built by plain string concatenation; every value from a code goes through [`escape_html`].

use serde::{Deserialize, Serialize};

use crate::claims::{Claims, Colour, Source};
use crate::qr::qr_svg;
use crate::time::{UnixTime, format_china_time, rfc3339};

/// Seconds before expiry at which the page reloads itself, so the QR on screen is always valid.
pub const REFRESH_BEFORE_EXPIRY_SECS: u64 = 20;
/// The page never reloads more often than this, even for codes that live only seconds.
pub const MIN_REFRESH_SECS: u64 = 5;

/// What a citizen's app or page shows for one code: the JSON of `GET /api/code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeView {
    /// The signed `HZ1:` text (what the QR holds).
    pub code: String,
    /// The colour.
    pub colour: Colour,
    /// Origin or fallback.
    pub source: Source,
    /// When the code was signed.
    #[serde(with = "rfc3339")]
    pub issued_at: UnixTime,
    /// When the code stops being valid.
    #[serde(with = "rfc3339")]
    pub expires_at: UnixTime,
    /// When the data behind the colour was current.
    #[serde(with = "rfc3339")]
    pub as_of: UnixTime,
    /// The masked name, e.g. `张*`.
    pub masked_name: String,
    /// The last four characters of the ID number, or empty.
    pub id_last4: String,
}

impl CodeView {
    /// The view of a signed code from its claims and its text.
    #[must_use]
    pub fn new(claims: &Claims, code_text: &str) -> Self {
        Self {
            code: code_text.to_owned(),
            colour: claims.colour,
            source: claims.source,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
            as_of: claims.as_of,
            masked_name: claims.masked_name.clone(),
            id_last4: claims.id_last4.clone(),
        }
    }

    /// Seconds after `now` (when the page is served) at which it should reload: shortly
    /// before expiry, but never sooner than [`MIN_REFRESH_SECS`]. A code served from a cache
    /// late in its life reloads sooner than a fresh one.
    #[must_use]
    pub fn refresh_after_secs(&self, now: UnixTime) -> u64 {
        self.expires_at
            .saturating_sub(now)
            .saturating_sub(REFRESH_BEFORE_EXPIRY_SECS)
            .max(MIN_REFRESH_SECS)
    }
}

/// Escapes text for HTML element content and double-quoted attribute values.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Banner colours and the two-language label of a colour.
struct Banner {
    background: &'static str,
    label_zh: &'static str,
    label_en: &'static str,
    advice_zh: &'static str,
    advice_en: &'static str,
}

fn banner(colour: Colour) -> Banner {
    match colour {
        Colour::Green => Banner {
            background: "#1a9e4b",
            label_zh: "绿码",
            label_en: "Green code",
            advice_zh: "可正常通行",
            advice_en: "You may pass",
        },
        Colour::Yellow => Banner {
            background: "#e0a800",
            label_zh: "黄码",
            label_en: "Yellow code",
            advice_zh: "请按要求居家健康监测并完成核酸检测",
            advice_en: "Please follow home health monitoring and get tested",
        },
        Colour::Red => Banner {
            background: "#c62828",
            label_zh: "红码",
            label_en: "Red code",
            advice_zh: "请配合集中隔离或居家隔离",
            advice_en: "Please follow isolation instructions",
        },
        Colour::Unknown => Banner {
            background: "#616161",
            label_zh: "状态未知",
            label_en: "Status unknown",
            advice_zh: "暂无法确认您的健康状态，请工作人员人工核验",
            advice_en: "Your status cannot be confirmed now; staff please check manually",
        },
    }
}

/// A mobile HTML page showing one code, served at `now`: colour banner, QR as inline SVG,
/// masked name, times, "data as of" for fallback codes, and a reload shortly before expiry.
/// Chinese with English.
///
/// If the QR cannot be drawn (a text too long for any QR, which a signed code never is), the
/// page says so instead of showing a QR.
#[must_use]
pub fn render_page(view: &CodeView, now: UnixTime) -> String {
    let b = banner(view.colour);
    let qr = match qr_svg(&view.code) {
        // The SVG document starts with an XML declaration, which is not allowed inline in HTML.
        Ok(svg) => match svg.find("<svg") {
            Some(at) => svg[at..].to_owned(),
            None => svg,
        },
        Err(_) => "<p>二维码无法显示 / QR code cannot be shown</p>".to_owned(),
    };
    let refresh = view.refresh_after_secs(now);
    let name = escape_html(&view.masked_name);
    let last4 = if view.id_last4.is_empty() {
        String::new()
    } else {
        format!(
            " · 证件尾号 / ID ending <b>{}</b>",
            escape_html(&view.id_last4)
        )
    };
    let as_of = match view.source {
        Source::Fallback => format!(
            "<p class=\"asof\">数据截至 / Data as of {}</p>\n",
            escape_html(&format_china_time(view.as_of))
        ),
        Source::Origin => String::new(),
    };
    let mut page = String::with_capacity(qr.len() + 2048);
    page.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str(&format!(
        "<meta http-equiv=\"refresh\" content=\"{refresh}\">\n"
    ));
    page.push_str(&format!(
        "<title>{} {} / {}</title>\n",
        "健康码", b.label_zh, b.label_en
    ));
    page.push_str(
        "<style>body{margin:0;font-family:sans-serif;text-align:center;background:#f5f5f5}\
         .banner{color:#fff;padding:1em}.banner h1{margin:0;font-size:1.8em}\
         .qr svg{width:70vw;max-width:320px;height:auto}.asof,.time{color:#555;font-size:.9em}\
         p{margin:.5em}</style>\n</head>\n<body>\n",
    );
    page.push_str(&format!(
        "<div class=\"banner colour-{c}\" style=\"background:{bg}\" data-colour=\"{c}\">\
         <h1>{zh}</h1><div>{en}</div></div>\n",
        c = view.colour.as_str(),
        bg = b.background,
        zh = b.label_zh,
        en = b.label_en,
    ));
    page.push_str(&format!("<div class=\"qr\">{qr}</div>\n"));
    page.push_str(&format!(
        "<p class=\"advice\">{} / {}</p>\n",
        b.advice_zh, b.advice_en
    ));
    page.push_str(&format!(
        "<p class=\"who\">姓名 / Name <b>{name}</b>{last4}</p>\n"
    ));
    page.push_str(&format!(
        "<p class=\"time\">生成时间 / Issued {} · 有效期至 / Valid until {}</p>\n",
        escape_html(&format_china_time(view.issued_at)),
        escape_html(&format_china_time(view.expires_at)),
    ));
    page.push_str(&as_of);
    page.push_str("</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::claims::tests::sample;
    use crate::key::{KeyPair, KeyRole};

    fn view(colour: Colour) -> CodeView {
        let mut claims = sample();
        claims.colour = colour;
        let key = KeyPair::from_seed(
            [3; 32],
            KeyRole::Origin,
            claims.issuer.clone(),
            0,
            2_000_000_000,
        );
        let text = key.sign(&claims).unwrap();
        CodeView::new(&claims, &text)
    }

    #[test]
    fn escaping_covers_the_five_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_hostile_name_is_escaped_on_the_page() {
        let mut v = view(Colour::Green);
        v.masked_name = "<script>alert(1)</script>".to_owned();
        let page = render_page(&v, v.issued_at);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn each_colour_has_its_banner_in_both_languages() {
        for (colour, zh, en) in [
            (Colour::Green, "绿码", "Green code"),
            (Colour::Yellow, "黄码", "Yellow code"),
            (Colour::Red, "红码", "Red code"),
            (Colour::Unknown, "状态未知", "Status unknown"),
        ] {
            let page = render_page(&view(colour), 0);
            assert!(page.contains(zh), "{colour}");
            assert!(page.contains(en), "{colour}");
            assert!(page.contains(&format!("data-colour=\"{colour}\"")));
            assert!(page.contains("<svg"), "{colour}: QR inline");
            assert!(
                !page.contains("<?xml"),
                "{colour}: no XML declaration inline"
            );
            assert!(page.contains("张*") && page.contains("123X"));
        }
    }

    #[test]
    fn unknown_asks_staff_to_check_manually_in_both_languages() {
        let page = render_page(&view(Colour::Unknown), 0);
        assert!(page.contains("人工核验"));
        assert!(page.contains("staff please check manually"));
    }

    #[test]
    fn only_fallback_codes_show_data_as_of() {
        let origin = render_page(&view(Colour::Green), 0);
        assert!(!origin.contains("Data as of"));
        let mut v = view(Colour::Green);
        v.source = Source::Fallback;
        let page = render_page(&v, v.issued_at);
        assert!(page.contains("数据截至 / Data as of 2026-11-30 08:36:40 (UTC+8)"));
    }

    #[test]
    fn page_reloads_shortly_before_expiry() {
        let v = view(Colour::Green);
        assert_eq!(v.expires_at - v.issued_at, 300);
        assert_eq!(v.refresh_after_secs(v.issued_at), 280);
        assert!(
            render_page(&v, v.issued_at).contains("<meta http-equiv=\"refresh\" content=\"280\">")
        );
        // Served from a cache four minutes into its life: reload in 40 s, not 280.
        assert_eq!(v.refresh_after_secs(v.issued_at + 240), 40);
        assert_eq!(v.refresh_after_secs(v.expires_at), MIN_REFRESH_SECS);
        let mut short = v.clone();
        short.expires_at = short.issued_at + 10;
        assert_eq!(short.refresh_after_secs(short.issued_at), MIN_REFRESH_SECS);
    }

    #[test]
    fn json_matches_the_api_shape() {
        let v = view(Colour::Red);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["colour"], "red");
        assert_eq!(json["source"], "origin");
        assert_eq!(json["issued_at"], "2026-11-30T00:53:20Z");
        assert!(json["code"].as_str().unwrap().starts_with("HZ1:"));
        let back: CodeView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }
}
