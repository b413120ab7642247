//! Where attachment bytes live: [`BlobStore`], with two implementations chosen at start-up like
//! the database: [`FileBlobs`] (files under the data folder, the embedded default) and
//! [`DatabaseBlobs`] (PostgreSQL, in chunks, so every node of a cluster serves every blob
//! without a shared disk). Neither ever holds a whole blob in memory: a blob goes in from a
//! finished file on disk and comes out as a stream of chunks.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use sqlx::{AnyPool, Row};
use tokio::io::AsyncReadExt as _;

use crate::{Dialect, Store, StoreError, StoreResult};

/// The largest chunk a blob is read or written in.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A stored blob, opened: its size and its bytes in chunks.
pub struct Blob {
    pub size: u64,
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Keeps blobs by key (`tenant/id`, `tenant/id.thumb`: letters, digits, `-`, `_`, `.`, one `/`).
pub trait BlobStore: Send + Sync {
    /// `files` or `database`, for logs and the health page.
    fn name(&self) -> &'static str;
    /// Stores the finished file at `path` under `key`; the file is consumed (moved or deleted).
    fn put<'a>(&'a self, key: &'a str, path: &'a Path) -> BoxFuture<'a, StoreResult<()>>;
    /// The blob under `key`, or `None`.
    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Blob>>>;
    /// Deletes the blob under `key` (nothing if there is none).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;
}

/// A key is two plain segments: nothing that could climb out of the blob folder.
fn check_key(key: &str) -> StoreResult<()> {
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment.len() <= 200
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match key.split_once('/') {
        Some((tenant, name)) if plain(tenant) && plain(name) => Ok(()),
        _ => Err(StoreError::Invalid(format!("bad blob key `{key}`"))),
    }
}

/// The blob store that goes with the database: blobs in PostgreSQL for a PostgreSQL store (a
/// cluster), files under `data_dir/blobs` otherwise.
pub fn for_store(store: &Store, data_dir: &Path) -> std::sync::Arc<dyn BlobStore> {
    match store.dialect() {
        Dialect::Postgres => std::sync::Arc::new(DatabaseBlobs::new(store)),
        Dialect::Sqlite => std::sync::Arc::new(FileBlobs::new(data_dir.join("blobs"))),
    }
}

// ---- files ------------------------------------------------------------------------------------

/// Blobs as files: `root/<tenant>/<id>`.
pub struct FileBlobs {
    root: PathBuf,
}

impl FileBlobs {
    pub fn new(root: PathBuf) -> Self {
        FileBlobs { root }
    }

    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error(what: &str, error: std::io::Error) -> StoreError {
    StoreError::Invalid(format!("blob {what}: {error}"))
}

impl BlobStore for FileBlobs {
    fn name(&self) -> &'static str {
        "files"
    }

    fn put<'a>(&'a self, key: &'a str, path: &'a Path) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let target = self.path(key)?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io_error("folder", e))?;
            }
            if tokio::fs::rename(path, &target).await.is_err() {
                // Another file system: copy, then drop the original.
                tokio::fs::copy(path, &target)
                    .await
                    .map_err(|e| io_error("copy", e))?;
                let _ = tokio::fs::remove_file(path).await;
            }
            Ok(())
        })
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Blob>>> {
        Box::pin(async move {
            let path = self.path(key)?;
            let file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(io_error("open", error)),
            };
            let size = file
                .metadata()
                .await
                .map_err(|e| io_error("size", e))?
                .len();
            let chunks = futures_util::stream::unfold(Some(file), |file| async move {
                let mut file = file?;
                let mut buffer = vec![0u8; 64 * 1024];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(read) => {
                        buffer.truncate(read);
                        Some((Ok(Bytes::from(buffer)), Some(file)))
                    }
                    Err(error) => Some((Err(error), None)),
                }
            });
            Ok(Some(Blob {
                size,
                chunks: chunks.boxed(),
            }))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            match tokio::fs::remove_file(self.path(key)?).await {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(io_error("delete", error)),
            }
        })
    }
}

// ---- database ---------------------------------------------------------------------------------

/// Blobs in PostgreSQL's `blob_chunks`, [`CHUNK_BYTES`] a row.
pub struct DatabaseBlobs {
    pool: AnyPool,
}

impl DatabaseBlobs {
    pub fn new(store: &Store) -> Self {
        DatabaseBlobs {
            pool: store.pool.clone(),
        }
    }
}

impl BlobStore for DatabaseBlobs {
    fn name(&self) -> &'static str {
        "database"
    }

    fn put<'a>(&'a self, key: &'a str, path: &'a Path) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| io_error("open", e))?;
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM blob_chunks WHERE blob_key = $1")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            let mut n: i64 = 0;
            let mut buffer = vec![0u8; CHUNK_BYTES];
            loop {
                // Fill a whole chunk (a read may return less).
                let mut filled = 0;
                while filled < CHUNK_BYTES {
                    let read = file
                        .read(&mut buffer[filled..])
                        .await
                        .map_err(|e| io_error("read", e))?;
                    if read == 0 {
                        break;
                    }
                    filled += read;
                }
                if filled == 0 && n > 0 {
                    break;
                }
                sqlx::query("INSERT INTO blob_chunks (blob_key, n, data) VALUES ($1, $2, $3)")
                    .bind(key)
                    .bind(n)
                    .bind(buffer[..filled].to_vec())
                    .execute(&mut *tx)
                    .await?;
                n += 1;
                if filled < CHUNK_BYTES {
                    break;
                }
            }
            tx.commit().await?;
            let _ = tokio::fs::remove_file(path).await;
            Ok(())
        })
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Blob>>> {
        Box::pin(async move {
            check_key(key)?;
            let row = sqlx::query(
                "SELECT COUNT(*) AS chunks, COALESCE(SUM(LENGTH(data)), 0) AS size \
                 FROM blob_chunks WHERE blob_key = $1",
            )
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
            let chunks: i64 = row.try_get("chunks")?;
            if chunks == 0 {
                return Ok(None);
            }
            let size: i64 = row.try_get("size")?;
            let (pool, key) = (self.pool.clone(), key.to_owned());
            // One chunk read at a time, as the reader takes them.
            let stream = futures_util::stream::unfold(0i64, move |n| {
                let (pool, key) = (pool.clone(), key.clone());
                async move {
                    if n >= chunks {
                        return None;
                    }
                    let row =
                        sqlx::query("SELECT data FROM blob_chunks WHERE blob_key = $1 AND n = $2")
                            .bind(&key)
                            .bind(n)
                            .fetch_optional(&pool)
                            .await;
                    let chunk = match row {
                        Ok(Some(row)) => row
                            .try_get::<Vec<u8>, _>("data")
                            .map(Bytes::from)
                            .map_err(std::io::Error::other),
                        Ok(None) => {
                            Err(std::io::Error::other(format!("chunk {n} of {key} is gone")))
                        }
                        Err(error) => Err(std::io::Error::other(error)),
                    };
                    // After an error the stream ends.
                    let next = if chunk.is_ok() { n + 1 } else { chunks };
                    Some((chunk, next))
                }
            });
            Ok(Some(Blob {
                size: size.max(0) as u64,
                chunks: stream.boxed(),
            }))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            sqlx::query("DELETE FROM blob_chunks WHERE blob_key = $1")
                .bind(key)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_cannot_climb_out() {
        assert!(check_key("t1/abc").is_ok());
        assert!(check_key("t1/abc.thumb").is_ok());
        for bad in [
            "../x",
            "t1/../x",
            "t1/..",
            "/etc",
            "t1/a/b",
            "t1/",
            "t1",
            "t1/.hidden",
            "t 1/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
