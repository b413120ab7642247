//! What the store's suites share: a store on a fresh database (SQLite in a temporary folder, or
//! a database of its own on the local PostgreSQL server), and `each_backend!`, which runs each
//! named test on both.

// Each suite is its own crate and uses a different part of this module.
#![allow(dead_code)]

use store::crypto::{FieldCipher, SecretKey};
use store::Store;

/// A store on a fresh database plus whatever must live as long as it.
pub struct Backend {
    pub store: Store,
    pub url: String,
    pub key: SecretKey,
    cleanup: Option<store::testing::PostgresDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Backend::open(url, None, Some(dir)).await
    }

    pub async fn postgres() -> Backend {
        let database = store::testing::PostgresDatabase::create().await.expect(
            "the local PostgreSQL server (127.0.0.1:5432) must be running for the store suite",
        );
        let url = database.url.clone();
        Backend::open(url, Some(database), None).await
    }

    async fn open(
        url: String,
        cleanup: Option<store::testing::PostgresDatabase>,
        dir: Option<tempfile::TempDir>,
    ) -> Backend {
        let key = SecretKey::generate();
        let store = Store::connect(&url, FieldCipher::new(&key))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        // Migrating twice is harmless.
        store.migrate().await.expect("migrate again");
        Backend {
            store,
            url,
            key,
            cleanup,
            _dir: dir,
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some(database) = self.cleanup {
            database.drop_database().await;
        }
    }
}

/// Runs each named `async fn(&Backend)` on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = super::Backend::sqlite().await;
                super::$name(&backend).await;
                backend.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = super::Backend::postgres().await;
                super::$name(&backend).await;
                backend.finish().await;
            })*
        }
    };
}
