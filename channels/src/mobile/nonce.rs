//! Remembering token nonces for their window, so a replayed token is refused.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceStoreError {
    /// Every slot holds a nonce still inside its window; forgetting one would allow its replay.
    #[error("nonce store is full ({0} live nonces)")]
    Full(usize),
    #[error("nonce store is unavailable: {0}")]
    Unavailable(String),
}

pub type NonceFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, NonceStoreError>> + Send + 'a>>;
pub type ForgetFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NonceStoreError>> + Send + 'a>>;

/// Where nonces are remembered. The in-memory store serves one node; a Redis store
/// (`SET key 1 NX EXAT remember_until`) serves a cluster behind the same trait.
pub trait NonceStore: Send + Sync {
    /// Records `key` until `remember_until` (unix seconds). Answers `true` when the key was new,
    /// `false` when it is already remembered (a replay).
    fn remember<'a>(&'a self, key: &'a str, now_unix: i64, remember_until: i64) -> NonceFuture<'a>;

    /// Forgets `key`, so it is accepted once more: for a delivery remembered but then not
    /// processed, whose sender retries with the same nonce.
    fn forget<'a>(&'a self, key: &'a str) -> ForgetFuture<'a>;
}

/// A bounded in-memory nonce store with expiry. Cheap to share: hold it in an `Arc`.
#[derive(Debug)]
pub struct MemoryNonceStore {
    capacity: usize,
    /// A std mutex: it is never held across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    expiry_by_key: HashMap<String, i64>,
    /// (expiry, key), to drop expired nonces oldest first.
    by_expiry: BTreeSet<(i64, String)>,
}

impl MemoryNonceStore {
    pub fn new(capacity: usize) -> Self {
        MemoryNonceStore {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .map(|inner| inner.expiry_by_key.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remember_now(
        &self,
        key: &str,
        now_unix: i64,
        remember_until: i64,
    ) -> Result<bool, NonceStoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| NonceStoreError::Unavailable("lock poisoned".to_owned()))?;
        // Drop everything that has expired.
        while let Some((expiry, _)) = inner.by_expiry.first() {
            if *expiry > now_unix {
                break;
            }
            if let Some((_, expired)) = inner.by_expiry.pop_first() {
                inner.expiry_by_key.remove(&expired);
            }
        }
        if inner.expiry_by_key.contains_key(key) {
            return Ok(false);
        }
        if inner.expiry_by_key.len() >= self.capacity {
            return Err(NonceStoreError::Full(inner.expiry_by_key.len()));
        }
        inner.expiry_by_key.insert(key.to_owned(), remember_until);
        inner.by_expiry.insert((remember_until, key.to_owned()));
        Ok(true)
    }
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore::new(100_000)
    }
}

impl NonceStore for MemoryNonceStore {
    fn remember<'a>(&'a self, key: &'a str, now_unix: i64, remember_until: i64) -> NonceFuture<'a> {
        let result = self.remember_now(key, now_unix, remember_until);
        Box::pin(std::future::ready(result))
    }

    fn forget<'a>(&'a self, key: &'a str) -> ForgetFuture<'a> {
        let result = match self.inner.lock() {
            Ok(mut inner) => {
                if let Some(expiry) = inner.expiry_by_key.remove(key) {
                    inner.by_expiry.remove(&(expiry, key.to_owned()));
                }
                Ok(())
            }
            Err(_) => Err(NonceStoreError::Unavailable("lock poisoned".to_owned())),
        };
        Box::pin(std::future::ready(result))
    }
}

/// One bounded [`MemoryNonceStore`] per tenant, so a tenant that fills its own (with tokens its
/// app server mints, or pushes signed with its own WeChat token) refuses no other tenant's.
/// A key begins with its tenant's slug, ended by `:` or `/` (`<tenant>:<nonce>` for mobile
/// tokens, `<tenant>/push/...` for webhook pushes); slugs hold neither. Keys reach the store only
/// after their tenant and app were found, so the tenants it holds are real ones.
#[derive(Debug)]
pub struct TenantNonceStore {
    per_tenant: usize,
    tenants: Mutex<HashMap<String, std::sync::Arc<MemoryNonceStore>>>,
}

impl TenantNonceStore {
    pub fn new(per_tenant: usize) -> Self {
        TenantNonceStore {
            per_tenant,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    fn tenant_of(key: &str) -> &str {
        key.split([':', '/']).next().unwrap_or(key)
    }

    fn store(&self, key: &str) -> Result<std::sync::Arc<MemoryNonceStore>, NonceStoreError> {
        let mut tenants = self
            .tenants
            .lock()
            .map_err(|_| NonceStoreError::Unavailable("lock poisoned".to_owned()))?;
        let tenant = Self::tenant_of(key);
        if let Some(store) = tenants.get(tenant) {
            return Ok(store.clone());
        }
        let store = std::sync::Arc::new(MemoryNonceStore::new(self.per_tenant));
        tenants.insert(tenant.to_owned(), store.clone());
        Ok(store)
    }
}

impl Default for TenantNonceStore {
    fn default() -> Self {
        TenantNonceStore::new(100_000)
    }
}

impl NonceStore for TenantNonceStore {
    fn remember<'a>(&'a self, key: &'a str, now_unix: i64, remember_until: i64) -> NonceFuture<'a> {
        let result = self
            .store(key)
            .and_then(|store| store.remember_now(key, now_unix, remember_until));
        Box::pin(std::future::ready(result))
    }

    fn forget<'a>(&'a self, key: &'a str) -> ForgetFuture<'a> {
        match self.store(key) {
            Ok(store) => Box::pin(async move { store.forget(key).await }),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}
