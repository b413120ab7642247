//! The knowledge-gap rows (`store::gaps`), on SQLite and on the local PostgreSQL server.

use store::gaps::{GapClustering, GapGroup, NewGapQuestion};
use store::{ConversationState, CustomerProfile, Entry, StoreError};
use switchboard_channels::ChannelKind;

#[macro_use]
mod common;

use common::Backend;

each_backend!(
    questions_are_kept_grouped_and_groups_stay_dismissed,
    questions_beyond_the_cap_are_pruned_newest_kept,
);

fn question(tenant: &str, conversation: &str, seq: i64, text: &str) -> NewGapQuestion {
    NewGapQuestion {
        tenant: tenant.into(),
        conversation_id: conversation.into(),
        seq,
        text: text.into(),
        decision: "clarify".into(),
        reason: "low_confidence".into(),
        confidence: 0.42,
        suggestions: vec!["How much is shipping?".into()],
    }
}

async fn questions_are_kept_grouped_and_groups_stay_dismissed(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    let entry = Entry {
        state: ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    };
    let stored = store
        .append_customer_message(&customer, Some("c1"), "can I pay with crypto?", &entry)
        .await
        .unwrap();
    let conversation = stored.conversation.id.clone();
    let first = store
        .record_gap_question(&question("t1", &conversation, 1, "can I pay with crypto?"))
        .await
        .unwrap();
    let second = store
        .record_gap_question(&question("t1", &conversation, 3, "bitcoin accepted?"))
        .await
        .unwrap();
    store
        .record_gap_question(&question("t2", "other", 1, "another tenant's"))
        .await
        .unwrap();
    // An unknown tenant's question is refused.
    assert!(store
        .record_gap_question(&question("nobody", "x", 1, "x"))
        .await
        .is_err());

    let open = store.unclustered_gap_questions("t1", 10).await.unwrap();
    assert_eq!(
        open.iter().map(|q| q.text.as_str()).collect::<Vec<_>>(),
        ["can I pay with crypto?", "bitcoin accepted?"],
        "oldest first, this tenant's only"
    );
    assert_eq!(open[0].suggestions, ["How much is shipping?"]);
    assert!((open[0].confidence - 0.42).abs() < 1e-6);
    assert!(open[0].embedding.is_none());
    // The cap on questions considered keeps the newest.
    let newest = store.unclustered_gap_questions("t1", 1).await.unwrap();
    assert_eq!(newest[0].id, second);

    let group_id = store.new_gap_group_id();
    let group = GapGroup {
        id: group_id.clone(),
        centroid: vec![0.6, 0.8, 0.0],
        label: "can I pay with crypto?".into(),
        dismissed: false,
        faq_id: None,
        created_at: 0,
        updated_at: 0,
    };
    store
        .save_gap_clustering(
            "t1",
            &GapClustering {
                groups: vec![group.clone()],
                assignments: vec![(first, group_id.clone()), (second, group_id.clone())],
                embeddings: vec![(first, vec![1.0, 0.0, 0.0]), (second, vec![0.0, 1.0, 0.0])],
                answered: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert!(store
        .unclustered_gap_questions("t1", 10)
        .await
        .unwrap()
        .is_empty());
    let members = store
        .gap_group_questions("t1", &group_id, 10)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].id, second, "newest first");
    assert_eq!(members[0].embedding.as_deref(), Some(&[0.0, 1.0, 0.0][..]));
    let stored_group = store.gap_group("t1", &group_id).await.unwrap().unwrap();
    assert_eq!(stored_group.centroid, [0.6, 0.8, 0.0]);
    assert!(!stored_group.dismissed);
    assert!(store.gap_group("t2", &group_id).await.unwrap().is_none());

    let now = store::util::now_ms();
    let stats = store.gap_group_stats("t1", 7, now).await.unwrap();
    let counted = &stats[&group_id];
    assert_eq!(counted.count, 2);
    assert_eq!(counted.per_day, [0, 0, 0, 0, 0, 0, 2]);
    assert!(counted.last_at <= now && counted.last_at > now - 60_000);

    // Dismissed stays dismissed when a later clustering updates the group.
    store
        .set_gap_group_dismissed("t1", &group_id, true)
        .await
        .unwrap();
    store
        .set_gap_group_faq("t1", &group_id, "faq-crypto")
        .await
        .unwrap();
    let third = store
        .record_gap_question(&question("t1", &conversation, 5, "do you take ethereum"))
        .await
        .unwrap();
    store
        .save_gap_clustering(
            "t1",
            &GapClustering {
                groups: vec![GapGroup {
                    centroid: vec![0.6, 1.8, 0.0],
                    label: "bitcoin accepted?".into(),
                    ..group
                }],
                assignments: vec![(third, group_id.clone()), (first, "gap_elsewhere".into())],
                embeddings: Vec::new(),
                answered: Vec::new(),
            },
        )
        .await
        .unwrap();
    let again = store.gap_group("t1", &group_id).await.unwrap().unwrap();
    assert!(again.dismissed);
    assert_eq!(again.faq_id.as_deref(), Some("faq-crypto"));
    assert_eq!(again.label, "bitcoin accepted?");
    assert_eq!(again.centroid, [0.6, 1.8, 0.0]);
    let members = store
        .gap_group_questions("t1", &group_id, 10)
        .await
        .unwrap();
    assert_eq!(members.len(), 3, "a question keeps its first group");
    // Restoring, and groups that do not exist.
    store
        .set_gap_group_dismissed("t1", &group_id, false)
        .await
        .unwrap();
    assert!(
        !store
            .gap_group("t1", &group_id)
            .await
            .unwrap()
            .unwrap()
            .dismissed
    );
    assert!(matches!(
        store.set_gap_group_dismissed("t2", &group_id, true).await,
        Err(StoreError::NotFound(_))
    ));
    // A clarify answered after all is dropped.
    store
        .save_gap_clustering(
            "t1",
            &GapClustering {
                answered: vec![third],
                ..GapClustering::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.gap_group_stats("t1", 7, now).await.unwrap()[&group_id].count,
        2
    );

    // The reply an agent gave after the question.
    let agent = store
        .create_agent("t1", "Alice", &["general".into()], 5)
        .await
        .unwrap();
    store
        .assign(&conversation, &agent, "joined")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .first_message_after(&conversation, 1, "agent")
            .await
            .unwrap(),
        None
    );
    store
        .append_agent_message(
            &conversation,
            &agent.id,
            "a1",
            "We accept cards and Alipay, not crypto.",
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .first_message_after(&conversation, 1, "agent")
            .await
            .unwrap()
            .as_deref(),
        Some("We accept cards and Alipay, not crypto.")
    );
    assert_eq!(
        store
            .first_message_after(&conversation, 10, "agent")
            .await
            .unwrap(),
        None
    );
}

async fn questions_beyond_the_cap_are_pruned_newest_kept(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let mut ids = Vec::new();
    for index in 0..30 {
        ids.push(
            store
                .record_gap_question(&question("t1", "c", index, &format!("q{index}")))
                .await
                .unwrap(),
        );
    }
    store
        .record_gap_question(&question("t2", "c", 0, "kept"))
        .await
        .unwrap();
    // Groups whose questions all go with the prune: an empty one goes too, unless it was
    // dismissed; one with a kept question stays.
    let group = |label: &str| GapGroup {
        id: store.new_gap_group_id(),
        centroid: vec![1.0, 0.0, 0.0],
        label: label.into(),
        dismissed: false,
        faq_id: None,
        created_at: 0,
        updated_at: 0,
    };
    let (emptied, dismissed, kept) = (group("emptied"), group("dismissed"), group("kept"));
    store
        .save_gap_clustering(
            "t1",
            &GapClustering {
                groups: vec![emptied.clone(), dismissed.clone(), kept.clone()],
                assignments: vec![
                    (ids[0], emptied.id.clone()),
                    (ids[1], emptied.id.clone()),
                    (ids[2], dismissed.id.clone()),
                    (ids[3], kept.id.clone()),
                    (ids[25], kept.id.clone()),
                ],
                ..GapClustering::default()
            },
        )
        .await
        .unwrap();
    store
        .set_gap_group_dismissed("t1", &dismissed.id, true)
        .await
        .unwrap();
    assert_eq!(store.prune_gap_questions("t1", 10).await.unwrap(), 20);
    let mut groups: Vec<String> = store
        .gap_groups("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.label)
        .collect();
    groups.sort();
    assert_eq!(groups, ["dismissed", "kept"]);
    let kept = store.unclustered_gap_questions("t1", 100).await.unwrap();
    assert_eq!(
        kept.iter().map(|q| q.text.clone()).collect::<Vec<_>>(),
        (20..30)
            .filter(|i| *i != 25)
            .map(|i| format!("q{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.prune_gap_questions("t1", 10).await.unwrap(), 0);
    assert_eq!(
        store
            .unclustered_gap_questions("t2", 100)
            .await
            .unwrap()
            .len(),
        1,
        "another tenant's rows are untouched"
    );
}
