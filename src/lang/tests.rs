use super::*;

#[test]
fn every_warning_code_has_a_sentence_in_every_language() {
    for code in CODES {
        // A real code, as records write it.
        let parsed: crate::film::Code = serde_json::from_value(serde_json::json!(code)).unwrap();
        assert_eq!(parsed.as_str(), code);
        for l in Language::ALL {
            assert!(
                l.texts().quality(code).is_some_and(|s| s.ends_with('.')),
                "{l} {code}"
            );
        }
    }
}

#[test]
fn accept_language_picks_the_heaviest_of_ours() {
    let pick = Language::from_accept_language;
    assert_eq!(
        pick("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"),
        Language::Fr
    );
    assert_eq!(pick("pt-BR"), Language::Pt);
    assert_eq!(pick("pt_PT;q=0.5, es-MX;q=0.8"), Language::Es);
    assert_eq!(
        pick("de-DE, es;q=0.3"),
        Language::Es,
        "unknown ones skipped"
    );
    assert_eq!(pick("en;q=0.5, FR;q=0.9"), Language::Fr, "case of the tag");
    assert_eq!(pick("es, fr"), Language::Es, "equal weights: first listed");
    assert_eq!(pick("fr;q=0, es;q=0.1"), Language::Es, "q=0 is a refusal");
    assert_eq!(
        pick("fr;q=2, es;q=0.2"),
        Language::Es,
        "q outside 0..1 ignored"
    );
    assert_eq!(pick("fr ; q = 0.4 , pt ; q=0.6"), Language::Pt, "spaces");
    for header in ["", "de-DE, ja", "*", ",,;q=", "frx-CA", "zh-Hant-TW;q=0.9"] {
        assert_eq!(pick(header), Language::En, "{header:?}");
    }
}

#[test]
fn config_words_are_the_codes_and_nothing_else() {
    for l in Language::ALL {
        assert_eq!(Language::parse(l.code()), Ok(l));
        assert_eq!(l.texts().language, l, "{l}: its own table");
    }
    let e = Language::parse("french").unwrap_err().to_string();
    assert!(
        e.contains("\"french\"") && e.contains("\"en\", \"fr\", \"es\", \"pt\""),
        "{e}"
    );
    assert!(
        Language::parse("FR").is_err(),
        "the config writes codes as listed"
    );
    assert_eq!(Language::from_tag("FR"), Some(Language::Fr));
}

#[test]
fn every_table_has_the_notice_in_two_halves_and_no_diagnostic_words() {
    let notices: Vec<&str> = Language::ALL.iter().map(|l| l.texts().notice).collect();
    assert_eq!(
        notices,
        [
            "Research use only - not a diagnosis",
            "Usage recherche uniquement - pas un diagnostic",
            "Solo para investigación - no es un diagnóstico",
            "Apenas para pesquisa - não é um diagnóstico",
        ]
    );
    // Records carry the crate's notice; the English table's is the same words.
    assert_eq!(format!("{}.", notices[0]), crate::NOTICE);
    for l in Language::ALL {
        let t = l.texts();
        assert_eq!(
            t.notice.split(" - ").count(),
            2,
            "{l}: the banner breaks there"
        );
        // Every word a person reads, bar the notice that says it is *not* a diagnosis.
        let mut words: Vec<String> = vec![
            t.classes.covid.into(),
            t.classes.pneumonia.into(),
            t.classes.normal.into(),
            t.classes.other.into(),
            t.summary.not_chest.into(),
            t.summary.normal.into(),
            (t.summary.above)("x"),
            t.screen.not_chest.advice.into(),
            t.page.heading.into(),
            t.page.intro.into(),
        ];
        for code in CODES {
            words.push(t.quality(code).expect(code).to_string());
        }
        for w in words {
            let lower = w.to_lowercase();
            for banned in ["diagnos", "detect", "détect"] {
                assert!(!lower.contains(banned), "{l}: '{w}'");
            }
        }
        for s in t.classes.short {
            assert!(
                !s.is_empty() && s.chars().count() <= 9,
                "{l}: bar label '{s}'"
            );
        }
        for b in t.screen.buttons {
            assert!(
                b.chars().count() <= 9,
                "{l}: button '{b}' too wide for a 240 px panel"
            );
        }
    }
}

#[test]
fn result_words_and_summary_follow_the_flags_in_every_language() {
    let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let fr = Language::Fr.texts();
    assert_eq!(fr.result("covid", &flags(&["covid"])), "aspect de COVID-19");
    assert_eq!(
        fr.result("normal", &flags(&["covid"])),
        "aspect de COVID-19 possible"
    );
    assert_eq!(
        fr.result("covid", &flags(&["other"])),
        "pas une radiographie thoracique"
    );
    assert_eq!(fr.result("mystery", &[]), "mystery");
    assert_eq!(
        fr.summary(&flags(&["pneumonia"])),
        "Au-dessus du seuil de fonctionnement pour : aspect de pneumonie non COVID. Usage recherche uniquement."
    );
    assert_eq!(fr.short_label("other"), "autre");
    for l in Language::ALL {
        let t = l.texts();
        let s: Vec<String> = [&[][..], &["normal"], &["covid"], &["other", "covid"]]
            .iter()
            .map(|f| t.summary(&flags(f)))
            .collect();
        assert!(s.iter().all(|x| x.ends_with('.')), "{l}: {s:?}");
        let distinct: std::collections::HashSet<&String> = s.iter().collect();
        assert_eq!(distinct.len(), 4, "{l}: {s:?}");
    }
}

#[test]
fn warnings_are_the_records_own_in_english_and_the_tables_otherwise() {
    let msg = "The photo is blurred (focus or camera shake, score 0.41); hold still.";
    assert_eq!(Language::En.texts().warning("blurred", msg), msg);
    let fr = Language::Fr.texts().warning("blurred", msg);
    assert!(fr.starts_with("La photo est floue"), "{fr}");
    assert_eq!(Language::Es.texts().warning("from_the_future", msg), msg);
}

#[test]
fn characters_the_fonts_lack_become_question_marks() {
    assert!(matches!(latin1("Résultat: não é"), Cow::Borrowed(_)));
    assert_eq!(latin1("ÅÉÎÕÜ ñ ç ß ÿ"), "ÅÉÎÕÜ ñ ç ß ÿ");
    assert_eq!(latin1("снимок-01.png"), "??????-01.png");
    assert_eq!(latin1("x光片.dcm"), "x??.dcm");
    assert_eq!(latin1("€ 5 — ok"), "? 5 ? ok", "not in Latin-1 either");
    assert_eq!(latin1("a\tb\nc\u{85}d"), "a b c d");
    assert_eq!(latin1("😀"), "?");
}
