//! Opening a store: the pool for its dialect, and the message writers.

use std::sync::Arc;

use sqlx::any::AnyPoolOptions;

use crate::crypto::FieldCipher;
use crate::{acks, append, Dialect, Store, StoreError, StoreOptions, StoreResult, SQLITE_PRAGMAS};

impl Store {
    /// Makes the PostgreSQL database `url` names when it does not exist yet (`CREATE DATABASE`
    /// on the same server, as the user of the url); answers whether it made it. The benches use
    /// it, so that a fresh machine needs no step by hand; the server itself never creates its
    /// database.
    pub async fn create_postgres_database_if_missing(url: &str) -> StoreResult<bool> {
        use sqlx::migrate::MigrateDatabase;
        if dialect_of(url)? != Dialect::Postgres {
            return Err(StoreError::Invalid(
                "only a PostgreSQL database is made this way (a SQLite file is made when the \
                 store connects)"
                    .into(),
            ));
        }
        if sqlx::Postgres::database_exists(url).await? {
            return Ok(false);
        }
        sqlx::Postgres::create_database(url).await?;
        Ok(true)
    }

    /// Connects to `sqlite://PATH` or `postgres://...` (the SQLite file is created if missing).
    /// Commits on SQLite are `synchronous = FULL` (see [`crate::SqliteSynchronous`]).
    pub async fn connect(url: &str, cipher: FieldCipher) -> StoreResult<Store> {
        Store::connect_with(url, cipher, StoreOptions::default()).await
    }

    /// [`Store::connect`] with options.
    pub async fn connect_with(
        url: &str,
        cipher: FieldCipher,
        store_options: StoreOptions,
    ) -> StoreResult<Store> {
        let synchronous = store_options.sqlite_synchronous;
        sqlx::any::install_default_drivers();
        let dialect = dialect_of(url)?;
        let url = match dialect {
            Dialect::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        // No round trip to test a pooled connection before each use (a failed one is replaced
        // when a statement on it fails).
        let options = AnyPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(match dialect {
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            });
        let options = if dialect == Dialect::Sqlite {
            options.after_connect(move |connection, _| {
                Box::pin(async move {
                    for pragma in SQLITE_PRAGMAS {
                        sqlx::query(*pragma).execute(&mut *connection).await?;
                    }
                    sqlx::query(synchronous.pragma())
                        .execute(&mut *connection)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url).await?;
        let write_lock =
            (dialect == Dialect::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let mut store = Store {
            pool,
            dialect,
            cipher,
            write_lock,
            appender: None,
            sqlite_synchronous: synchronous,
            acks: Arc::new(acks::Acks::new(store_options.ack_flush_ms)),
        };
        // On PostgreSQL a few batches commit at once (SQLite has one writer).
        store.appender = Some(append::start(&store, &url, 4));
        acks::start(&store);
        Ok(store)
    }
}

/// The backend a database url names.
fn dialect_of(url: &str) -> StoreResult<Dialect> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Dialect::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Dialect::Sqlite)
    } else {
        Err(StoreError::UnsupportedUrl(
            url.split(':').next().unwrap_or_default().to_owned(),
        ))
    }
}
