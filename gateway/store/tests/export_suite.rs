//! The reads of exports (`store::export`), on SQLite and on the local PostgreSQL server.

use store::export::{ExportCursor, ExportFilter};
use store::{ConversationState, CustomerProfile, Entry, Store};
use switchboard_channels::ChannelKind;

#[macro_use]
mod common;

use common::Backend;

each_backend!(
    export_pages_cover_every_conversation_once_in_order,
    export_filters_and_the_page_contents,
    a_long_conversation_is_read_in_pages_by_seq,
    an_episode_starts_after_the_last_message_before_it,
);

fn entry(skill_group: &str) -> Entry {
    Entry {
        state: ConversationState::Queued,
        skill_group: skill_group.into(),
        priority: 0,
    }
}

/// A conversation of a new visitor with `messages` customer messages; answers its id.
async fn conversation(
    store: &Store,
    tenant: &str,
    channel: ChannelKind,
    visitor: &str,
    skill_group: &str,
    messages: usize,
) -> String {
    let customer = store
        .customer_for_identity(tenant, channel, visitor, &CustomerProfile::default())
        .await
        .unwrap();
    let mut id = String::new();
    for index in 0..messages {
        id = store
            .append_customer_message(
                &customer,
                Some(&format!("m{index}")),
                &format!("{visitor} says {index}"),
                &entry(skill_group),
            )
            .await
            .unwrap()
            .conversation
            .id;
    }
    id
}

async fn export_pages_cover_every_conversation_once_in_order(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    // Created quickly: many share an `updated_at`, so pages must split ties by id.
    let mut expected = Vec::new();
    for index in 0..23 {
        expected.push(
            conversation(
                store,
                "t1",
                ChannelKind::Web,
                &format!("v{index}"),
                "general",
                1,
            )
            .await,
        );
    }
    conversation(store, "t2", ChannelKind::Web, "other", "general", 1).await;
    let filter = ExportFilter::default();
    let mut seen = Vec::new();
    let mut after: Option<ExportCursor> = None;
    loop {
        let page = store
            .export_conversations("t1", &filter, after.as_ref(), 5)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().map(|item| item.cursor());
        seen.extend(page);
    }
    let keys: Vec<(i64, String)> = seen
        .iter()
        .map(|item| (item.conversation.updated_at, item.conversation.id.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "pages in (updated_at, id) order, none twice");
    let mut ids: Vec<String> = keys.into_iter().map(|(_, id)| id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "every conversation of t1, none of t2");
}

async fn export_filters_and_the_page_contents(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let web = conversation(store, "t1", ChannelKind::Web, "w", "general", 3).await;
    let wechat = conversation(store, "t1", ChannelKind::Wechat, "x", "sales", 2).await;
    let other = conversation(store, "t2", ChannelKind::Web, "o", "general", 1).await;
    let agent = store
        .create_agent("t1", "Ann", &["sales".into()], 5)
        .await
        .unwrap();
    store
        .assign(&wechat, &agent, "joined")
        .await
        .unwrap()
        .unwrap();
    store
        .append_agent_message(&wechat, &agent.id, "a1", "hello from Ann")
        .await
        .unwrap();

    let ids = |filter: ExportFilter| async move {
        let page = store
            .export_conversations("t1", &filter, None, 100)
            .await
            .unwrap();
        page.into_iter()
            .map(|item| item.conversation.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(ExportFilter::default()).await.len(), 2);
    let by_channel = ExportFilter {
        channel: Some("wechat".into()),
        ..Default::default()
    };
    assert_eq!(ids(by_channel).await, vec![wechat.clone()]);
    let by_group = ExportFilter {
        skill_group: Some("general".into()),
        ..Default::default()
    };
    assert_eq!(ids(by_group).await, vec![web.clone()]);
    let by_agent = ExportFilter {
        agent: Some(agent.id.clone()),
        ..Default::default()
    };
    assert_eq!(ids(by_agent).await, vec![wechat.clone()]);
    let nobody = ExportFilter {
        agent: Some("ag_nobody".into()),
        ..Default::default()
    };
    assert!(ids(nobody).await.is_empty());
    // The period is over the last activity: `updated_at` in [from, to).
    let all = store
        .export_conversations("t1", &ExportFilter::default(), None, 100)
        .await
        .unwrap();
    let latest = all
        .iter()
        .map(|item| item.conversation.updated_at)
        .max()
        .unwrap();
    let after_all = ExportFilter {
        from: Some(latest + 1),
        ..Default::default()
    };
    assert!(ids(after_all).await.is_empty());
    let up_to_latest = ExportFilter {
        to: Some(latest),
        ..Default::default()
    };
    assert!(!ids(up_to_latest).await.contains(&wechat));
    let through_latest = ExportFilter {
        from: Some(latest),
        to: Some(latest + 1),
        ..Default::default()
    };
    assert!(ids(through_latest).await.contains(&wechat));

    // Messages and events of the page's conversations, of this tenant only.
    let asked = vec![web.clone(), wechat.clone(), other.clone()];
    let messages = store.export_messages("t1", &asked).await.unwrap();
    let wechat_seq = store.conversation(&wechat).await.unwrap().unwrap().last_seq;
    // Two from the customer, the assignment's notice, Ann's reply.
    assert_eq!(wechat_seq, 4);
    assert_eq!(
        messages.len() as i64,
        3 + wechat_seq,
        "t2's message is not listed"
    );
    assert!(messages.iter().all(|m| m.conversation_id != other));
    for pair in messages.windows(2) {
        assert!(
            (pair[0].conversation_id.as_str(), pair[0].seq)
                < (pair[1].conversation_id.as_str(), pair[1].seq),
            "by conversation, then seq"
        );
    }
    assert!(messages
        .iter()
        .any(|m| m.text == "hello from Ann" && m.sender_id.as_deref() == Some(agent.id.as_str())));
    let events = store.export_events("t1", &asked).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.conversation_id == wechat && e.kind == "assigned"));
    assert!(events.iter().all(|e| e.conversation_id != other));
    assert!(store.export_messages("t1", &[]).await.unwrap().is_empty());
    assert!(store.export_events("t2", &[web]).await.unwrap().is_empty());
}

async fn a_long_conversation_is_read_in_pages_by_seq(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let id = conversation(store, "t1", ChannelKind::Web, "v", "general", 7).await;
    conversation(store, "t1", ChannelKind::Web, "w", "general", 3).await;
    let whole = store.export_messages("t1", &[id.clone()]).await.unwrap();
    assert_eq!(whole.len(), 7);
    // Pages of 3 up to seq 7: 3, 3, 1; each after the last seq of the one before.
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .export_message_page("t1", &id, after, 7, 3)
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.seq;
        let short = page.len() < 3;
        pages.push(page);
        if short {
            break;
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let paged: Vec<_> = pages.concat();
    let key = |m: &store::MessageRecord| (m.conversation_id.clone(), m.seq, m.text.clone());
    assert_eq!(
        paged.iter().map(key).collect::<Vec<_>>(),
        whole.iter().map(key).collect::<Vec<_>>(),
        "the same messages as one read, in seq order"
    );
    // Never past `up_to`, never another tenant's.
    let bounded = store
        .export_message_page("t1", &id, 2, 5, 100)
        .await
        .unwrap();
    assert_eq!(
        bounded.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(store
        .export_message_page("t2", &id, 0, 7, 100)
        .await
        .unwrap()
        .is_empty());
}

async fn an_episode_starts_after_the_last_message_before_it(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let id = conversation(store, "t1", ChannelKind::Web, "v", "general", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v", &CustomerProfile::default())
        .await
        .unwrap();
    let fourth = store
        .append_customer_message(&customer, Some("later"), "later", &entry("general"))
        .await
        .unwrap()
        .message;
    assert_eq!(fourth.seq, 4);
    assert_eq!(
        store.last_seq_before(&id, fourth.created_at).await.unwrap(),
        3
    );
    assert_eq!(
        store
            .last_seq_before(&id, fourth.created_at + 1)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store.last_seq_before(&id, 0).await.unwrap(),
        0,
        "none before"
    );
    assert_eq!(
        store.last_seq_before("cv_nobody", i64::MAX).await.unwrap(),
        0
    );
}
