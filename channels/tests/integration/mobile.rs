//! Mobile bearer tokens: signature, algorithm, expiry, staleness and replays.

use std::time::Duration;

use switchboard_channels::mobile::{
    sign_with_header, MemoryNonceStore, MobileAuthError, MobileClaims, MobileTokenVerifier,
    NonceStore, NonceStoreError, TenantNonceStore,
};

const NOW: i64 = 1_700_000_000;

fn claims(nonce: &str) -> MobileClaims {
    MobileClaims {
        sub: "app-user-42".into(),
        iat: NOW,
        exp: NOW + 600,
        nonce: nonce.into(),
    }
}

fn verifier() -> MobileTokenVerifier {
    MobileTokenVerifier::new(b"tenant-secret".to_vec())
}

#[tokio::test]
async fn a_fresh_token_is_accepted_once() {
    let store = MemoryNonceStore::default();
    let token = verifier().sign(&claims("n1"));
    let accepted = verifier()
        .authenticate(&token, NOW + 1, "tenant-a", &store)
        .await
        .expect("accepted");
    assert_eq!(accepted.sub, "app-user-42");
    let replay = verifier()
        .authenticate(&token, NOW + 2, "tenant-a", &store)
        .await;
    assert_eq!(replay, Err(MobileAuthError::Replayed));
    // The same nonce under another tenant is another key.
    let other = MobileTokenVerifier::new(b"tenant-secret".to_vec());
    assert!(other
        .authenticate(&token, NOW + 2, "tenant-b", &store)
        .await
        .is_ok());
}

#[test]
fn expired_and_stale_tokens_are_refused() {
    let expired = MobileClaims {
        exp: NOW - 1,
        ..claims("n")
    };
    assert_eq!(
        verifier().verify(&verifier().sign(&expired), NOW),
        Err(MobileAuthError::Expired)
    );
    let old = MobileClaims {
        iat: NOW - 301,
        exp: NOW + 600,
        ..claims("n")
    };
    assert_eq!(
        verifier().verify(&verifier().sign(&old), NOW),
        Err(MobileAuthError::Stale)
    );
    let future = MobileClaims {
        iat: NOW + 301,
        ..claims("n")
    };
    assert_eq!(
        verifier().verify(&verifier().sign(&future), NOW),
        Err(MobileAuthError::Stale)
    );
    let edge = MobileClaims {
        iat: NOW - 300,
        ..claims("n")
    };
    assert!(verifier().verify(&verifier().sign(&edge), NOW).is_ok());
    let strict = verifier().with_max_skew(Duration::from_secs(10));
    assert_eq!(
        strict.verify(&strict.sign(&edge), NOW),
        Err(MobileAuthError::Stale)
    );
}

#[test]
fn other_algorithms_and_bad_signatures_are_refused() {
    let claims = claims("n");
    let none = sign_with_header(b"tenant-secret", r#"{"alg":"none","typ":"JWT"}"#, &claims);
    let unsigned = format!("{}.", none.rsplit_once('.').expect("dot").0);
    assert_eq!(
        verifier().verify(&unsigned, NOW),
        Err(MobileAuthError::Algorithm("none".into()))
    );
    let hs512 = sign_with_header(b"tenant-secret", r#"{"alg":"HS512"}"#, &claims);
    assert!(matches!(
        verifier().verify(&hs512, NOW),
        Err(MobileAuthError::Algorithm(_))
    ));

    let other_secret = MobileTokenVerifier::new(b"another".to_vec()).sign(&claims);
    assert_eq!(
        verifier().verify(&other_secret, NOW),
        Err(MobileAuthError::BadSignature)
    );

    // Swap in a payload for another user, keep the signature.
    let token = verifier().sign(&claims);
    let forged_payload = verifier().sign(&MobileClaims {
        sub: "admin".into(),
        ..claims.clone()
    });
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged_payload.split('.').nth(1).expect("payload");
    assert_eq!(
        verifier().verify(&parts.join("."), NOW),
        Err(MobileAuthError::BadSignature)
    );
}

#[test]
fn malformed_tokens_are_typed_errors() {
    for token in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        "e30.e30.",
        &"x".repeat(9000),
    ] {
        assert!(
            matches!(
                verifier().verify(token, NOW),
                Err(MobileAuthError::Malformed(_))
            ),
            "{token:.20}"
        );
    }
    let empty_nonce = verifier().sign(&claims(""));
    assert_eq!(
        verifier().verify(&empty_nonce, NOW),
        Err(MobileAuthError::MissingClaim("nonce"))
    );
    // A signed `sub` too long for an index, or with a NUL, is malformed too.
    for sub in ["u".repeat(129), "user\u{0}".to_owned()] {
        let token = verifier().sign(&MobileClaims {
            sub,
            ..claims("n-sub")
        });
        assert!(matches!(
            verifier().verify(&token, NOW),
            Err(MobileAuthError::Malformed(_))
        ));
    }
    let longest = verifier().sign(&MobileClaims {
        sub: "u".repeat(128),
        ..claims("n-sub")
    });
    assert!(verifier().verify(&longest, NOW).is_ok());
}

#[tokio::test]
async fn the_nonce_store_is_bounded_and_forgets_after_the_window() {
    let store = MemoryNonceStore::new(2);
    assert_eq!(store.remember("a", NOW, NOW + 300).await, Ok(true));
    assert_eq!(store.remember("b", NOW, NOW + 300).await, Ok(true));
    assert_eq!(store.remember("a", NOW + 1, NOW + 301).await, Ok(false));
    // Full of live nonces: refuse rather than forget one that could then be replayed.
    assert_eq!(
        store.remember("c", NOW + 1, NOW + 301).await,
        Err(NonceStoreError::Full(2))
    );
    // After the window both expire, and room is made.
    assert_eq!(store.remember("c", NOW + 300, NOW + 600).await, Ok(true));
    assert_eq!(store.len(), 1);
    assert_eq!(store.remember("a", NOW + 301, NOW + 601).await, Ok(true));
    // A forgotten nonce is taken once more (a delivery that was not processed), and only once.
    assert_eq!(store.forget("a").await, Ok(()));
    assert_eq!(store.len(), 1);
    assert_eq!(store.remember("a", NOW + 302, NOW + 602).await, Ok(true));
    assert_eq!(store.remember("a", NOW + 303, NOW + 603).await, Ok(false));
    assert_eq!(store.forget("never remembered").await, Ok(()));

    // A full store surfaces as a typed error from authenticate.
    let tiny = MemoryNonceStore::new(1);
    let verifier = verifier();
    verifier
        .authenticate(&verifier.sign(&claims("x")), NOW, "t", &tiny)
        .await
        .expect("first");
    let error = verifier
        .authenticate(&verifier.sign(&claims("y")), NOW, "t", &tiny)
        .await
        .expect_err("full");
    assert_eq!(error.code(), "nonce_store_unavailable");
}

/// A tenant that fills its own nonces (tokens its app server mints, pushes it signs) refuses no
/// other tenant's: mobile keys and webhook push keys are counted per tenant.
#[tokio::test]
async fn one_tenant_cannot_fill_another_tenants_nonces() {
    let store = TenantNonceStore::new(2);
    assert_eq!(store.remember("evil:1", NOW, NOW + 300).await, Ok(true));
    assert_eq!(
        store
            .remember("evil/push/wechat/app/1/n", NOW, NOW + 300)
            .await,
        Ok(true)
    );
    assert_eq!(
        store.remember("evil:2", NOW, NOW + 300).await,
        Err(NonceStoreError::Full(2))
    );
    assert_eq!(store.remember("shop:1", NOW, NOW + 300).await, Ok(true));
    assert_eq!(
        store
            .remember("shop/push/wechat/app/1/n", NOW, NOW + 300)
            .await,
        Ok(true)
    );
    // Replays are still refused, forgetting still works, per tenant.
    assert_eq!(
        store.remember("shop:1", NOW + 1, NOW + 301).await,
        Ok(false)
    );
    assert_eq!(store.forget("evil:1").await, Ok(()));
    assert_eq!(store.remember("evil:2", NOW + 1, NOW + 301).await, Ok(true));
    // Through authenticate, under each tenant's scope.
    let verifier = verifier();
    let error = verifier
        .authenticate(&verifier.sign(&claims("z")), NOW, "evil", &store)
        .await
        .expect_err("evil is full");
    assert_eq!(error.code(), "nonce_store_unavailable");
    verifier
        .authenticate(&verifier.sign(&claims("z")), NOW, "other", &store)
        .await
        .expect("another tenant");
}
