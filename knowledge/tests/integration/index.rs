use std::sync::Arc;

use switchboard_knowledge::{Candidate, KnowledgeError, KnowledgeIndex, Reranker, Synonyms};

use crate::{faq, ids};

fn open() -> (tempfile::TempDir, KnowledgeIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = KnowledgeIndex::open(dir.path()).expect("open");
    (dir, index)
}

fn shop() -> Vec<switchboard_knowledge::FaqRecord> {
    let mut refund = faq(
        "refund",
        "How long does a refund take?",
        "Refunds reach your card in 3-7 days.",
    );
    refund.alternates = vec!["when do I get my money".into()];
    vec![
        faq("ship", "下单后多久发货？", "付款后48小时内发货。"),
        faq("track", "如何查询物流信息？", "在我的订单里点击查看物流。"),
        refund,
        faq(
            "pay",
            "What payment methods do you accept?",
            "WeChat Pay, Alipay and cards.",
        ),
        faq("mixed", "iPhone 怎么申请保修？", "Apple 产品享受一年保修。"),
    ]
}

#[test]
fn finds_chinese_english_and_mixed_text() {
    let (_dir, index) = open();
    index.upsert("t1", &shop(), 1).expect("upsert");
    let none = Synonyms::none();
    assert_eq!(
        ids(&index
            .search("t1", "我的订单什么时候发货", 3, &none)
            .expect("search"))[0],
        "ship"
    );
    assert_eq!(
        ids(&index
            .search("t1", "refunding takes how long", 3, &none)
            .expect("search"))[0],
        "refund"
    );
    assert_eq!(
        ids(&index.search("t1", "IPHONE保修", 3, &none).expect("search"))[0],
        "mixed"
    );
    // Alternates are searched.
    assert_eq!(
        ids(&index.search("t1", "money", 3, &none).expect("search"))[0],
        "refund"
    );
}

#[test]
fn synonyms_expand_the_query() {
    let (_dir, index) = open();
    index.upsert("t1", &shop(), 1).expect("upsert");
    let none = Synonyms::none();
    assert!(index
        .search("t1", "包裹", 3, &none)
        .expect("search")
        .is_empty());
    let synonyms = Synonyms::parse("快递=物流=包裹\nrefund=money back");
    assert_eq!(
        ids(&index.search("t1", "包裹", 3, &synonyms).expect("search"))[0],
        "track"
    );
    let hits = index
        .search("t1", "I want a refund", 3, &synonyms)
        .expect("search");
    assert_eq!(ids(&hits)[0], "refund");
}

#[test]
fn tenants_are_isolated() {
    let (_dir, index) = open();
    index
        .upsert("alpha", &[faq("a1", "退货政策是什么", "七天无理由退货")], 1)
        .expect("upsert");
    index
        .upsert("beta", &[faq("b1", "退货政策是什么", "不支持退货")], 1)
        .expect("upsert");
    let none = Synonyms::none();
    assert_eq!(
        ids(&index.search("alpha", "退货", 10, &none).expect("search")),
        ["a1"]
    );
    assert_eq!(
        ids(&index.search("beta", "退货", 10, &none).expect("search")),
        ["b1"]
    );
    assert!(index
        .search("gamma", "退货", 10, &none)
        .expect("search")
        .is_empty());
    // Structural: each tenant has its own directory and index.
    assert!(index.root().join("alpha").join("meta.json").exists());
    assert!(index.root().join("beta").join("meta.json").exists());
    index.remove_tenant("alpha").expect("remove");
    assert!(index
        .search("alpha", "退货", 10, &none)
        .expect("search")
        .is_empty());
    assert_eq!(
        index
            .search("beta", "退货", 10, &none)
            .expect("search")
            .len(),
        1
    );
}

#[test]
fn bad_tenant_ids_are_rejected_not_used_as_paths() {
    let (_dir, index) = open();
    for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
        let err = index
            .search(bad, "hi", 3, &Synonyms::none())
            .expect_err("bad tenant");
        assert!(matches!(err, KnowledgeError::BadTenant(_)), "{bad}: {err}");
        assert!(matches!(
            index.upsert(bad, &[], 1),
            Err(KnowledgeError::BadTenant(_))
        ));
    }
}

#[test]
fn user_text_is_never_query_syntax() {
    let (_dir, index) = open();
    index.upsert("t1", &shop(), 1).expect("upsert");
    let none = Synonyms::none();
    let long = "退款 refund ".repeat(1_000);
    let very_long = "字".repeat(10_000);
    for text in [
        "",
        " ",
        "\"",
        "(",
        ":",
        "*",
        "~",
        "^",
        "\"(:*~^",
        "?!。，",
        "question:refund",
        "refund~2",
        "a AND OR NOT",
        "+-&&||!(){}[]^\"~*?:\\/",
        &long,
        &very_long,
        "\u{0}\u{ffff}",
        "🙂🙂",
    ] {
        let hits = index
            .search("t1", text, 5, &none)
            .expect("search must answer");
        assert!(hits.len() <= 5);
    }
    assert!(index
        .search("t1", "refund", 0, &none)
        .expect("k=0")
        .is_empty());
    assert!(!index
        .search("t1", "question:refund", 5, &none)
        .expect("search")
        .is_empty());
}

#[test]
fn upsert_delete_and_disable_are_visible_at_once() {
    let (_dir, index) = open();
    let none = Synonyms::none();
    index
        .upsert("t1", &[faq("f1", "怎么开发票", "在订单页申请")], 1)
        .expect("upsert");
    assert_eq!(
        index.search("t1", "发票", 5, &none).expect("search")[0].answer,
        "在订单页申请"
    );
    index
        .upsert("t1", &[faq("f1", "怎么开发票", "结算时选择开具发票")], 2)
        .expect("update");
    let hits = index.search("t1", "发票", 5, &none).expect("search");
    assert_eq!(hits.len(), 1, "an update replaces, never duplicates");
    assert_eq!(hits[0].answer, "结算时选择开具发票");
    let mut disabled = faq("f1", "怎么开发票", "结算时选择开具发票");
    disabled.enabled = false;
    index.upsert("t1", &[disabled], 3).expect("disable");
    assert!(index
        .search("t1", "发票", 5, &none)
        .expect("search")
        .is_empty());
    index
        .upsert("t1", &[faq("f1", "怎么开发票", "x")], 4)
        .expect("enable");
    index.delete("t1", &["f1", "unknown"], 5).expect("delete");
    assert!(index
        .search("t1", "发票", 5, &none)
        .expect("search")
        .is_empty());
    assert_eq!(index.doc_count("t1").expect("count"), 0);
}

#[test]
fn invalid_records_fail_the_write_and_change_nothing() {
    let (_dir, index) = open();
    index
        .upsert("t1", &[faq("ok", "hello", "world")], 1)
        .expect("upsert");
    let err = index
        .upsert("t1", &[faq("ok2", "q", "a"), faq("bad id", "q", "a")], 2)
        .expect_err("invalid");
    assert!(matches!(err, KnowledgeError::BadRecord { .. }), "{err}");
    assert_eq!(index.revision("t1").expect("revision"), Some(1));
    assert_eq!(index.doc_count("t1").expect("count"), 1);
}

#[test]
fn revision_marker_tracks_freshness_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let index = KnowledgeIndex::open(dir.path()).expect("open");
        assert_eq!(
            index.revision("t1").expect("revision"),
            None,
            "missing index is stale"
        );
        assert!(!index.is_fresh("t1", 0).expect("fresh"));
        index.rebuild("t1", &shop(), 41).expect("rebuild");
        index
            .upsert("t1", &[faq("x", "extra", "row")], 42)
            .expect("upsert");
        assert!(index.is_fresh("t1", 42).expect("fresh"));
    }
    let index = KnowledgeIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.revision("t1").expect("revision"), Some(42));
    assert!(
        !index.is_fresh("t1", 43).expect("fresh"),
        "store moved on: stale"
    );
    assert_eq!(index.doc_count("t1").expect("count"), 6);
    // Rebuild replaces everything.
    index
        .rebuild("t1", &[faq("only", "just one", "row")], 43)
        .expect("rebuild");
    assert_eq!(index.doc_count("t1").expect("count"), 1);
    assert!(index.is_fresh("t1", 43).expect("fresh"));
}

#[test]
fn a_damaged_index_reads_stale_and_rebuilds() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("t1")).expect("mkdir");
    std::fs::write(dir.path().join("t1").join("meta.json"), b"not json").expect("write");
    let index = KnowledgeIndex::open(dir.path()).expect("open");
    assert_eq!(index.revision("t1").expect("revision"), None);
    index
        .rebuild("t1", &shop(), 1)
        .expect("rebuild over damage");
    assert_eq!(index.revision("t1").expect("revision"), Some(1));
}

/// An index written by schema version 1 (question and alternates indexed as separate fields):
/// it reads as stale, searches find nothing instead of failing, an upsert before the rebuild keeps
/// it stale, and the rebuild makes it searchable again.
#[test]
fn an_index_of_an_older_schema_reads_stale_and_rebuilds() {
    use tantivy::schema::{Schema, STORED, STRING, TEXT};
    let dir = tempfile::tempdir().expect("tempdir");
    let old_dir = dir.path().join("t1");
    std::fs::create_dir_all(&old_dir).expect("mkdir");
    {
        let mut builder = Schema::builder();
        let id = builder.add_text_field("id", STRING | STORED);
        let question = builder.add_text_field("question", TEXT | STORED);
        builder.add_text_field("alternates", TEXT | STORED);
        builder.add_text_field("answer", TEXT | STORED);
        builder.add_text_field("bigrams", TEXT);
        let old = tantivy::Index::create_in_dir(&old_dir, builder.build()).expect("old index");
        let mut writer: tantivy::IndexWriter = old.writer(15_000_000).expect("writer");
        let mut doc = tantivy::TantivyDocument::new();
        doc.add_text(id, "ship");
        doc.add_text(question, "下单后多久发货？");
        writer.add_document(doc).expect("add");
        let mut commit = writer.prepare_commit().expect("prepare");
        commit.set_payload(r#"{"schema":1,"revision":5}"#);
        commit.commit().expect("commit");
    }
    let index = KnowledgeIndex::open(dir.path()).expect("open");
    assert_eq!(index.revision("t1").expect("revision"), None);
    assert!(!index.is_fresh("t1", 5).expect("fresh"));
    assert!(index
        .search("t1", "发货", 5, &Synonyms::none())
        .expect("search")
        .is_empty());
    // A change arriving before the rebuild: applied, but the index must still read stale.
    index
        .upsert("t1", &[faq("x", "extra", "row")], 6)
        .expect("upsert");
    assert_eq!(index.revision("t1").expect("revision"), None);
    index.rebuild("t1", &shop(), 6).expect("rebuild");
    assert_eq!(index.revision("t1").expect("revision"), Some(6));
    let hits = index
        .search("t1", "多久发货", 5, &Synonyms::none())
        .expect("search");
    assert_eq!(hits.first().map(|c| c.id.as_str()), Some("ship"));
    let hits = index
        .search("t1", "when do I get my money", 5, &Synonyms::none())
        .expect("search");
    assert_eq!(hits.first().map(|c| c.id.as_str()), Some("refund"));
    assert_eq!(
        hits[0].alternates,
        vec!["when do I get my money".to_string()]
    );
    drop(index);
    let index = KnowledgeIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.revision("t1").expect("revision"), Some(6));
}

#[test]
fn shared_across_threads() {
    let (_dir, index) = open();
    let index = Arc::new(index);
    index.upsert("t1", &shop(), 1).expect("upsert");
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let index = index.clone();
            std::thread::spawn(move || {
                for i in 0..20u64 {
                    let id = format!("w{n}-{i}");
                    index
                        .upsert("t1", &[faq(&id, "退款多久到账", "三天")], 100 + i)
                        .expect("upsert");
                    assert!(!index
                        .search("t1", "退款", 3, &Synonyms::none())
                        .expect("search")
                        .is_empty());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    assert_eq!(index.doc_count("t1").expect("count"), 5 + 80);
}

struct Reverse;

impl Reranker for Reverse {
    fn rerank(&self, _query: &str, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        candidates.reverse();
        candidates
    }
}

#[test]
fn reranker_reorders_a_wider_pool() {
    let (_dir, index) = open();
    let records: Vec<_> = (0..30)
        .map(|i| faq(&format!("r{i}"), &format!("退款问题 {i}"), "答案"))
        .collect();
    index.upsert("t1", &records, 1).expect("upsert");
    let plain = index
        .search("t1", "退款", 20, &Synonyms::none())
        .expect("search");
    let reranked = index
        .search_reranked("t1", "退款", 3, &Synonyms::none(), &Reverse)
        .expect("rerank");
    assert_eq!(reranked.len(), 3);
    // The pool was 20 wide (4 × 3, at least 20), so the reversed head is the 20th lexical hit.
    assert_eq!(reranked[0].id, plain[19].id);
}

/// A write merges the index into one segment only when it is large against the index: a rebuild,
/// or an upsert of 1,000 records and a tenth of the index. Small writes into a large index leave
/// their segment to tantivy's merge policy instead of rewriting the whole index each time.
#[test]
fn only_writes_large_against_the_index_merge_it() {
    let (_dir, index) = open();
    let records = |from: usize, count: usize| -> Vec<switchboard_knowledge::FaqRecord> {
        (from..from + count)
            .map(|n| faq(&format!("f{n}"), &format!("question {n}"), "answer"))
            .collect()
    };
    index
        .rebuild("t1", &records(0, 20_000), 1)
        .expect("rebuild");
    assert_eq!(index.segment_count("t1").expect("segments"), 1);
    // 1,000 into 20,000: under a tenth, not merged.
    index
        .upsert("t1", &records(20_000, 1_000), 2)
        .expect("upsert");
    assert_eq!(index.segment_count("t1").expect("segments"), 2);
    // 3,000 into 21,000: over a tenth, merged.
    index
        .upsert("t1", &records(21_000, 3_000), 3)
        .expect("upsert");
    assert_eq!(index.segment_count("t1").expect("segments"), 1);
    assert_eq!(index.revision("t1").expect("revision"), Some(3));
}
