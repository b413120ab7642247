//! One store test suite, run on SQLite and on the local PostgreSQL server.

use std::sync::Arc;

use store::crypto::{FieldCipher, SecretKey};
use store::{
    Actor, ConversationFilter, ConversationState, Customer, CustomerProfile, Entry, NewMessage,
    Store, StoreError, UnsureStreak,
};
use switchboard_channels::ChannelKind;

#[macro_use]
mod common;

use common::Backend;

each_backend!(
    tenants_are_unique,
    messages_get_contiguous_seqs_and_dedup,
    concurrent_sends_never_share_or_skip_a_seq,
    assignment_is_exclusive_under_contention,
    queue_order_priority_then_waiting_with_requeue_at_head,
    close_reopen_and_the_event_log,
    contact_fields_need_the_key,
    listing_filters_and_pages,
    canned_reply_shortcuts_are_unique_per_tenant,
    channel_app_secrets_need_the_key,
    linked_customers_share_the_first_linked_conversation,
    outbox_rows_are_written_once_and_claimed_once,
    the_outbox_scan_never_sends_a_route_the_replies_from_before_it,
    bot_messages_and_handoff_only_while_with_the_bot,
    policies_intents_words_and_scores_round_trip,
    one_batch_stores_what_single_appends_would,
    the_writer_stores_what_single_appends_would,
    concurrent_batches_keep_every_conversation_contiguous,
    submitted_messages_keep_each_senders_order,
    members_sessions_and_the_audit_log,
    jobs_and_settings_changes,
    episodes_ratings_and_the_idle_close,
    coalesced_acks_keep_the_highest_and_are_written,
    text_postgresql_cannot_store_is_bad_input,
    a_page_of_messages_stops_at_its_rows_or_its_bytes,
);

fn queued() -> Entry {
    Entry {
        state: ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    }
}

async fn tenants_are_unique(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "hash").await.unwrap();
    assert!(matches!(
        store.create_tenant("t1", "other").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.tenant("t1").await.unwrap().unwrap().admin_key_hash,
        "hash"
    );
    assert!(store.tenant("t2").await.unwrap().is_none());
}

async fn messages_get_contiguous_seqs_and_dedup(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    // The same identity is the same customer.
    let again = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    assert_eq!(customer.id, again.id);
    let first = store
        .append_customer_message(&customer, Some("a"), "one", &queued())
        .await
        .unwrap();
    assert!(first.created && !first.duplicate);
    assert_eq!(first.message.seq, 1);
    let second = store
        .append_customer_message(&customer, Some("b"), "two", &queued())
        .await
        .unwrap();
    assert_eq!(second.message.seq, 2);
    assert!(!second.created);
    let repeat = store
        .append_customer_message(&customer, Some("a"), "one", &queued())
        .await
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.message, first.message);
    let third = store
        .append_customer_message(&customer, Some("c"), "three", &queued())
        .await
        .unwrap();
    assert_eq!(third.message.seq, 3, "a duplicate does not use up a seq");
    let after = store
        .messages_after(&first.conversation.id, 1, 100)
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["two", "three"]
    );
    let recent = store
        .recent_messages(&first.conversation.id, 2)
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
}

async fn concurrent_sends_never_share_or_skip_a_seq(backend: &Backend) {
    let store = backend.store.clone();
    store.create_tenant("t1", "h").await.unwrap();
    let customer = Arc::new(
        store
            .customer_for_identity("t1", ChannelKind::Web, "v", &CustomerProfile::default())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for index in 0..40 {
        let (store, customer) = (store.clone(), customer.clone());
        // Every id is sent twice, concurrently.
        let id = format!("m{}", index % 20);
        tasks.push(tokio::spawn(async move {
            store
                .append_customer_message(&customer, Some(&id), &id, &queued())
                .await
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        let appended = task.await.unwrap().expect("append");
        if !appended.duplicate {
            stored.push(appended.message.seq);
        }
    }
    stored.sort();
    assert_eq!(stored, (1..=20).collect::<Vec<_>>());
    let conversation = store
        .conversation_for_customer(&customer.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.last_seq, 20);
    assert_eq!(
        store
            .messages_after(&conversation.id, 0, 100)
            .await
            .unwrap()
            .len(),
        20
    );
}

async fn assignment_is_exclusive_under_contention(backend: &Backend) {
    let store = backend.store.clone();
    store.create_tenant("t1", "h").await.unwrap();
    let mut agents = Vec::new();
    for index in 0..4 {
        agents.push(
            store
                .create_agent("t1", &format!("agent {index}"), &["general".into()], 5)
                .await
                .unwrap(),
        );
    }
    let mut conversations = Vec::new();
    for index in 0..5 {
        conversations.push(waiting_customer(&store, "t1", &format!("v{index}")).await.1);
    }
    let mut tasks = Vec::new();
    for conversation in &conversations {
        for agent in &agents {
            let (store, conversation, agent) = (store.clone(), conversation.clone(), agent.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .assign(&conversation, &agent, "joined")
                    .await
                    .map(|r| r.is_some())
            }));
        }
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(
        winners,
        conversations.len(),
        "each conversation is assigned exactly once"
    );
    let loads = store.agent_loads("t1").await.unwrap();
    assert_eq!(loads.values().sum::<i64>(), 5);
}

async fn queue_order_priority_then_waiting_with_requeue_at_head(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let mut ids = Vec::new();
    for (index, priority) in [0, 5, 0].iter().enumerate() {
        let customer = store
            .customer_for_identity(
                "t1",
                ChannelKind::Web,
                &format!("v{index}"),
                &CustomerProfile::default(),
            )
            .await
            .unwrap();
        let entry = Entry {
            priority: *priority,
            ..queued()
        };
        ids.push(
            store
                .append_customer_message(&customer, Some("x"), "hi", &entry)
                .await
                .unwrap()
                .conversation
                .id,
        );
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let order: Vec<String> = store
        .queued_conversations("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(order, [ids[1].clone(), ids[0].clone(), ids[2].clone()]);
    // The last one is served, then handed back: it goes before the others of its priority.
    let agent = store
        .create_agent("t1", "a", &["general".into()], 5)
        .await
        .unwrap();
    store
        .assign(&ids[2], &agent, "joined")
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .assign(&ids[2], &agent, "joined")
        .await
        .unwrap()
        .is_none());
    let (requeued, notice) = store
        .requeue(
            &ids[2],
            &agent.id,
            None,
            true,
            "requeued",
            &Actor::system(),
            "agent disconnected",
            "back in queue",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(requeued.state, ConversationState::Queued);
    assert_eq!(notice.sender, switchboard_channels::web::SenderKind::System);
    assert_eq!(notice.text, "back in queue");
    let order: Vec<String> = store
        .queued_conversations("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(order, [ids[1].clone(), ids[2].clone(), ids[0].clone()]);
    // Only the holder can requeue.
    assert!(store
        .requeue(
            &ids[0],
            &agent.id,
            None,
            true,
            "requeued",
            &Actor::system(),
            "x",
            "x"
        )
        .await
        .unwrap()
        .is_none());
}

async fn close_reopen_and_the_event_log(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let agent = store
        .create_agent("t1", "a", &["general".into()], 5)
        .await
        .unwrap();
    let (customer, id) = waiting_customer(store, "t1", "v").await;
    store.assign(&id, &agent, "joined").await.unwrap().unwrap();
    let reply = store
        .append_agent_message(&id, &agent.id, "r1", "hello")
        .await
        .unwrap();
    assert_eq!(reply.message.seq, 3);
    assert!(reply.conversation.first_response_at.is_some());
    let other = store
        .create_agent("t1", "b", &["general".into()], 5)
        .await
        .unwrap();
    assert!(store
        .append_agent_message(&id, &other.id, "r2", "not mine")
        .await
        .is_err());
    let (closed, notice) = store
        .close_conversation(&id, &agent.id, "closed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.state, ConversationState::Closed);
    assert_eq!(notice.seq, 4);
    assert!(store
        .close_conversation(&id, &agent.id, "closed")
        .await
        .unwrap()
        .is_none());
    let reopened = store
        .append_customer_message(&customer, Some("2"), "again", &queued())
        .await
        .unwrap();
    assert!(reopened.reopened);
    assert_eq!(reopened.conversation.state, ConversationState::Queued);
    assert_eq!(reopened.message.seq, 5);
    let kinds: Vec<String> = store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["created", "queued", "assigned", "closed", "reopened"]
    );
    store
        .set_acked(&id, switchboard_channels::web::SenderKind::Customer, 4)
        .await
        .unwrap();
    store
        .set_acked(&id, switchboard_channels::web::SenderKind::Customer, 2)
        .await
        .unwrap();
    store
        .set_acked(&id, switchboard_channels::web::SenderKind::Customer, 99)
        .await
        .unwrap();
    assert_eq!(
        store
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .customer_acked_seq,
        4
    );
}

async fn contact_fields_need_the_key(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let profile = CustomerProfile {
        name: Some("Han Meimei".into()),
        phone: Some("13900139000".into()),
        email: Some("han@example.com".into()),
        address: Some("上海市浦东新区".into()),
    };
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v", &profile)
        .await
        .unwrap();
    assert_eq!(customer.profile, profile);
    assert!(!customer.masked().contains("13900139000"));
    // Another key cannot read the stored fields: they are encrypted, not encoded.
    let stranger = Store::connect(&backend.url, FieldCipher::new(&SecretKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        stranger.customer("t1", &customer.id).await,
        Err(StoreError::Corrupt(_))
    ));
    stranger.close().await;
    let same = Store::connect(&backend.url, FieldCipher::new(&backend.key))
        .await
        .unwrap();
    assert_eq!(
        same.customer("t1", &customer.id)
            .await
            .unwrap()
            .unwrap()
            .profile,
        profile
    );
    same.close().await;
    let cleared = store
        .update_customer_profile(
            "t1",
            &customer.id,
            &CustomerProfile {
                name: Some("Han".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.profile.phone, None);
}

async fn listing_filters_and_pages(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    for index in 0..7 {
        let tenant = if index == 6 { "t2" } else { "t1" };
        waiting_customer(store, tenant, &format!("v{index}")).await;
    }
    let mut seen = Vec::new();
    let mut filter = ConversationFilter {
        limit: Some(4),
        ..Default::default()
    };
    loop {
        let (page, next) = store.list_conversations("t1", &filter).await.unwrap();
        seen.extend(page.into_iter().map(|c| c.id));
        match next {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    let (assigned, _) = store
        .list_conversations(
            "t1",
            &ConversationFilter {
                state: Some("assigned".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(assigned.is_empty());
    let (future, _) = store
        .list_conversations(
            "t1",
            &ConversationFilter {
                from: Some(i64::MAX / 2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(future.is_empty());
    let bad = store
        .list_conversations(
            "t1",
            &ConversationFilter {
                cursor: Some("nope".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

async fn canned_reply_shortcuts_are_unique_per_tenant(backend: &Backend) {
    use store::CannedReply;
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let reply = |id: &str, shortcut: &str| CannedReply {
        id: id.into(),
        shortcut: shortcut.into(),
        text: "text".into(),
    };
    store
        .put_canned_reply("t1", &reply("r1", "hi"))
        .await
        .unwrap();
    store
        .put_canned_reply("t2", &reply("r2", "hi"))
        .await
        .unwrap();
    assert!(matches!(
        store.put_canned_reply("t1", &reply("r3", "hi")).await,
        Err(StoreError::Conflict(_))
    ));
    // An id of another tenant is not touched.
    assert!(store
        .put_canned_reply("t1", &reply("r2", "other"))
        .await
        .is_err());
    assert_eq!(store.canned_replies("t2").await.unwrap()[0].shortcut, "hi");
    store.delete_canned_reply("t1", "r1").await.unwrap();
    assert!(matches!(
        store.delete_canned_reply("t1", "r1").await,
        Err(StoreError::NotFound(_))
    ));
}

// ---- channels ---------------------------------------------------------------------------------

async fn channel_app_secrets_need_the_key(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let public = serde_json::json!({"appid": "wx1"})
        .as_object()
        .unwrap()
        .clone();
    let secrets = serde_json::json!({"token": "tok", "appsecret": "sec"})
        .as_object()
        .unwrap()
        .clone();
    let app = store
        .put_channel_app("t1", "wechat", "main", &public, &secrets)
        .await
        .unwrap();
    assert_eq!(app.secrets_set, ["appsecret", "token"]);
    assert!(!serde_json::to_string(&app).unwrap().contains("sec\""));
    let found = store
        .channel_app("t1", "wechat", "main")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret("token"), "tok");
    assert_eq!(found.field("appid"), "wx1");
    // Replacing keeps one row; other tenants and kinds do not see it.
    store
        .put_channel_app("t1", "wechat", "main", &public, &secrets)
        .await
        .unwrap();
    assert_eq!(store.channel_apps("t1", None).await.unwrap().len(), 1);
    assert!(store
        .channel_apps("t1", Some("douyin"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .channel_app("t2", "wechat", "main")
        .await
        .unwrap()
        .is_none());
    let stranger = Store::connect(&backend.url, FieldCipher::new(&SecretKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        stranger.channel_app("t1", "wechat", "main").await,
        Err(StoreError::Corrupt(_))
    ));
    stranger.close().await;
    store
        .delete_channel_app("t1", "wechat", "main")
        .await
        .unwrap();
    assert!(matches!(
        store.delete_channel_app("t1", "wechat", "main").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn linked_customers_share_the_first_linked_conversation(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let none = CustomerProfile::default();
    let wechat = store
        .customer_for_identity("t1", ChannelKind::Wechat, "wx:o1", &none)
        .await
        .unwrap();
    let mobile = store
        .customer_for_identity("t1", ChannelKind::Mobile, "app:u1", &none)
        .await
        .unwrap();
    let elsewhere = store
        .customer_for_identity("t2", ChannelKind::Mobile, "app:u1", &none)
        .await
        .unwrap();
    assert_eq!(
        store.primary_customer(&mobile).await.unwrap().id,
        mobile.id,
        "unlinked: itself"
    );
    assert_eq!(
        store
            .link_customer("t1", &wechat.id, "crm-1")
            .await
            .unwrap()
            .primary_customer_id,
        wechat.id
    );
    assert_eq!(
        store
            .link_customer("t1", &mobile.id, "crm-1")
            .await
            .unwrap()
            .primary_customer_id,
        wechat.id
    );
    assert_eq!(
        store
            .link_customer("t1", &mobile.id, "crm-1")
            .await
            .unwrap()
            .primary_customer_id,
        wechat.id,
        "idempotent"
    );
    assert_eq!(store.primary_customer(&mobile).await.unwrap().id, wechat.id);
    assert!(matches!(
        store.link_customer("t1", &mobile.id, "crm-2").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.link_customer("t1", "cu_none", "crm-1").await,
        Err(StoreError::NotFound(_))
    ));
    // Another tenant's customer is not found in t1, and the same crm id in t2 is its own.
    assert!(matches!(
        store.link_customer("t1", &elsewhere.id, "crm-1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .link_customer("t2", &elsewhere.id, "crm-1")
            .await
            .unwrap()
            .primary_customer_id,
        elsewhere.id
    );
    // Both identities write into one conversation.
    let primary = store.primary_customer(&mobile).await.unwrap();
    let first = store
        .append_customer_message(&wechat, Some("w1"), "from wechat", &queued())
        .await
        .unwrap();
    let second = store
        .append_customer_message(&primary, Some("m1"), "from the app", &queued())
        .await
        .unwrap();
    assert_eq!(first.conversation.id, second.conversation.id);
    assert_eq!(second.message.seq, 2);
}

async fn outbox_rows_are_written_once_and_claimed_once(backend: &Backend) {
    use store::apps::{AttemptOutcome, ConversationRoute, NewDelivery};
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity(
            "t1",
            ChannelKind::Wechat,
            "wx:o1",
            &CustomerProfile::default(),
        )
        .await
        .unwrap();
    let opened = store
        .append_customer_message(&customer, Some("w1"), "hi", &queued())
        .await
        .unwrap();
    let conversation_id = opened.conversation.id.clone();
    // A redelivered push is recognised before its media is fetched again.
    assert!(store
        .has_customer_message(&customer.id, "w1")
        .await
        .unwrap());
    assert!(!store
        .has_customer_message(&customer.id, "w2")
        .await
        .unwrap());
    assert!(!store.has_customer_message("cu_other", "w1").await.unwrap());
    let agent = assigned_agent(store, &conversation_id).await;
    store
        .set_route(&ConversationRoute {
            conversation_id: conversation_id.clone(),
            tenant_id: "t1".into(),
            customer_id: customer.id.clone(),
            channel: "wechat".into(),
            app: "wx".into(),
            external_user_id: "o1".into(),
            reply_context: Some("{\"k\":1}".into()),
        })
        .await
        .unwrap();
    // A later route without a context keeps the stored one.
    let mut route = store.route(&conversation_id).await.unwrap().unwrap();
    route.reply_context = None;
    store.set_route(&route).await.unwrap();
    assert_eq!(
        store
            .route(&conversation_id)
            .await
            .unwrap()
            .unwrap()
            .reply_context
            .as_deref(),
        Some("{\"k\":1}")
    );

    let reply = store
        .append_agent_message(&conversation_id, &agent.id, "a1", "hello")
        .await
        .unwrap();
    let new = NewDelivery {
        tenant_id: "t1".into(),
        conversation_id: conversation_id.clone(),
        seq: reply.message.seq,
        kind: "send".into(),
        channel: "wechat".into(),
        app: "wx".into(),
        recipient: "o1".into(),
        reply_context: None,
        text: "hello".into(),
        sender_kind: "agent".into(),
    };
    let queued_row = store.enqueue_delivery(&new).await.unwrap().unwrap();
    assert_eq!(queued_row.state, "pending");
    assert!(
        store.enqueue_delivery(&new).await.unwrap().is_none(),
        "one row per message and kind"
    );
    assert_eq!(
        store.enqueue_missing_sends(0).await.unwrap(),
        0,
        "nothing is missing"
    );

    let now = store::util::now_ms();
    let due = store.due_deliveries(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let (first, second) = tokio::join!(
        store.claim_delivery(&due[0].id, now, now + 60_000),
        store.claim_delivery(&due[0].id, now, now + 60_000)
    );
    assert!(
        first.unwrap() ^ second.unwrap(),
        "exactly one worker wins the claim"
    );
    assert!(
        store.due_deliveries(now, 10).await.unwrap().is_empty(),
        "leased"
    );
    assert_eq!(due[0].parts_sent, 0);
    // Two parts (images) left before the attempt failed: the retry resumes after them.
    store
        .record_delivery_parts(&due[0].id, 1, now + 60_000)
        .await
        .unwrap();
    store
        .record_delivery_parts(&due[0].id, 2, now + 90_000)
        .await
        .unwrap();
    assert!(
        store
            .due_deliveries(now + 70_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "the lease was extended"
    );
    let retry = AttemptOutcome::Retry {
        code: "network".into(),
        error: "connection failed".into(),
        next_attempt_at: now + 1_000,
    };
    let pending = store
        .finish_attempt(&due[0].id, &retry)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            pending.state.as_str(),
            pending.code.as_deref(),
            pending.attempts
        ),
        ("pending", Some("network"), 1)
    );
    assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
    assert_eq!(pending.parts_sent, 2);
    let again = store.due_deliveries(now + 1_000, 10).await.unwrap();
    assert_eq!((again.len(), again[0].parts_sent), (1, 2));
    assert!(store
        .claim_delivery(&due[0].id, now + 1_000, now + 61_000)
        .await
        .unwrap());
    let sent = store
        .finish_attempt(
            &due[0].id,
            &AttemptOutcome::Sent {
                provider_message_id: Some("p1".into()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            sent.state.as_str(),
            sent.attempts,
            sent.provider_message_id.as_deref()
        ),
        ("sent", 2, Some("p1"))
    );
    // A finished row does not change again.
    store
        .finish_attempt(
            &due[0].id,
            &AttemptOutcome::Failed {
                code: "x".into(),
                error: "x".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.deliveries(&conversation_id).await.unwrap()[0].state,
        "sent"
    );

    // A reply stored without its row (a crash between the two) is found by the scan.
    let lost = store
        .append_agent_message(&conversation_id, &agent.id, "a2", "lost")
        .await
        .unwrap();
    assert_eq!(store.enqueue_missing_sends(0).await.unwrap(), 1);
    assert_eq!(store.enqueue_missing_sends(0).await.unwrap(), 0);
    let rows = store.deliveries(&conversation_id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[1].seq,
            rows[1].text.as_str(),
            rows[1].reply_context.as_deref()
        ),
        (lost.message.seq, "lost", Some("{\"k\":1}"))
    );
}

/// A web conversation whose customer later writes through WeChat: after a restart the scan
/// sends WeChat only the replies that came after, never the web part the customer already saw.
async fn the_outbox_scan_never_sends_a_route_the_replies_from_before_it(backend: &Backend) {
    use store::apps::ConversationRoute;
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    let opened = store
        .append_customer_message(&customer, Some("w1"), "hi from the web", &queued())
        .await
        .unwrap();
    let conversation_id = opened.conversation.id.clone();
    let agent = assigned_agent(store, &conversation_id).await;
    store
        .append_agent_message(&conversation_id, &agent.id, "a1", "seen on the web")
        .await
        .unwrap();
    // The same (merged) customer writes through WeChat: the webhook's id, then the route.
    store
        .append_customer_message(&customer, Some("wechat:wx:4001"), "from wechat", &queued())
        .await
        .unwrap();
    store
        .set_route(&ConversationRoute {
            conversation_id: conversation_id.clone(),
            tenant_id: "t1".into(),
            customer_id: customer.id.clone(),
            channel: "wechat".into(),
            app: "wx".into(),
            external_user_id: "o1".into(),
            reply_context: None,
        })
        .await
        .unwrap();
    // A reply whose row a crash lost.
    let lost = store
        .append_agent_message(&conversation_id, &agent.id, "a2", "for wechat")
        .await
        .unwrap();
    assert_eq!(store.enqueue_missing_sends(0).await.unwrap(), 1);
    assert_eq!(store.enqueue_missing_sends(0).await.unwrap(), 0);
    let rows = store.deliveries(&conversation_id).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|row| (row.seq, row.text.as_str()))
            .collect::<Vec<_>>(),
        [(lost.message.seq, "for wechat")]
    );
}

async fn bot_messages_and_handoff_only_while_with_the_bot(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    let entry = Entry {
        state: ConversationState::Bot,
        skill_group: "general".into(),
        priority: 0,
    };
    let meta = serde_json::json!({"sensitive": {"action": "flag", "lists": ["x"]}});
    let first = store
        .append_customer_message_with(
            &customer,
            Some("c1"),
            "运费怎么算",
            &entry,
            Some(meta.clone()),
        )
        .await
        .unwrap();
    assert_eq!(first.conversation.state, ConversationState::Bot);
    let id = first.conversation.id.clone();
    // The unsure streak lives with the conversation: lengthened by unsure answers, kept by a
    // busy reply, reset by any other answer (seqs 2 to 5).
    assert_eq!(store.bot_unsure_streak(&id).await.unwrap(), 0);
    for (text, streak, expected) in [
        ("您是想问运费吗？", UnsureStreak::Lengthen, 1),
        ("当前咨询较多", UnsureStreak::Keep, 1),
        ("抱歉，这个我答不了", UnsureStreak::Lengthen, 2),
        ("满99包邮", UnsureStreak::Reset, 0),
    ] {
        store
            .append_bot_message(&id, text, serde_json::json!({}), streak)
            .await
            .unwrap()
            .expect("still with the bot");
        assert_eq!(
            store.bot_unsure_streak(&id).await.unwrap(),
            expected,
            "{text}"
        );
    }
    let answer = store
        .append_bot_message(
            &id,
            "满99包邮",
            serde_json::json!({"decision": "answer"}),
            UnsureStreak::Lengthen,
        )
        .await
        .unwrap()
        .expect("still with the bot");
    assert_eq!(answer.seq, 6);
    let (moved, said) = store
        .hand_off(
            &id,
            "vip",
            9,
            "explicit_request",
            "explicit_request; routing policy v2: vip, priority 9",
            Some(("connecting you", serde_json::json!({"decision": "handoff"}))),
        )
        .await
        .unwrap()
        .expect("moved");
    assert_eq!(
        (moved.state, moved.skill_group.as_str(), moved.priority),
        (ConversationState::Queued, "vip", 9)
    );
    assert_eq!(moved.handoff_reason.as_deref(), Some("explicit_request"));
    assert_eq!(said.unwrap().seq, 7);
    let queued = store.events(&id).await.unwrap();
    let queued = queued.iter().rfind(|event| event.kind == "queued").unwrap();
    assert_eq!(
        queued.reason.as_deref(),
        Some("explicit_request; routing policy v2: vip, priority 9")
    );
    // No longer with the bot: neither a bot message nor a second handoff is written.
    assert!(store
        .append_bot_message(&id, "late", serde_json::json!({}), UnsureStreak::Reset)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .hand_off(&id, "general", 2, "again", "again", None)
        .await
        .unwrap()
        .is_none());
    let messages = store.messages_after(&id, 0, 10).await.unwrap();
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(messages[0].meta.as_ref(), Some(&meta));
    assert_eq!(messages[6].meta.as_ref().unwrap()["decision"], "handoff");
    let kinds: Vec<String> = store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "queued"]);

    // A reopened conversation starts its streak again.
    assert_eq!(store.bot_unsure_streak(&id).await.unwrap(), 1);
    let agent = store
        .create_agent("t1", "a", &["vip".into()], 5)
        .await
        .unwrap();
    store.assign(&id, &agent, "joined").await.unwrap().unwrap();
    store
        .close_conversation(&id, &agent.id, "closed")
        .await
        .unwrap()
        .unwrap();
    let back = store
        .append_customer_message(&customer, Some("again"), "还在吗", &entry)
        .await
        .unwrap();
    assert!(back.reopened);
    assert_eq!(store.bot_unsure_streak(&id).await.unwrap(), 0);
}

async fn policies_intents_words_and_scores_round_trip(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    // Component bytes (any bytes, with NUL and high bytes) survive BLOB and BYTEA.
    let wasm: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(
        store
            .add_policy_version("t1", "routing", &wasm, "sha1", "ops@example.com")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .add_policy_version("t1", "routing", b"\0asm2", "sha2", "admin key")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .active_policy("t1", "routing")
            .await
            .unwrap()
            .unwrap()
            .0,
        2
    );
    store.activate_policy("t1", "routing", 1).await.unwrap();
    let versions = store.policy_versions("t1", "routing").await.unwrap();
    let summary: Vec<(i64, bool, i64, &str)> = versions
        .iter()
        .map(|v| (v.version, v.active, v.size, v.uploaded_by.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, true, 70_000, "ops@example.com"),
            (2, false, 5, "admin key")
        ]
    );
    // Only the newest versions are kept.
    store.create_tenant("t-versions", "h").await.unwrap();
    let kept = store::policies::POLICY_VERSIONS_KEPT;
    for n in 1..=kept + 2 {
        store
            .add_policy_version("t-versions", "routing", b"\0asm", &format!("v{n}"), "ops")
            .await
            .unwrap();
    }
    let versions: Vec<i64> = store
        .policy_versions("t-versions", "routing")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, (3..=kept + 2).collect::<Vec<_>>());
    assert_eq!(
        store
            .policy_wasm("t1", "routing", 1)
            .await
            .unwrap()
            .unwrap(),
        wasm
    );
    assert!(matches!(
        store.activate_policy("t1", "routing", 9).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store
        .active_policy("t1", "quality")
        .await
        .unwrap()
        .is_none());

    let record = store::IntentModelRecord {
        tenant_id: "t1".into(),
        kind: "onnx".into(),
        head: None,
        model: Some(wasm.clone()),
        tokenizer: Some(b"{}".to_vec()),
        labels: Some("[\"a\",\"b\"]".into()),
        report: serde_json::json!({"labels": ["a", "b"]}),
        updated_at: 42,
    };
    store.put_intent_model(&record).await.unwrap();
    assert_eq!(store.intent_model_stamp("t1").await.unwrap(), Some(42));
    let loaded = store.intent_model("t1").await.unwrap().unwrap();
    assert_eq!(
        (loaded.model.as_deref(), loaded.head.as_deref()),
        (Some(wasm.as_slice()), None)
    );
    assert!(store.delete_intent_model("t1").await.unwrap());
    assert_eq!(store.intent_model_stamp("t1").await.unwrap(), None);

    store
        .put_sensitive_list("t1", "abuse", "block", "a\nb")
        .await
        .unwrap();
    store
        .put_sensitive_list("t1", "abuse", "mask", "a\nb\nc")
        .await
        .unwrap();
    let lists = store.sensitive_lists("t1").await.unwrap();
    assert_eq!(
        (
            lists.len(),
            lists[0].action.as_str(),
            lists[0].words.as_str()
        ),
        (1, "mask", "a\nb\nc")
    );
    assert_eq!(store.sensitive_stamp("t1").await.unwrap().0, 1);
    store.delete_sensitive_list("t1", "abuse").await.unwrap();
    assert_eq!(store.sensitive_stamp("t1").await.unwrap(), (0, 0));

    let (_, conversation_id) = waiting_customer(store, "t1", "v1").await;
    let score = store::QualityRecord {
        conversation_id: conversation_id.clone(),
        closed_at: 100,
        score: 87,
        findings: serde_json::json!([{"label": "slow_first_response"}]),
        decided_by: "policy".into(),
        policy_version: Some(1),
        created_at: 101,
    };
    store.put_quality("t1", &score).await.unwrap();
    store.put_quality("t1", &score).await.unwrap(); // one per close
    let scores = store.quality_scores(&conversation_id).await.unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!((scores[0].score, scores[0].policy_version), (87, Some(1)));
    let summary = store.queue_summary().await.unwrap();
    assert_eq!(
        (summary[0].skill_group.as_str(), summary[0].waiting),
        ("general", 1)
    );
}

/// `count` web customers of tenant `t1`, each with an open conversation (one message, "hi").
/// A web visitor of `tenant` who has written once: the customer and their (queued)
/// conversation's id.
/// Agent `a` of tenant `t1`, holding the conversation.
/// Acks recorded without waiting: one pending entry per conversation holding the highest seq of
/// each side, written by the flusher on its own and by `flush_acks` / `close`; a write never
/// lowers a stored ack, nor stores one past the conversation's last message.
async fn coalesced_acks_keep_the_highest_and_are_written(backend: &Backend) {
    use switchboard_channels::web::SenderKind::{Agent, Customer};
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let acked = |id: String| async move {
        let conversation = store.conversation(&id).await.unwrap().unwrap();
        (
            conversation.customer_acked_seq,
            conversation.agent_acked_seq,
        )
    };
    // a: 5 messages, the customer's ack of 4 stored directly.
    let (customer_a, a) = waiting_customer(store, "t1", "va").await;
    for index in 0..4 {
        store
            .append_customer_message(&customer_a, Some(&format!("a{index}")), "x", &queued())
            .await
            .unwrap();
    }
    store.set_acked(&a, Customer, 4).await.unwrap();
    // b: 6 messages.
    let (customer_b, b) = waiting_customer(store, "t1", "vb").await;
    for index in 0..5 {
        store
            .append_customer_message(&customer_b, Some(&format!("b{index}")), "x", &queued())
            .await
            .unwrap();
    }
    // A flusher that never ticks during the test: only flush_acks and close write.
    let quiet = Store::connect_with(
        &backend.url,
        FieldCipher::new(&backend.key),
        store::StoreOptions {
            ack_flush_ms: 3_600_000,
            ..store::StoreOptions::default()
        },
    )
    .await
    .unwrap();
    for seq in [1, 3, 2, 3] {
        quiet.record_ack(&a, Customer, seq).await.unwrap();
    }
    for seq in 1..=100 {
        quiet.record_ack(&b, Customer, (seq % 5) + 1).await.unwrap();
    }
    quiet.record_ack(&b, Agent, 2).await.unwrap();
    quiet.record_ack(&b, Agent, 1).await.unwrap();
    assert_eq!(quiet.pending_acks(), 2, "one entry per conversation");
    assert_eq!(
        acked(b.clone()).await,
        (0, 0),
        "nothing written before a flush"
    );
    quiet.flush_acks().await.unwrap();
    assert_eq!(quiet.pending_acks(), 0);
    assert_eq!(
        acked(a.clone()).await,
        (4, 0),
        "older acks never lower a stored one"
    );
    assert_eq!(acked(b.clone()).await, (5, 2), "the highest of each side");
    // Past the last message: not stored.
    quiet.record_ack(&b, Agent, 99).await.unwrap();
    quiet.flush_acks().await.unwrap();
    assert_eq!(acked(b.clone()).await, (5, 2));
    // Close writes what is pending.
    quiet.record_ack(&a, Agent, 5).await.unwrap();
    quiet.record_ack(&b, Customer, 6).await.unwrap();
    quiet.close().await;
    assert_eq!(acked(a.clone()).await, (4, 5));
    assert_eq!(acked(b.clone()).await, (6, 2));
    // The default store's flusher writes on its own, within a few ticks.
    store.record_ack(&a, Customer, 5).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while acked(a.clone()).await.0 != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher wrote nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.pending_acks(), 0);
}

async fn assigned_agent(store: &Store, conversation_id: &str) -> store::Agent {
    let agent = store
        .create_agent("t1", "a", &["general".into()], 5)
        .await
        .unwrap();
    store
        .assign(conversation_id, &agent, "joined")
        .await
        .unwrap()
        .unwrap();
    agent
}

async fn waiting_customer(store: &Store, tenant: &str, visitor: &str) -> (Customer, String) {
    let customer = store
        .customer_for_identity(
            tenant,
            ChannelKind::Web,
            visitor,
            &CustomerProfile::default(),
        )
        .await
        .unwrap();
    let conversation = store
        .append_customer_message(&customer, Some("open"), "hi", &queued())
        .await
        .unwrap()
        .conversation
        .id;
    (customer, conversation)
}

async fn customers_chatting(store: &Store, count: usize) -> Vec<Customer> {
    let mut customers = Vec::new();
    for index in 0..count {
        customers.push(waiting_customer(store, "t1", &format!("v{index}")).await.0);
    }
    customers
}

fn customer_says(customer: &Customer, id: &str, text: &str) -> NewMessage {
    NewMessage::Customer {
        customer: customer.clone(),
        client_msg_id: Some(id.into()),
        text: text.into(),
        entry: queued(),
        meta: None,
    }
}

fn agent_says(conversation: &str, agent: &str, id: &str, text: &str) -> NewMessage {
    NewMessage::Agent {
        conversation_id: conversation.into(),
        agent_id: agent.into(),
        client_msg_id: id.into(),
        text: text.into(),
        meta: Some(serde_json::json!({"masked": true})),
    }
}

/// Group commit: one call with every case a batch meets — open, new and closed conversations,
/// resends of stored and of same-batch messages, an agent writing where they may not.
async fn one_batch_stores_what_single_appends_would(backend: &Backend) {
    every_case_a_batch_meets(backend, false).await;
}

/// The same, submitted to the store's writer without waiting (on SQLite the writer has its own
/// connection, driven through SQLite's C API): however it batches them, the same results.
async fn the_writer_stores_what_single_appends_would(backend: &Backend) {
    every_case_a_batch_meets(backend, true).await;
}

async fn every_case_a_batch_meets(backend: &Backend, through_writer: bool) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let agent = store
        .create_agent("t1", "a", &["general".into()], 5)
        .await
        .unwrap();
    let intruder = store
        .create_agent("t1", "b", &["general".into()], 5)
        .await
        .unwrap();
    let mut customers = Vec::new();
    for visitor in ["open", "new", "closed"] {
        customers.push(
            store
                .customer_for_identity("t1", ChannelKind::Web, visitor, &CustomerProfile::default())
                .await
                .unwrap(),
        );
    }
    let (open, new, closed) = (&customers[0], &customers[1], &customers[2]);
    let talk = store
        .append_customer_message(open, Some("x0"), "before", &queued())
        .await
        .unwrap()
        .conversation
        .id;
    store
        .assign(&talk, &agent, "joined")
        .await
        .unwrap()
        .unwrap(); // seq 2
    let ended = store
        .append_customer_message(closed, Some("c0"), "old", &queued())
        .await
        .unwrap()
        .conversation
        .id;
    store
        .assign(&ended, &agent, "joined")
        .await
        .unwrap()
        .unwrap();
    store
        .close_conversation(&ended, &agent.id, "closed")
        .await
        .unwrap()
        .unwrap();
    let closed_last = store.conversation(&ended).await.unwrap().unwrap().last_seq;

    let batch = vec![
        customer_says(open, "x1", "one"),             // 0: seq 3
        agent_says(&talk, &agent.id, "y1", "reply"),  // 1: seq 4
        customer_says(new, "n1", "first"),            // 2: creates, seq 1
        customer_says(open, "x1", "one again"),       // 3: resend within the batch
        customer_says(new, "n2", "second"),           // 4: seq 2
        customer_says(closed, "r1", "back"),          // 5: reopens
        agent_says(&talk, &intruder.id, "z", "mine"), // 6: not assigned
        customer_says(open, "x0", "before again"),    // 7: resend of a stored message
        agent_says(&talk, &agent.id, "y1", "reply"),  // 8: resend within the batch
        customer_says(open, "x2", "two"),             // 9: seq 5
    ];
    let results = if through_writer {
        let mut submitted = Vec::new();
        for message in batch {
            submitted.push(store.submit(message).await);
        }
        let mut results = Vec::new();
        for pending in submitted {
            results.push(pending.stored().await);
        }
        results
    } else {
        store.append_many(batch).await
    };
    assert_eq!(results.len(), 10);
    let ok = |index: usize| results[index].as_ref().expect("stored");
    // In one batch the conversation's new messages take seqs 3, 4, 5 in arrival order; through
    // PostgreSQL's several writers only each sender's own order is kept.
    let mut seqs = [0, 1, 9].map(|index| ok(index).message.seq);
    if !through_writer {
        assert_eq!(seqs, [3, 4, 5]);
    }
    assert!(seqs[0] < seqs[2], "a sender's messages in order");
    seqs.sort_unstable();
    assert_eq!(seqs, [3, 4, 5]);
    for index in [0, 1, 9] {
        assert!(!ok(index).duplicate);
        assert_eq!(ok(index).conversation.last_seq, ok(index).message.seq);
    }
    assert!(ok(1).conversation.first_response_at.is_some());
    assert_eq!(
        ok(1).message.meta,
        Some(serde_json::json!({"masked": true}))
    );
    assert!(ok(2).created && ok(2).message.seq == 1);
    assert!(ok(3).duplicate);
    assert_eq!(ok(3).message, ok(0).message);
    assert!(!ok(4).created && ok(4).message.seq == 2);
    assert_eq!(ok(4).message.conversation_id, ok(2).message.conversation_id);
    assert!(ok(5).reopened);
    assert_eq!(ok(5).message.seq, closed_last + 1);
    assert_eq!(ok(5).conversation.state, ConversationState::Queued);
    assert!(matches!(results[6], Err(StoreError::Conflict(_))));
    assert!(ok(7).duplicate && ok(7).message.text == "before");
    assert!(ok(8).duplicate);
    assert_eq!(ok(8).message, ok(1).message);

    // What is stored is what the results say, once each, seqs contiguous.
    let stored = store.messages_after(&talk, 0, 100).await.unwrap();
    assert_eq!(
        stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let mut new = [0, 1, 9].map(|index| ok(index).message.clone());
    new.sort_by_key(|message| message.seq);
    assert_eq!(stored[2..], new);
    let conversation = store.conversation(&talk).await.unwrap().unwrap();
    assert_eq!(conversation.last_seq, 5);
    assert!(conversation.first_response_at.is_some());
    let fresh = store
        .messages_after(&ok(2).message.conversation_id, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        fresh.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
}

/// Many writers at once (several batches, some over the batch size) on many conversations:
/// every message stored once, in each conversation's order, seqs contiguous.
async fn concurrent_batches_keep_every_conversation_contiguous(backend: &Backend) {
    let store = backend.store.clone();
    store.create_tenant("t1", "h").await.unwrap();
    let customers: Vec<Arc<Customer>> = customers_chatting(&store, 30)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    // One task per customer sends 20 messages one after another (as a session does), each
    // sent twice; beside them, one call appends 300 messages spread over every customer.
    let mut tasks = Vec::new();
    for customer in &customers {
        let (store, customer) = (store.clone(), customer.clone());
        tasks.push(tokio::spawn(async move {
            for index in 0..20 {
                let id = format!("s{index}");
                let first = store
                    .append_customer_message(&customer, Some(&id), &id, &queued())
                    .await
                    .unwrap();
                let again = store
                    .append_customer_message(&customer, Some(&id), &id, &queued())
                    .await
                    .unwrap();
                assert!(!first.duplicate && again.duplicate);
                assert_eq!(first.message, again.message);
            }
        }));
    }
    let bulk: Vec<NewMessage> = (0..300)
        .map(|index| customer_says(&customers[index % 30], &format!("b{index}"), "bulk"))
        .collect();
    let results = store.append_many(bulk).await;
    assert!(results
        .iter()
        .all(|result| matches!(result, Ok(appended) if !appended.duplicate)));
    for task in tasks {
        task.await.unwrap();
    }
    for customer in &customers {
        let conversation = store
            .conversation_for_customer(&customer.id)
            .await
            .unwrap()
            .unwrap();
        let stored = store
            .messages_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1 + 20 + 10);
        assert_eq!(conversation.last_seq, 31);
        assert!(stored
            .iter()
            .enumerate()
            .all(|(index, m)| m.seq == index as i64 + 1));
        // Each sender's own messages in the order sent.
        let own: Vec<&str> = stored
            .iter()
            .filter_map(|m| m.client_msg_id.as_deref())
            .filter(|id| id.starts_with('s'))
            .collect();
        let expected: Vec<String> = (0..20).map(|index| format!("s{index}")).collect();
        assert_eq!(own, expected);
    }
}

/// A connection submits its messages without waiting for each (pipelining): however the writers
/// batch them, each sender's messages get seqs in the order submitted.
async fn submitted_messages_keep_each_senders_order(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customers = customers_chatting(store, 4).await;
    let mut pending = Vec::new();
    for index in 0..150 {
        for customer in &customers {
            let submitted = store
                .submit(customer_says(customer, &format!("p{index}"), "x"))
                .await;
            pending.push((customer.id.clone(), index, submitted));
        }
    }
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    for (customer, index, submitted) in pending {
        let appended = submitted.stored().await.expect("stored");
        let previous = last.insert(customer, appended.message.seq).unwrap_or(1);
        assert_eq!(
            appended.message.seq,
            previous + 1,
            "message {index} out of order"
        );
    }
}

/// SQLite commits are synced before the store answers unless `normal` is asked for: a receipt
/// is never sent for a commit a power failure can lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_synchronous_full_by_default_and_normal_on_request() {
    use store::{SqliteSynchronous, StoreOptions};
    let backend = Backend::sqlite().await;
    // Pooled connections opened side by side all carry it.
    let checks: Vec<_> = (0..6)
        .map(|_| {
            let store = backend.store.clone();
            tokio::spawn(async move { store.sqlite_synchronous().await })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap().unwrap(), Some(SqliteSynchronous::Full));
    }
    let key = SecretKey::generate();
    let normal = Store::connect_with(
        &backend.url,
        FieldCipher::new(&key),
        StoreOptions {
            sqlite_synchronous: SqliteSynchronous::Normal,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("connect");
    assert_eq!(
        normal.sqlite_synchronous().await.unwrap(),
        Some(SqliteSynchronous::Normal)
    );
    normal.close().await;
    backend.finish().await;
}

/// `switchboard bench --database-url postgres://...` makes its database when it is missing: once,
/// and never over one that exists; a SQLite url is refused (its file is made on connect).
#[tokio::test]
async fn a_missing_postgres_database_is_made_once() {
    use sqlx::migrate::MigrateDatabase;
    let admin = store::testing::postgres_admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    let url = format!("{base}/sb_test_{}", uuid::Uuid::new_v4().simple());
    assert!(Store::create_postgres_database_if_missing(&url)
        .await
        .expect("made"));
    assert!(!Store::create_postgres_database_if_missing(&url)
        .await
        .expect("found"));
    let made = Store::connect(&url, FieldCipher::new(&SecretKey::generate()))
        .await
        .expect("the made database takes the migrations");
    made.close().await;
    sqlx::Postgres::force_drop_database(&url)
        .await
        .expect("dropped");
    assert!(matches!(
        Store::create_postgres_database_if_missing("sqlite://bench.db").await,
        Err(StoreError::Invalid(_))
    ));
}

async fn members_sessions_and_the_audit_log(backend: &Backend) {
    use store::{AuditFilter, MemberRole, MemberUpdate, NewAuditEntry};
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let admin = store
        .create_member(
            "t1",
            " Ops@Example.com ",
            "Ops",
            MemberRole::Admin,
            "hash-a",
        )
        .await
        .unwrap();
    assert_eq!(admin.email, "ops@example.com");
    // One email per tenant (compared in lower case); the same email in another tenant is another member.
    assert!(matches!(
        store
            .create_member("t1", "OPS@example.com", "Twin", MemberRole::Agent, "x")
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_member(
            "t2",
            "ops@example.com",
            "Other",
            MemberRole::Admin,
            "hash-b",
        )
        .await
        .unwrap();
    let (found, hash) = store
        .member_credentials("t1", "OPS@EXAMPLE.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), hash.as_str()),
        (admin.id.as_str(), "hash-a")
    );

    // The last enabled admin stays an admin.
    let demote = MemberUpdate {
        role: Some(MemberRole::Supervisor),
        ..MemberUpdate::default()
    };
    assert!(matches!(
        store.update_member("t1", &admin.id, &demote).await,
        Err(StoreError::Conflict(_))
    ));
    let second = store
        .create_member(
            "t1",
            "kb@example.com",
            "KB",
            MemberRole::KnowledgeManager,
            "hash-k",
        )
        .await
        .unwrap();

    // Sessions: live ones find their member; expired ones, disabled members' and deleted ones do not.
    let future = store::util::now_ms() + 60_000;
    store
        .create_member_session(&second, "s-live", future)
        .await
        .unwrap();
    store
        .create_member_session(&second, "s-old", 1)
        .await
        .unwrap();
    let (member, expires) = store.session_member("s-live", 0).await.unwrap().unwrap();
    assert_eq!((member.id.as_str(), expires), (second.id.as_str(), future));
    assert!(store.session_member("s-old", 0).await.unwrap().is_none());
    // Idle: a session unused for the idle limit ends; each use (recorded at most every half
    // limit) starts the limit again.
    store
        .create_member_session(&second, "s-idle", future)
        .await
        .unwrap();
    let idle_ms = 2_000;
    // (wait, live after it): the second wait passes the limit counted from creation, but the
    // first use started it again; the third is a whole limit unused.
    for (wait_ms, live) in [(1_200, true), (1_200, true), (2_100, false)] {
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        let found = store.session_member("s-idle", idle_ms).await.unwrap();
        assert_eq!(found.is_some(), live, "after {wait_ms} ms");
    }
    // Without an idle limit only the lifetime counts.
    assert!(store.session_member("s-idle", 0).await.unwrap().is_some());
    store.delete_member_session("s-live").await.unwrap();
    assert!(store.session_member("s-live", 0).await.unwrap().is_none());
    store
        .create_member_session(&second, "s-2", future)
        .await
        .unwrap();
    // The agent the member answers chats as (a take-over makes one).
    let own_agent = store
        .create_agent("t1", "KB", &["general".into()], 5)
        .await
        .unwrap();
    store
        .update_member(
            "t1",
            &second.id,
            &MemberUpdate {
                agent_id: Some(own_agent.id.clone()),
                ..MemberUpdate::default()
            },
        )
        .await
        .unwrap();
    let token_version = |store: &Store| {
        let (store, id) = (store.clone(), own_agent.id.clone());
        async move { store.agent("t1", &id).await.unwrap().unwrap().token_version }
    };
    assert_eq!(token_version(&store).await, own_agent.token_version);
    let disabled = store
        .update_member(
            "t1",
            &second.id,
            &MemberUpdate {
                disabled: Some(true),
                ..MemberUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.role, MemberRole::KnowledgeManager);
    assert!(store.session_member("s-2", 0).await.unwrap().is_none());
    // Their agent's tokens are revoked with the sessions.
    assert_eq!(token_version(&store).await, own_agent.token_version + 1);
    // Re-enabled, the old session stays ended.
    store
        .update_member(
            "t1",
            &second.id,
            &MemberUpdate {
                disabled: Some(false),
                role: Some(MemberRole::Admin),
                ..MemberUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(store.session_member("s-2", 0).await.unwrap().is_none());
    // With a second admin, the first may change role.
    let changed = store.update_member("t1", &admin.id, &demote).await.unwrap();
    assert_eq!(changed.role, MemberRole::Supervisor);
    assert_eq!(store.members("t1").await.unwrap().len(), 2);

    // The audit log: newest first, filtered, paged, per tenant.
    for (actor, action) in [
        ("Ärger@example.com", "DELETE members/x"),
        ("ops@example.com", "PATCH settings"),
        ("admin key", "PUT policies/routing"),
        ("kb@example.com", "PUT kb/faqs/1"),
        ("kb_%@example.com", "POST kb/import"),
    ] {
        store
            .add_audit_entry(&NewAuditEntry {
                tenant_id: "t1".into(),
                actor_kind: "member".into(),
                actor: actor.into(),
                action: action.into(),
                target: "x".into(),
                status: 200,
                summary: serde_json::json!({ "before": 1, "after": 2 }),
            })
            .await
            .unwrap();
    }
    let all = store
        .audit_entries("t1", &AuditFilter::default())
        .await
        .unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "POST kb/import",
            "PUT kb/faqs/1",
            "PUT policies/routing",
            "PATCH settings",
            "DELETE members/x"
        ]
    );
    assert_eq!(all[0].summary["after"], 2);
    let kb = store
        .audit_entries(
            "t1",
            &AuditFilter {
                action: Some("KB/".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kb.len(), 2);
    // LIKE's wildcards in a filter match literally.
    let literal = store
        .audit_entries(
            "t1",
            &AuditFilter {
                actor: Some("kb_%".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(literal.len(), 1);
    // ASCII letters in any case, other characters as written: the same on both backends.
    for (actor, found) in [("ÄRG", 1), ("Ärg", 1), ("ärg", 0)] {
        let entries = store
            .audit_entries(
                "t1",
                &AuditFilter {
                    actor: Some(actor.into()),
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(entries.len(), found, "{actor}");
    }
    let page = store
        .audit_entries(
            "t1",
            &AuditFilter {
                before: Some(all[1].id),
                limit: Some(1),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[2].id);
    assert!(store
        .audit_entries("t2", &AuditFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn jobs_and_settings_changes(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let job = store
        .create_job("t1", "kb_import", "kb@example.com")
        .await
        .unwrap();
    assert_eq!(
        (job.state.as_str(), job.progress.clone()),
        ("running", serde_json::json!({}))
    );
    store
        .job_progress(&job.id, &serde_json::json!({ "done": 5, "total": 10 }))
        .await
        .unwrap();
    store
        .finish_job(&job.id, Ok(&serde_json::json!({ "inserted": 10 })))
        .await
        .unwrap();
    // Progress after the end changes nothing.
    store
        .job_progress(&job.id, &serde_json::json!({ "done": 1 }))
        .await
        .unwrap();
    let done = store.job("t1", &job.id).await.unwrap().unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.progress["done"], 5);
    assert_eq!(done.result.unwrap()["inserted"], 10);
    let failed = store.create_job("t1", "kb_import", "x").await.unwrap();
    store
        .finish_job(&failed.id, Err(("bad_file", "not a spreadsheet")))
        .await
        .unwrap();
    let listed = store.jobs("t1", "kb_import", 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    let failed = store.job("t1", &failed.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state.as_str(), failed.error_code.as_deref()),
        ("failed", Some("bad_file"))
    );
    assert!(store.job("t2", &job.id).await.unwrap().is_none());

    // Settings changes compare and swap: concurrent changes never lose one another.
    let mut changes = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        changes.push(tokio::spawn(async move {
            store
                .change_tenant_settings::<StoreError>("t1", |mut current| {
                    current[format!("k{i}")] = serde_json::json!(i);
                    Ok(current)
                })
                .await
        }));
    }
    for change in changes {
        change.await.unwrap().unwrap();
    }
    let settings = store.tenant("t1").await.unwrap().unwrap().settings;
    assert_eq!(settings.as_object().unwrap().len(), 8, "{settings}");
}

fn bot_entry() -> Entry {
    Entry {
        state: ConversationState::Bot,
        skill_group: "general".into(),
        priority: 0,
    }
}

async fn episodes_ratings_and_the_idle_close(backend: &Backend) {
    use store::reports::{Episode, EpisodeFilter, Rating};
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let quiet = store
        .customer_for_identity("t1", ChannelKind::Web, "quiet", &CustomerProfile::default())
        .await
        .unwrap();
    let quiet_id = store
        .append_customer_message(&quiet, Some("q"), "hello", &bot_entry())
        .await
        .unwrap()
        .conversation
        .id;
    // A bot conversation with no message yet, and a queued one: never idle-closed.
    let (_, queued_id) = waiting_customer(store, "t1", "queued").await;
    let now = store::util::now_ms();
    // Not quiet long enough.
    let none = store
        .close_idle_bot_conversations(now - 60_000, 10, None, "closed")
        .await
        .unwrap();
    assert!(none.is_empty());
    let closed = store
        .close_idle_bot_conversations(now + 1, 10, None, "closed")
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    let (conversation, notice) = &closed[0];
    assert_eq!(conversation.id, quiet_id);
    assert_eq!(conversation.state, ConversationState::Closed);
    assert_eq!(notice.sender, switchboard_channels::web::SenderKind::System);
    let closed_at = conversation.closed_at.unwrap();
    let last = store.events(&quiet_id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.reason.as_deref()),
        ("closed", Some("idle"))
    );
    // A second sweep finds nothing; the queued conversation is untouched.
    assert!(store
        .close_idle_bot_conversations(now + 1, 10, None, "closed")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.conversation(&queued_id).await.unwrap().unwrap().state,
        ConversationState::Queued
    );

    // The survey goes after the close, and only while it is that close.
    let survey = store
        .append_after_close(
            &quiet_id,
            closed_at,
            "rate us",
            serde_json::json!({"survey": {"closed_at": closed_at}}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(survey.seq, notice.seq + 1);
    assert_eq!(survey.sender, switchboard_channels::web::SenderKind::Bot);
    assert!(store
        .append_after_close(&quiet_id, closed_at - 1, "stale", serde_json::json!({}))
        .await
        .unwrap()
        .is_none());
    let stored = store
        .messages_after(&quiet_id, notice.seq, 10)
        .await
        .unwrap();
    assert_eq!(
        stored[0].meta.as_ref().unwrap()["survey"]["closed_at"],
        closed_at
    );

    let episode = Episode {
        conversation_id: quiet_id.clone(),
        closed_at,
        tenant_id: "t1".into(),
        channel: "web".into(),
        skill_group: "general".into(),
        agent_id: String::new(),
        closed_by: "idle".into(),
        opened_at: closed_at - 1_000,
        handed_off_at: None,
        handoff_reason: None,
        assigned_at: None,
        first_agent_reply_at: None,
        customer_messages: 1,
        agent_messages: 0,
        bot_answers: 1,
        bot_clarifies: 0,
        bot_out_of_scope: 0,
        tags: vec!["vip".into(), "50%_off".into()],
    };
    store.put_episode(&episode).await.unwrap();
    // Written twice (a retried after-close task): still one row.
    store.put_episode(&episode).await.unwrap();
    assert_eq!(
        store.episode(&quiet_id, closed_at).await.unwrap(),
        Some(episode.clone())
    );
    let rating = |score: i64| Rating {
        conversation_id: quiet_id.clone(),
        closed_at,
        agent_id: String::new(),
        score,
        comment: "好".into(),
        created_at: closed_at + 5,
    };
    store.put_rating("t1", &rating(3)).await.unwrap();
    store.put_rating("t1", &rating(5)).await.unwrap();
    assert_eq!(
        store
            .rating(&quiet_id, closed_at)
            .await
            .unwrap()
            .unwrap()
            .score,
        5
    );

    let all = |tenant: &str, filter: EpisodeFilter| {
        let tenant = tenant.to_owned();
        async move {
            store
                .rated_episodes(&tenant, &filter, None, 100)
                .await
                .unwrap()
        }
    };
    let period = EpisodeFilter {
        from: closed_at - 10,
        to: closed_at + 10,
        ..Default::default()
    };
    let rows = all("t1", period.clone()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].score, Some(5));
    assert_eq!(rows[0].episode, episode);
    // Other tenants, periods and filters see nothing.
    assert!(all("t2", period.clone()).await.is_empty());
    let later = EpisodeFilter {
        from: closed_at + 1,
        ..period.clone()
    };
    assert!(all("t1", later).await.is_empty());
    let wechat = EpisodeFilter {
        channel: Some("wechat".into()),
        ..period.clone()
    };
    assert!(all("t1", wechat).await.is_empty());
    let by_agent = EpisodeFilter {
        agent: Some("ag_x".into()),
        ..period.clone()
    };
    assert!(all("t1", by_agent).await.is_empty());
    let web = EpisodeFilter {
        channel: Some("web".into()),
        skill_group: Some("general".into()),
        ..period
    };
    assert_eq!(all("t1", web).await.len(), 1);
    // The tag filter finds a whole tag as it is written (the same on both backends), with
    // LIKE's characters taken literally.
    for (tag, found) in [
        ("vip", 1),
        ("50%_off", 1),
        ("vi", 0),
        ("VIP", 0),
        ("50%", 0),
        ("%", 0),
    ] {
        let filter = EpisodeFilter {
            from: closed_at - 10,
            to: closed_at + 10,
            tag: Some(tag.into()),
            ..Default::default()
        };
        assert_eq!(all("t1", filter).await.len(), found, "{tag}");
    }
    // Pages continue after the last row of the previous one.
    let page = store
        .rated_episodes(
            "t1",
            &EpisodeFilter {
                from: 0,
                to: i64::MAX,
                ..Default::default()
            },
            Some((closed_at, &quiet_id)),
            10,
        )
        .await
        .unwrap();
    assert!(page.is_empty());
    let page = store
        .rated_episodes(
            "t1",
            &EpisodeFilter {
                from: 0,
                to: i64::MAX,
                ..Default::default()
            },
            Some((closed_at - 1, "")),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
}

/// PostgreSQL cannot store a NUL character as text; the store says so as bad input (the edge
/// answers `400 bad_text`), not as a fault. SQLite stores it.
async fn text_postgresql_cannot_store_is_bad_input(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    let stored = store
        .append_customer_message(&customer, Some("a"), "a\u{0}b", &queued())
        .await;
    match store.dialect() {
        store::Dialect::Sqlite => assert_eq!(stored.unwrap().message.text, "a\u{0}b"),
        store::Dialect::Postgres => {
            assert!(stored.is_err_and(|error| error.is_unstorable_text()))
        }
    }
    let fine = store
        .append_customer_message(&customer, Some("b"), "fine", &queued())
        .await;
    assert!(fine.is_ok(), "{fine:?}");
}

/// A page for a client: at most its rows, and no more once its texts (with a frame's overhead
/// each) reach its bytes, the message that crosses included; read 16 rows at a time, so a page
/// spans several reads.
async fn a_page_of_messages_stops_at_its_rows_or_its_bytes(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let customer = store
        .customer_for_identity("t1", ChannelKind::Web, "v1", &CustomerProfile::default())
        .await
        .unwrap();
    let mut conversation = String::new();
    for n in 0..40 {
        let text = if n % 10 == 9 {
            "x".repeat(1_000)
        } else {
            format!("m{n}")
        };
        let appended = store
            .append_customer_message(&customer, Some(&format!("c{n}")), &text, &queued())
            .await
            .unwrap();
        conversation = appended.conversation.id;
    }
    let seqs = |page: &[store::MessageRecord]| page.iter().map(|m| m.seq).collect::<Vec<_>>();
    // Rows: 20 of 40, over two reads.
    let page = store
        .messages_page(&conversation, 0, 20, usize::MAX)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (1..=20).collect::<Vec<_>>());
    // Bytes: the tenth message (1,000 bytes) crosses 2,000; the page ends with it.
    let limit = 2_000;
    let page = store
        .messages_page(&conversation, 0, 100, limit)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    // From the middle, past the end: what is left.
    let page = store
        .messages_page(&conversation, 35, 100, usize::MAX)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (36..=40).collect::<Vec<_>>());
    // A message longer than the whole page still makes a page of its own.
    let page = store
        .messages_page(&conversation, 18, 100, 10)
        .await
        .unwrap();
    assert_eq!(seqs(&page), [19]);
}
