//! `GET /register`: a small bilingual registration page (Chinese first). Its form posts JSON
//! to `POST /api/register` from an inline script and shows the subject, or the error's
//! `message_zh` and `message` (the gateway's waiting room answers in the same shape). No
//! external assets; usable on a phone and with a screen reader.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>健康码登记 · Health code registration</title>
<style>
body{font:1.15rem/1.5 system-ui,sans-serif;margin:0 auto;max-width:34rem;padding:1.25rem;color:#111;background:#fff}
h1{font-size:1.5rem;margin:0 0 1rem}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input{box-sizing:border-box;width:100%;font:inherit;padding:.7rem;border:2px solid #555;border-radius:.4rem}
input:focus{outline:3px solid #0a58ca;outline-offset:1px}
button{width:100%;margin-top:1.5rem;padding:1rem;font:inherit;font-weight:700;color:#fff;background:#0a58ca;border:0;border-radius:.4rem}
button:disabled{background:#777}
.en{color:#444;font-weight:400}
#result{margin-top:1.25rem;padding:.8rem;border-radius:.4rem}
#result.ok{background:#e3f6e5;border:2px solid #1c7c32}
#result.err{background:#fdecea;border:2px solid #b3261e}
</style>
</head>
<body>
<main>
<h1>健康码登记<br><span class="en" lang="en">Health code registration</span></h1>
<noscript><p>本页需要启用 JavaScript。<span lang="en">This page needs JavaScript.</span></p></noscript>
<form id="register" novalidate>
<label for="name">姓名 <span class="en" lang="en">Name</span></label>
<input id="name" name="name" autocomplete="name" required>
<label for="id_number">身份证号码 <span class="en" lang="en">ID number</span></label>
<input id="id_number" name="id_number" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="18" required>
<label for="phone">手机号码 <span class="en" lang="en">Mobile phone</span></label>
<input id="phone" name="phone" type="tel" inputmode="numeric" autocomplete="tel" maxlength="11" required>
<label for="address">住址 <span class="en" lang="en">Address</span></label>
<input id="address" name="address" autocomplete="street-address" required>
<button id="submit" type="submit">提交登记 <span lang="en">Register</span></button>
</form>
<p id="result" role="status" aria-live="polite"></p>
</main>
<script>
(function () {
  var form = document.getElementById("register");
  var button = document.getElementById("submit");
  var result = document.getElementById("result");
  function show(ok, text) {
    result.className = ok ? "ok" : "err";
    result.textContent = text;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {};
    ["name", "id_number", "phone", "address"].forEach(function (f) {
      body[f] = form.elements[f].value.trim();
    });
    button.disabled = true;
    result.className = "";
    result.textContent = "正在提交… Submitting…";
    fetch("/api/register", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      credentials: "same-origin",
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok && j.subject) {
          result.dataset.subject = j.subject;
          show(true, "登记成功，您的编号：" + j.subject + " / Registered. Your subject: " + j.subject);
        } else {
          var wait = r.headers.get("Retry-After");
          show(false, (j.message_zh || "登记失败，请稍后重试") + " / " +
            (j.message || "Registration failed (HTTP " + r.status + ")") +
            (wait ? " (" + wait + " s)" : ""));
        }
      });
    }).catch(function () {
      show(false, "网络错误，请稍后重试 / Network error; please try again.");
    }).then(function () {
      button.disabled = false;
    });
  });
})();
</script>
</body>
</html>
"#;

/// The page. Not stored by browsers, so each visit passes the gateway's waiting room.
pub(super) async fn register_page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use axum::body::to_bytes;

    use super::*;

    #[tokio::test]
    async fn serves_a_bilingual_form_that_posts_json_to_the_register_api() {
        let response = register_page().await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        let page = std::str::from_utf8(&body).unwrap();
        // Every field the API needs, each with a label.
        for field in ["name", "id_number", "phone", "address"] {
            assert!(
                page.contains(&format!(r#"<label for="{field}">"#)),
                "{field}"
            );
            assert!(
                page.contains(&format!(r#"<input id="{field}" name="{field}""#)),
                "{field}"
            );
        }
        assert!(page.contains(r#"fetch("/api/register""#));
        assert!(page.contains("j.message_zh") && page.contains("j.message "));
        assert!(page.contains(r#"<html lang="zh-CN">"#));
        assert!(page.find("健康码登记").unwrap() < page.find("Health code registration").unwrap());
        // Results are shown as text, never parsed as HTML; no external assets.
        assert!(!page.contains("innerHTML"));
        for needle in [" src=", "href=", "http://", "https://", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }
}
