//! Identified visitors (`store::identity`): the tenant's identity secret and options, and the
//! web identity of a signed-in user linked to the user id, on SQLite and PostgreSQL.

use sqlx::Row;
use store::crypto::{FieldCipher, SecretKey};
use store::{CustomerProfile, Store, StoreError};
use switchboard_channels::ChannelKind;

#[macro_use]
mod common;

use common::Backend;

each_backend!(
    the_identity_secret_is_sealed_rotated_and_removed,
    requiring_identification_needs_a_secret,
    a_user_is_one_web_identity_linked_with_their_other_channels,
    identified_visitors_tokens_can_be_revoked_at_once,
);

async fn the_identity_secret_is_sealed_rotated_and_removed(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let none = store.tenant_identity("t1").await.unwrap();
    assert!(!none.secret_set && !none.required && !none.link_mobile);
    assert_eq!(none.secret, "");

    let made = store
        .set_identity_secret("t1", "first-secret")
        .await
        .unwrap();
    assert!(made.secret_set);
    assert_eq!(made.secret, "first-secret");
    assert!(made.secret_created_at.is_some());
    // Never serialized, never stored in the clear.
    assert!(!serde_json::to_string(&made)
        .unwrap()
        .contains("first-secret"));
    assert!(!format!("{made:?}").contains("first-secret"));
    let row = sqlx::query("SELECT secret_enc FROM tenant_identity WHERE tenant_id = 't1'")
        .fetch_one(&sqlx::AnyPool::connect(&backend.url).await.unwrap())
        .await
        .unwrap();
    let sealed: String = row.try_get("secret_enc").unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains("first-secret"));
    // A node with another key cannot read it.
    let stranger = Store::connect(&backend.url, FieldCipher::new(&SecretKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        stranger.tenant_identity("t1").await,
        Err(StoreError::Corrupt(_))
    ));
    stranger.close().await;

    // Rotation replaces it and keeps the options; another tenant is untouched.
    store
        .set_identity_options("t1", Some(true), Some(true))
        .await
        .unwrap();
    let rotated = store
        .set_identity_secret("t1", "second-secret")
        .await
        .unwrap();
    assert_eq!(rotated.secret, "second-secret");
    assert!(rotated.required && rotated.link_mobile);
    assert!(!store.tenant_identity("t2").await.unwrap().secret_set);
    assert!(matches!(
        store.set_identity_secret("t1", "").await,
        Err(StoreError::Invalid(_))
    ));

    // Removed: no secret, nothing required (nobody could meet it); the mobile option stays.
    let removed = store.remove_identity_secret("t1").await.unwrap();
    assert!(!removed.secret_set && !removed.required && removed.link_mobile);
    assert_eq!(removed.secret, "");
    assert!(removed.secret_created_at.is_none());
    // Removing what a tenant never had changes nothing.
    assert!(!store.remove_identity_secret("t2").await.unwrap().secret_set);
}

async fn requiring_identification_needs_a_secret(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    assert!(matches!(
        store.set_identity_options("t1", Some(true), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!store.tenant_identity("t1").await.unwrap().required);
    // The mobile option needs no secret; `None` keeps a value.
    let linked = store
        .set_identity_options("t1", None, Some(true))
        .await
        .unwrap();
    assert!(linked.link_mobile && !linked.required && !linked.secret_set);
    store.set_identity_secret("t1", "s").await.unwrap();
    let required = store
        .set_identity_options("t1", Some(true), None)
        .await
        .unwrap();
    assert!(required.required && required.link_mobile);
    let relaxed = store
        .set_identity_options("t1", Some(false), Some(false))
        .await
        .unwrap();
    assert!(!relaxed.required && !relaxed.link_mobile && relaxed.secret_set);
}

async fn a_user_is_one_web_identity_linked_with_their_other_channels(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let none = CustomerProfile::default();

    // The first browser makes the identity and links it: it is the primary.
    let (identity, customer) = store
        .identified_visitor("t1", "user-7", &none)
        .await
        .unwrap();
    assert_eq!(identity.channel, "web");
    assert_eq!(identity.external_id, "user:user-7");
    assert_eq!(customer.id, identity.id);
    // Any other browser: the same identity and customer.
    let (again, customer_again) = store
        .identified_visitor("t1", "user-7", &none)
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), customer_again.id.as_str()),
        (identity.id.as_str(), identity.id.as_str())
    );
    // Another user, and the same user id in another tenant, are other people.
    let (other, _) = store
        .identified_visitor("t1", "user-8", &none)
        .await
        .unwrap();
    assert_ne!(other.id, identity.id);
    let (elsewhere, _) = store
        .identified_visitor("t2", "user-7", &none)
        .await
        .unwrap();
    assert_ne!(elsewhere.id, identity.id);

    // The app user with the same id joins the web identity's conversation; so does an identity
    // an admin linked to the same CRM id.
    let app_user = store
        .customer_for_identity("t1", ChannelKind::Mobile, "app:user-7", &none)
        .await
        .unwrap();
    assert_eq!(
        store.link_to_user(&app_user, "user-7").await.unwrap().id,
        identity.id
    );
    let wechat = store
        .customer_for_identity("t1", ChannelKind::Wechat, "wx:o7", &none)
        .await
        .unwrap();
    store
        .link_customer("t1", &wechat.id, "user-7")
        .await
        .unwrap();
    assert_eq!(
        store.primary_customer(&wechat).await.unwrap().id,
        identity.id
    );

    // An identity an admin linked elsewhere keeps that link.
    let linked_elsewhere = store
        .customer_for_identity("t1", ChannelKind::Mobile, "app:user-9", &none)
        .await
        .unwrap();
    store
        .link_customer("t1", &linked_elsewhere.id, "crm-9")
        .await
        .unwrap();
    assert_eq!(
        store
            .link_to_user(&linked_elsewhere, "user-7")
            .await
            .unwrap()
            .id,
        linked_elsewhere.id
    );

    // One conversation for all of them.
    let entry = store::Entry {
        state: store::ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    };
    let from_web = store
        .append_customer_message(&customer, Some("w1"), "from the pc", &entry)
        .await
        .unwrap();
    let from_app = store
        .append_customer_message(
            &store.link_to_user(&app_user, "user-7").await.unwrap(),
            Some("m1"),
            "from the app",
            &entry,
        )
        .await
        .unwrap();
    assert_eq!(from_web.conversation.id, from_app.conversation.id);
    assert_eq!(from_app.message.seq, 2);
    assert!(store
        .conversation_for_customer(&other.id)
        .await
        .unwrap()
        .is_none());
}

async fn identified_visitors_tokens_can_be_revoked_at_once(backend: &Backend) {
    let store = &backend.store;
    store.create_tenant("t1", "h").await.unwrap();
    store.create_tenant("t2", "h").await.unwrap();
    let none = CustomerProfile::default();
    let anonymous = store
        .customer_for_identity("t1", ChannelKind::Web, "v_1", &none)
        .await
        .unwrap();
    // user-7 signed in on the web first: their web identity owns the conversation.
    let (seven, _) = store
        .identified_visitor("t1", "user-7", &none)
        .await
        .unwrap();
    let seven_app = store
        .customer_for_identity("t1", ChannelKind::Mobile, "app:user-7", &none)
        .await
        .unwrap();
    store.link_to_user(&seven_app, "user-7").await.unwrap();
    // user-8 came from the app first: the app identity owns it, and web tokens name it.
    let eight_app = store
        .customer_for_identity("t1", ChannelKind::Mobile, "app:user-8", &none)
        .await
        .unwrap();
    store.link_to_user(&eight_app, "user-8").await.unwrap();
    let (eight, eight_customer) = store
        .identified_visitor("t1", "user-8", &none)
        .await
        .unwrap();
    assert_eq!(eight_customer.id, eight_app.id);
    let (elsewhere, _) = store
        .identified_visitor("t2", "user-7", &none)
        .await
        .unwrap();

    let mut revoked = store.revoke_identified_tokens("t1").await.unwrap();
    revoked.sort();
    let mut expected = vec![
        (seven.id.clone(), 1),
        (eight.id.clone(), 1),
        (eight_app.id.clone(), 1),
    ];
    expected.sort();
    assert_eq!(revoked, expected);
    let version = |id: String, tenant: &'static str| async move {
        store
            .customer(tenant, &id)
            .await
            .unwrap()
            .unwrap()
            .token_version
    };
    assert_eq!(version(anonymous.id.clone(), "t1").await, 0);
    assert_eq!(version(seven_app.id.clone(), "t1").await, 0);
    assert_eq!(version(elsewhere.id.clone(), "t2").await, 0);
    assert_eq!(version(seven.id.clone(), "t1").await, 1);
    // Again: one more each.
    assert_eq!(store.revoke_identified_tokens("t1").await.unwrap().len(), 3);
    assert_eq!(version(seven.id.clone(), "t1").await, 2);
    assert!(store
        .revoke_identified_tokens("nobody")
        .await
        .unwrap()
        .is_empty());
}
