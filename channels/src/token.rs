//! A cached provider token (WeChat access_token, Douyin client_token): fetched on first use,
//! refreshed a margin before it expires, and dropped when the provider says it is invalid.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::adapter::SendError;

/// A token as the provider issued it.
#[derive(Debug, Clone)]
pub(crate) struct FetchedToken {
    pub token: String,
    pub expires_in: Duration,
}

pub(crate) struct TokenCache {
    /// A tokio mutex: it is held across the fetch so that concurrent senders wait for one
    /// fetch instead of each asking the provider (which would invalidate the others' tokens).
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
    refresh_margin: Duration,
    fetches: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(refresh_margin: Duration) -> Self {
        TokenCache {
            current: tokio::sync::Mutex::new(None),
            refresh_margin,
            fetches: AtomicU64::new(0),
        }
    }

    /// The cached token, or a fresh one from `fetch` when none is cached or it expires within
    /// the refresh margin.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<String, SendError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, SendError>>,
    {
        let mut current = self.current.lock().await;
        if let Some((token, expires_at)) = current.as_ref() {
            if Instant::now() + self.refresh_margin < *expires_at {
                return Ok(token.clone());
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = fetch().await?;
        let expires_at = Instant::now() + fetched.expires_in;
        *current = Some((fetched.token.clone(), expires_at));
        Ok(fetched.token)
    }

    /// Forgets `stale` if it is still the cached token (another task may already have refreshed).
    pub(crate) async fn invalidate(&self, stale: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(token, _)| token == stale) {
            *current = None;
        }
    }

    /// How many times the provider was asked for a token (for metrics and tests).
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}
