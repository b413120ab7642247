use switchboard_knowledge::{
    parse_import, write_csv, write_jsonl, FaqRecord, ImportError, ImportFormat, ParsedImport,
    RowError,
};

fn records(parsed: &ParsedImport) -> Vec<FaqRecord> {
    parsed.records.iter().map(|r| r.record.clone()).collect()
}

fn sample() -> Vec<FaqRecord> {
    vec![
        FaqRecord {
            id: "zh-1".into(),
            question: "运费怎么算？".into(),
            answer: "满99元包邮，\n否则8元。".into(),
            alternates: vec!["邮费多少".into(), "a|b with \\ and |".into()],
            tags: vec!["shipping".into()],
            locale: "zh".into(),
            enabled: true,
            updated_at_ms: 1_700_000_000_000,
        },
        FaqRecord {
            id: "en-1".into(),
            question: "Do you ship \"abroad\", e.g. to Paris?".into(),
            answer: "No, mainland China only.".into(),
            alternates: vec![],
            tags: vec![],
            locale: "en".into(),
            enabled: false,
            updated_at_ms: 0,
        },
    ]
}

#[test]
fn jsonl_round_trip() {
    let mut out = Vec::new();
    write_jsonl(&mut out, &sample()).expect("write");
    let parsed = parse_import(&out, None).expect("parse");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(records(&parsed), sample());
}

#[test]
fn csv_round_trip() {
    let mut out = Vec::new();
    write_csv(&mut out, &sample()).expect("write");
    let parsed = parse_import(&out, Some(ImportFormat::Csv)).expect("parse");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(records(&parsed), sample());
    assert_eq!(ImportFormat::sniff(&out), Some(ImportFormat::Csv));
}

#[test]
fn jsonl_bad_rows_are_reported_with_line_numbers() {
    let text = concat!(
        "{\"id\":\"a\",\"question\":\"q1\",\"answer\":\"a1\"}\n",
        "\n",
        "{\"id\":\"b\",\"question\":\"\",\"answer\":\"a2\"}\n",
        "not json\n",
        "[1,2]\n",
        "{\"id\":\"c\",\"question\":\"q3\",\"answer\":\"a3\",\"alternates\":\"oops\"}\n",
        "{\"id\":\"a\",\"question\":\"q1 again\",\"answer\":\"a\"}\n",
        "{\"id\":\"bad id\",\"question\":\"q\",\"answer\":\"a\"}\n",
        "{\"question\":\"no id here\",\"answer\":\"fine\"}\n",
    );
    let parsed = parse_import(text.as_bytes(), Some(ImportFormat::Jsonl)).expect("parse");
    let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8], "{:?}", parsed.errors);
    assert_eq!(
        parsed.errors[0],
        RowError {
            line: 3,
            message: "question is empty".into()
        }
    );
    assert!(
        parsed.errors[4].message.contains("duplicate id"),
        "{:?}",
        parsed.errors[4]
    );
    for error in &parsed.errors {
        assert!(!error.message.ends_with('.'), "{error:?}");
    }
    let good: Vec<usize> = parsed.records.iter().map(|r| r.line).collect();
    assert_eq!(good, [1, 9]);
    assert!(
        parsed.records[1].record.id.starts_with("faq-"),
        "missing ids are derived"
    );
    assert_eq!(parsed.records[1].record.locale, "en");
}

#[test]
fn csv_bad_rows_are_reported_with_line_numbers() {
    let text = "question,answer,id,enabled\n\
                怎么退货,七天内申请,r1,true\n\
                ,no question,r2,true\n\
                \"multi\nline question\",answer,r3,yes\n\
                q4,a4,r4,maybe\n\
                q5,a5,r5\n";
    let parsed = parse_import(text.as_bytes(), None).expect("parse");
    assert_eq!(
        parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [3, 6]
    );
    assert!(
        parsed.errors[1].message.contains("enabled"),
        "{:?}",
        parsed.errors
    );
    assert_eq!(
        parsed.records.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 4, 7]
    );
    assert_eq!(parsed.records[1].record.question, "multi\nline question");
}

#[test]
fn files_that_are_not_what_they_claim_are_typed_errors() {
    let csv = b"question,answer\nq,a\n";
    assert_eq!(
        parse_import(csv, Some(ImportFormat::Jsonl)),
        Err(ImportError::NotJsonLines)
    );
    assert_eq!(
        parse_import(b"id,title\n1,x\n", Some(ImportFormat::Csv)),
        Err(ImportError::MissingColumn("question"))
    );
    assert_eq!(
        parse_import(b"\xff\xfe\x00garbage", Some(ImportFormat::Csv)),
        Err(ImportError::NotUtf8)
    );
    assert!(matches!(
        parse_import(b"plain text", Some(ImportFormat::Xlsx)),
        Err(ImportError::NotXlsx(_))
    ));
    assert_eq!(
        parse_import(b"hello world", None),
        Err(ImportError::Unrecognised)
    );
    let xlsx = include_bytes!("../fixtures/faqs.xlsx");
    assert!(matches!(
        parse_import(xlsx, Some(ImportFormat::Csv)),
        Err(ImportError::Mismatch { .. })
    ));
    assert!(matches!(
        parse_import(b"PK\x03\x04broken zip", None),
        Err(ImportError::NotXlsx(_))
    ));
    for err in [
        ImportError::NotJsonLines,
        ImportError::NotUtf8,
        ImportError::MissingColumn("answer"),
    ] {
        let message = err.to_string();
        assert!(
            !message.ends_with('.') && message.chars().next().is_some_and(|c| c.is_lowercase()),
            "{message}"
        );
    }
}

#[test]
fn format_names() {
    assert_eq!(ImportFormat::from_name("JSONL"), Ok(ImportFormat::Jsonl));
    assert_eq!(ImportFormat::from_name("faqs.csv"), Ok(ImportFormat::Csv));
    assert_eq!(
        ImportFormat::from_name("application/x-ndjson"),
        Ok(ImportFormat::Jsonl)
    );
    assert_eq!(
        ImportFormat::from_name(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        ),
        Ok(ImportFormat::Xlsx)
    );
    assert!(matches!(
        ImportFormat::from_name("pdf"),
        Err(ImportError::UnknownFormat(_))
    ));
}

#[test]
fn xlsx_fixture_imports_with_row_errors() {
    let xlsx = include_bytes!("../fixtures/faqs.xlsx");
    assert_eq!(ImportFormat::sniff(xlsx), Some(ImportFormat::Xlsx));
    let parsed = parse_import(xlsx, None).expect("parse");
    assert_eq!(
        parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [4, 6],
        "{:?}",
        parsed.errors
    );
    assert_eq!(parsed.errors[0].message, "answer is empty");
    let got = records(&parsed);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].alternates, ["什么时候发货", "几天发出"]);
    assert_eq!(got[1].tags, ["refunds", "payment"]);
    assert!(got[2].id.starts_with("faq-") && got[2].locale == "zh");
    assert_eq!(got[3].answer, "42");
    assert!(!got[3].enabled);
    // XLSX → CSV → import gives the same records.
    let mut csv = Vec::new();
    write_csv(&mut csv, &got).expect("write");
    assert_eq!(records(&parse_import(&csv, None).expect("parse")), got);
}

#[test]
fn demo_knowledge_base_parses_cleanly() {
    let bytes = include_bytes!("../../demo/faqs.jsonl");
    let parsed = parse_import(bytes, None).expect("parse");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let zh = parsed
        .records
        .iter()
        .filter(|r| r.record.locale == "zh")
        .count();
    let en = parsed
        .records
        .iter()
        .filter(|r| r.record.locale == "en")
        .count();
    assert!(zh >= 30 && en >= 10, "zh {zh} en {en}");
    assert!(parsed
        .records
        .iter()
        .all(|r| !r.record.alternates.is_empty()));
}

fn hostile_rows() -> String {
    use switchboard_knowledge::testing::cell;
    format!(
        r#"<row r="1">{}{}</row><row r="2">{}{}</row>"#,
        cell("A1", "question"),
        cell("B1", "answer"),
        cell("A2", "Where is my order?"),
        cell("B2", "In the order page.")
    )
}

#[test]
fn xlsx_cell_at_the_last_column_and_row_is_refused_without_a_dense_grid() {
    use switchboard_knowledge::testing::{cell, xlsx};
    // One cell at XFD1048576: calamine's dense range would be 17 billion cells.
    let far = format!(
        r#"{}<row r="1048576">{}</row>"#,
        hostile_rows(),
        cell("XFD1048576", "x")
    );
    // Declared by the dimension, and without any dimension (the cell itself).
    for dimension in [Some("A1:XFD1048576"), None] {
        let bytes = xlsx(&far, dimension, None);
        match parse_import(&bytes, Some(ImportFormat::Xlsx)) {
            Err(ImportError::XlsxTooLarge(why)) => assert!(why.contains("column"), "{why}"),
            other => panic!("{dimension:?}: {other:?}"),
        }
    }
    // A far row in a narrow sheet is fine: rows are read sparsely.
    let tall = format!(
        r#"{}<row r="1048576">{}{}</row>"#,
        hostile_rows(),
        cell("A1048576", "Last question?"),
        cell("B1048576", "Last answer.")
    );
    let parsed = parse_import(&xlsx(&tall, Some("A1:B1048576"), None), None).expect("parse");
    assert_eq!(
        parsed.records.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 1_048_576]
    );
}

#[test]
fn xlsx_deflate_bomb_in_shared_strings_is_refused_before_parsing() {
    use switchboard_knowledge::testing::xlsx;
    // 8 MiB of one letter deflates to a few KiB: a ratio far beyond any spreadsheet's.
    let mut strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>"#.to_vec();
    strings.extend(std::iter::repeat_n(b'a', 8 << 20));
    strings.extend_from_slice(b"</t></si></sst>");
    let bytes = xlsx(&hostile_rows(), Some("A1:B2"), Some(&strings));
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    match parse_import(&bytes, Some(ImportFormat::Xlsx)) {
        Err(ImportError::XlsxTooLarge(why)) => {
            assert!(why.contains("xl/sharedStrings.xml"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // The same workbook with a small shared-strings part imports.
    let small = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>unused</t></si></sst>"#;
    let parsed =
        parse_import(&xlsx(&hostile_rows(), Some("A1:B2"), Some(small)), None).expect("parse");
    assert_eq!(parsed.records.len(), 1);
    assert!(parsed.errors.is_empty());
}

#[test]
fn xlsx_cells_naming_one_long_shared_string_are_refused_past_the_text_budget() {
    use switchboard_knowledge::testing::xlsx;
    use switchboard_knowledge::MAX_XLSX_TEXT_BYTES;
    // Just under the size whose compression ratio is checked: one string of ~1 MB.
    let mut strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>question</t></si><si><t>answer</t></si><si><t>"#.to_vec();
    strings.extend(std::iter::repeat_n(b'a', 1_000_000));
    strings.extend_from_slice(b"</t></si></sst>");
    // Every cell names it: each would be a copy of its own (200 MB from a file of a few KB).
    let copies = MAX_XLSX_TEXT_BYTES / 1_000_000 + 2;
    let mut rows = String::from(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>"#,
    );
    for row in 2..copies + 2 {
        rows.push_str(&format!(
            r#"<row r="{row}"><c r="A{row}" t="s"><v>2</v></c></row>"#
        ));
    }
    let bytes = xlsx(&rows, None, Some(&strings));
    assert!(bytes.len() < 64 << 10, "{}", bytes.len());
    match parse_import(&bytes, Some(ImportFormat::Xlsx)) {
        Err(ImportError::XlsxTooLarge(why)) => assert!(why.contains("bytes of text"), "{why}"),
        other => panic!("{:?}", other.map(|p| p.records.len())),
    }
    // A few such cells are read (and their rows fail on their own: no answer).
    let few = format!(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c></row>"#
    );
    let parsed = parse_import(&xlsx(&few, None, Some(&strings)), None).expect("parse");
    assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
}

#[test]
fn xlsx_cell_naming_a_missing_shared_string_is_a_bad_file_not_a_panic() {
    use switchboard_knowledge::testing::xlsx;
    let rows = r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>7</v></c></row>"#;
    let strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>question</t></si></sst>"#;
    for shared in [None, Some(&strings[..])] {
        match parse_import(&xlsx(rows, None, shared), Some(ImportFormat::Xlsx)) {
            Err(ImportError::NotXlsx(why)) => assert!(why.contains("malformed"), "{why}"),
            other => panic!("{shared:?}: {other:?}"),
        }
    }
}

/// What a file of bad rows costs: at most `MAX_ROW_ERRORS` errors listed (the rest counted), each
/// message cut short, a bad cell quoted only in part; lists of a million items are never made
/// into a million strings (the record is still refused for having too many).
#[test]
fn a_file_of_bad_rows_makes_a_bounded_report() {
    use switchboard_knowledge::MAX_ROW_ERRORS;
    let bad_locale = "\u{1}".repeat(100_000);
    let mut text = String::from("question,answer,locale\n");
    for n in 0..MAX_ROW_ERRORS + 500 {
        text.push_str(&format!("q{n},a{n},{bad_locale}\n"));
    }
    let parsed = parse_import(text.as_bytes(), Some(ImportFormat::Csv)).expect("parse");
    assert_eq!(parsed.errors.len(), MAX_ROW_ERRORS);
    assert_eq!(parsed.errors_dropped, 500);
    assert!(parsed
        .errors
        .iter()
        .all(|e| e.message.chars().count() <= 301));
    assert!(
        parsed.errors[0].message.starts_with("locale \"\\u{1}"),
        "{:?}",
        parsed.errors[0]
    );

    // A million empty alternates in a CSV cell, a million in a JSON line.
    let cell = "|".repeat(1_000_000);
    let csv = format!("question,answer,alternates\nq,a,{cell}x|y\n");
    let parsed = parse_import(csv.as_bytes(), Some(ImportFormat::Csv)).expect("parse");
    assert_eq!(parsed.records[0].record.alternates, ["x", "y"]);
    let many: Vec<String> = (0..1_000).map(|n| format!("alt{n}")).collect();
    let csv = format!("question,answer,alternates\nq,a,{}\n", many.join("|"));
    let parsed = parse_import(csv.as_bytes(), Some(ImportFormat::Csv)).expect("parse");
    assert!(parsed.records.is_empty());
    assert!(
        parsed.errors[0].message.contains("alternates"),
        "{:?}",
        parsed.errors
    );
    let list: Vec<String> = (0..1_000_000).map(|n| format!("\"t{n}\"")).collect();
    let list = list.join(",");
    let jsonl = format!(
        "{{\"question\":\"q\",\"answer\":\"a\",\"tags\":[{list}],\"extra\":[{}]}}\n",
        vec!["0"; 1_000_000].join(",")
    );
    let parsed = parse_import(jsonl.as_bytes(), Some(ImportFormat::Jsonl)).expect("parse");
    assert!(
        parsed.records.is_empty(),
        "51 tags kept: more than a record may have"
    );
    assert!(
        parsed.errors[0].message.contains("tags"),
        "{:?}",
        parsed.errors
    );
}
