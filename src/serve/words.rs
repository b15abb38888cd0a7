//! The upload page in the browser's language: `?lang=xx` if given, else `Accept-Language`,
//! else English. The page's fixed words are put in on the server (HTML-escaped); the words its
//! script needs for results come as a JSON table in the page, built from the same
//! [`crate::lang`] tables as the screens, so the page and the device say the same thing.

use serde_json::{json, Map, Value};

use crate::lang::{Language, Texts, CODES, LABELS};

/// `?lang=` (the first one) or the `Accept-Language` header.
pub fn page_language(query: Option<&str>, accept: Option<&str>) -> Language {
    let asked = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("lang="))
        .and_then(Language::from_tag);
    asked.unwrap_or_else(|| Language::from_accept_language(accept.unwrap_or("")))
}

/// `page` with every `{{key}}` replaced by its words in `language`.
pub fn page(template: &str, language: Language) -> String {
    let t = language.texts();
    let p = &t.page;
    let notice = t.notice;
    let pairs: [(&str, String); 14] = [
        ("lang", language.code().to_string()),
        ("notice", notice.to_string()),
        ("banner", notice.to_uppercase()),
        ("heading", p.heading.into()),
        ("intro", p.intro.into()),
        ("image_kind", p.image_kind.into()),
        ("kind_auto", p.kinds[0].into()),
        ("kind_digital", p.kinds[1].into()),
        ("kind_photo", p.kinds[2].into()),
        ("token", p.token.into()),
        ("case_code", p.case_code.into()),
        ("analyse", p.analyse.into()),
        ("film", p.film.into()),
        ("heatmap", p.heatmap.into()),
    ];
    let mut out = template.to_string();
    for (key, text) in &pairs {
        out = out.replace(&format!("{{{{{key}}}}}"), &escape_html(text));
    }
    // In a <script type="application/json"> element: only "</script" could end it early, and
    // JSON may write "<" as "\u003c" anywhere in a string.
    let table = script_words(t).to_string().replace('<', "\\u003c");
    out.replace("{{words}}", &table)
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page's script needs. The result and summary words are given for every set of
/// flags of the four labels (16 sets), so the script looks them up instead of repeating the
/// rules of [`Texts::result`] and [`Texts::summary`].
fn script_words(t: &Texts) -> Value {
    let p = &t.page;
    let (mut results, mut summaries, mut labels, mut quality) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for set in 0..1u32 << LABELS.len() {
        let flags: Vec<String> = LABELS
            .iter()
            .enumerate()
            .filter(|(i, _)| set & (1 << i) != 0)
            .map(|(_, l)| l.to_string())
            .collect();
        let key = flags.join("+");
        for label in LABELS {
            results.insert(format!("{label}|{key}"), json!(t.result(label, &flags)));
        }
        summaries.insert(key, json!(t.summary(&flags)));
    }
    for l in LABELS {
        labels.insert(l.into(), json!(t.short_label(l)));
    }
    for c in CODES {
        quality.insert(c.into(), json!(t.quality(c)));
    }
    json!({
        "lang": t.language.code(),
        "records": t.speaks_records(),
        "notice": format!("{}.", t.notice),
        "result": t.screen.result,
        "bad_image": t.screen.bad_image.title,
        "analysing": t.screen.analysing,
        "model_down": p.model_down,
        "no_answer": p.no_answer,
        "pick_first": p.pick_first,
        "done": p.done,
        "not_analysed": p.not_analysed,
        "retry_in": p.retry_in,
        "upload_failed": p.upload_failed,
        "order": LABELS,
        "labels": labels,
        "results": results,
        "summaries": summaries,
        "quality": quality,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_wins_over_the_header_and_english_is_the_fallback() {
        assert_eq!(page_language(Some("lang=pt"), Some("fr")), Language::Pt);
        assert_eq!(page_language(Some("x=1&lang=es-MX"), None), Language::Es);
        assert_eq!(
            page_language(Some("lang=xx"), Some("fr;q=0.8")),
            Language::Fr
        );
        assert_eq!(page_language(None, Some("de, pt-BR;q=0.5")), Language::Pt);
        assert_eq!(page_language(None, None), Language::En);
    }

    #[test]
    fn every_placeholder_is_filled_and_the_words_are_escaped() {
        for l in Language::ALL {
            let html = page(super::super::PAGE, l);
            assert!(!html.contains("{{"), "{l}: a placeholder is left");
            assert!(html.contains(&format!("<html lang=\"{l}\">")), "{l}");
            let start = html.find("id=\"lang-words\">").unwrap() + 16;
            let end = start + html[start..].find("</script>").unwrap();
            let w: Value = serde_json::from_str(&html[start..end]).unwrap();
            assert_eq!(w["lang"], l.code());
            assert_eq!(w["results"].as_object().unwrap().len(), 64);
            assert_eq!(w["summaries"].as_object().unwrap().len(), 16);
        }
        assert_eq!(
            escape_html("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let fr = page("<p>{{image_kind}}</p>", Language::Fr);
        assert_eq!(fr, "<p>Type d&#39;image</p>");
    }
}
