//! Attachment rows and the blob store that goes with each database (files beside SQLite, chunks
//! in PostgreSQL), on both backends.

use futures_util::StreamExt as _;
use store::attachments::{AttachmentKind, AttachmentRecord};
use store::blobs::{for_store, CHUNK_BYTES};
use store::StoreError;

#[macro_use]
mod common;

use common::Backend;

each_backend!(
    blobs_stream_back_in_bounded_chunks_and_are_deleted,
    attachments_belong_to_their_uploader_and_tenant,
    erasing_a_customer_leaves_nothing_of_theirs,
);

async fn blobs_stream_back_in_bounded_chunks_and_are_deleted(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = for_store(&backend.store, dir.path());
    let expected = match backend.store.dialect() {
        store::Dialect::Sqlite => "files",
        store::Dialect::Postgres => "database",
    };
    assert_eq!(blobs.name(), expected);
    // Two and a half chunks of a pattern that shows any reordering.
    let content: Vec<u8> = (0..(CHUNK_BYTES * 5 / 2))
        .map(|i| (i % 251) as u8)
        .collect();
    let path = dir.path().join("upload");
    std::fs::write(&path, &content).unwrap();
    blobs.put("t1/a1", &path).await.unwrap();
    assert!(!path.exists(), "the uploaded file is consumed");

    let blob = blobs.open("t1/a1").await.unwrap().expect("stored");
    assert_eq!(blob.size, content.len() as u64);
    let chunks: Vec<_> = blob.chunks.collect().await;
    let mut read = Vec::new();
    for chunk in chunks {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= CHUNK_BYTES, "a chunk of {}", chunk.len());
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, content);

    // An empty file is a blob too; a missing key is none; a key that climbs out is refused.
    std::fs::write(&path, b"").unwrap();
    blobs.put("t1/empty", &path).await.unwrap();
    assert_eq!(
        blobs.open("t1/empty").await.unwrap().expect("stored").size,
        0
    );
    assert!(blobs.open("t1/none").await.unwrap().is_none());
    std::fs::write(&path, b"x").unwrap();
    assert!(matches!(
        blobs.put("../../etc/x", &path).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(blobs.open("t1/../t2/a1").await.is_err());

    // Putting again replaces; deleting twice is fine.
    std::fs::write(&path, b"second").unwrap();
    blobs.put("t1/a1", &path).await.unwrap();
    assert_eq!(blobs.open("t1/a1").await.unwrap().unwrap().size, 6);
    blobs.delete("t1/a1").await.unwrap();
    blobs.delete("t1/a1").await.unwrap();
    assert!(blobs.open("t1/a1").await.unwrap().is_none());
}

fn record(tenant: &str, id: &str, uploader: &str, created_at: i64) -> AttachmentRecord {
    AttachmentRecord {
        id: id.into(),
        tenant_id: tenant.into(),
        uploader_kind: "customer".into(),
        uploader_id: uploader.into(),
        kind: AttachmentKind::Image,
        name: "照片.png".into(),
        media_type: "image/png".into(),
        size: 1234,
        width: Some(640),
        height: Some(480),
        thumbnail: true,
        sha256: "ab".repeat(32),
        created_at,
    }
}

async fn attachments_belong_to_their_uploader_and_tenant(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    store
        .insert_attachment(&record("t1", "a1", "c1", 1_000))
        .await
        .unwrap();
    store
        .insert_attachment(&record("t1", "a2", "c2", 2_000))
        .await
        .unwrap();
    store
        .insert_attachment(&record("t2", "a3", "c1", 3_000))
        .await
        .unwrap();
    // An unknown tenant's upload is refused.
    assert!(store
        .insert_attachment(&record("nobody", "a4", "c1", 1))
        .await
        .is_err());

    let found = store.attachment("t1", "a1").await.unwrap().expect("a1");
    assert_eq!(found, record("t1", "a1", "c1", 1_000));
    assert!(store.attachment("t2", "a1").await.unwrap().is_none());
    assert_eq!(
        store
            .attachment_by_id("a3")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        "t2"
    );

    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mine = store
        .uploaded_attachments("t1", "customer", "c1", &ids(&["a1"]))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    // Another customer's, another tenant's, an agent's view of a customer's, or an unknown id.
    for (tenant, kind, uploader, list) in [
        ("t1", "customer", "c1", ids(&["a1", "a2"])),
        ("t1", "customer", "c1", ids(&["a3"])),
        ("t1", "agent", "c1", ids(&["a1"])),
        ("t1", "customer", "c1", ids(&["zz"])),
    ] {
        assert!(matches!(
            store
                .uploaded_attachments(tenant, kind, uploader, &list)
                .await,
            Err(StoreError::NotFound(_))
        ));
    }

    let mut tenants = store.attachment_tenants().await.unwrap();
    tenants.sort();
    assert_eq!(tenants, ["t1", "t2"]);
    let old = store
        .attachments_before(Some("t1"), 1_500, 10)
        .await
        .unwrap();
    assert_eq!(
        old.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1"]
    );
    assert_eq!(
        store
            .attachments_before(None, 10_000, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .delete_attachment_rows("t1", &ids(&["a1", "a3"]))
            .await
            .unwrap(),
        1,
        "another tenant's row stays"
    );
    assert!(store.attachment("t1", "a1").await.unwrap().is_none());
    assert!(store.attachment("t2", "a3").await.unwrap().is_some());
}

async fn erasing_a_customer_leaves_nothing_of_theirs(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    let profile = store::CustomerProfile {
        phone: Some("+86 138 0000 0000".into()),
        ..Default::default()
    };
    let customer = |visitor: &'static str| {
        let profile = profile.clone();
        async move {
            store
                .customer_for_identity(
                    "t1",
                    switchboard_channels::ChannelKind::Web,
                    visitor,
                    &profile,
                )
                .await
                .unwrap()
        }
    };
    let (erased, kept) = (customer("v1").await, customer("v2").await);
    // The same person on another channel identity, linked by their CRM id.
    let linked = customer("v1-app").await;
    store
        .link_customer("t1", &erased.id, "crm-7")
        .await
        .unwrap();
    store
        .link_customer("t1", &linked.id, "crm-7")
        .await
        .unwrap();
    store.link_customer("t1", &kept.id, "crm-8").await.unwrap();
    let person = store.person_of("t1", &erased.id).await.unwrap();
    assert_eq!(person.len(), 2);
    assert_eq!(person[0], erased.id);
    assert!(person.contains(&linked.id));
    store
        .insert_attachment(&record("t1", "from-app", &linked.id, 1_000))
        .await
        .unwrap();
    let entry = store::Entry {
        state: store::ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    };
    store
        .insert_attachment(&record("t1", "sent", &erased.id, 1_000))
        .await
        .unwrap();
    store
        .insert_attachment(&record("t1", "unsent", &erased.id, 1_000))
        .await
        .unwrap();
    store
        .insert_attachment(&record("t1", "other", &kept.id, 1_000))
        .await
        .unwrap();
    let meta = serde_json::json!({"attachments": [{"id": "sent", "kind": "image", "name": "a.png",
        "media_type": "image/png", "size": 1234}]});
    let conversation = store
        .append_customer_message_with(&erased, Some("c1"), "", &entry, Some(meta))
        .await
        .unwrap()
        .conversation;
    store
        .append_customer_message(&erased, Some("c2"), "my phone is 138", &entry)
        .await
        .unwrap();
    let other = store
        .append_customer_message(&kept, Some("c1"), "hello", &entry)
        .await
        .unwrap()
        .conversation;

    let mut listed: Vec<String> = store
        .customer_attachments("t1", &erased.id)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.id)
        .collect();
    listed.sort();
    assert_eq!(listed, ["sent", "unsent"]);

    // Open: refused, nothing goes.
    assert!(matches!(
        store.erase_customers("t1", &person).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .recent_messages(&conversation.id, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Queued, then assigned and closed by an agent.
    let agent = store
        .create_agent("t1", "Ann", &["general".into()], 5)
        .await
        .unwrap();
    store
        .assign(&conversation.id, &agent, "joined")
        .await
        .unwrap()
        .expect("assigned");
    store
        .append_agent_message(&conversation.id, &agent.id, "a1", "here is the label")
        .await
        .unwrap();
    store
        .close_conversation(&conversation.id, &agent.id, "closed")
        .await
        .unwrap()
        .expect("closed");
    let mut listed: Vec<String> = Vec::new();
    for id in &person {
        for record in store.customer_attachments("t1", id).await.unwrap() {
            listed.push(record.id);
        }
    }
    listed.sort();
    assert_eq!(listed, ["from-app", "sent", "unsent"]);
    let erased_counts = store
        .erase_customers("t1", &person)
        .await
        .unwrap()
        .expect("erased");
    assert_eq!(erased_counts.customers, 2);
    assert_eq!(erased_counts.conversations, 1);
    assert!(erased_counts.messages >= 2, "{erased_counts:?}");
    assert!(store.customer("t1", &erased.id).await.unwrap().is_none());
    assert!(store
        .conversation(&conversation.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .recent_messages(&conversation.id, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.customer("t1", &linked.id).await.unwrap().is_none());
    assert!(store.person_of("t1", &kept.id).await.unwrap() == [kept.id.clone()]);
    assert_eq!(store.erase_customers("t1", &person).await.unwrap(), None);
    // The other customer keeps everything.
    assert!(store.customer("t1", &kept.id).await.unwrap().is_some());
    assert_eq!(store.recent_messages(&other.id, 10).await.unwrap().len(), 1);
    assert!(store.attachment("t1", "other").await.unwrap().is_some());
}
