//! Background jobs: long work (intent training, knowledge-base imports) runs off the request,
//! and a console polls its row (`store::Job`) for progress, the result or the error. The row is
//! written when the job starts, at most every [`PROGRESS_EVERY`] while it runs (the latest
//! progress only), and when it ends; a running job's row is touched at least every
//! [`HEARTBEAT_EVERY`], so a job whose node died reads as lost.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{Job, Store};

use crate::error::{ServiceError, ServiceResult};

const PROGRESS_EVERY: Duration = Duration::from_millis(300);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(20);

/// What a running job reports; cheap to call from any thread, as often as it likes.
#[derive(Default)]
pub struct Progress {
    /// The latest report and how many reports there were.
    latest: Mutex<(u64, Option<serde_json::Value>)>,
}

impl Progress {
    pub fn report(&self, progress: serde_json::Value) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        *latest = (latest.0 + 1, Some(progress));
    }

    fn latest(&self) -> (u64, Option<serde_json::Value>) {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts `work` as a job of `kind` for `tenant` and returns its row at once. `work` gets the
/// progress handle; its `Ok` value is the job's result, its error the job's error.
pub async fn start<F, Fut>(
    store: &Store,
    tenant: &str,
    kind: &str,
    started_by: &str,
    work: F,
) -> ServiceResult<Job>
where
    F: FnOnce(Arc<Progress>) -> Fut + Send + 'static,
    Fut: Future<Output = ServiceResult<serde_json::Value>> + Send + 'static,
{
    let job = store.create_job(tenant, kind, started_by).await?;
    let progress = Arc::new(Progress::default());
    let (store, id) = (store.clone(), job.id.clone());
    tokio::spawn(async move {
        let writer = {
            let (store, id, progress) = (store.clone(), id.clone(), progress.clone());
            tokio::spawn(async move {
                let mut written = 0;
                let mut since_write = Duration::ZERO;
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    since_write += PROGRESS_EVERY;
                    let (version, latest) = progress.latest();
                    if version == written && since_write < HEARTBEAT_EVERY {
                        continue;
                    }
                    let latest = latest.unwrap_or_else(|| serde_json::json!({}));
                    if let Err(error) = store.job_progress(&id, &latest).await {
                        tracing::warn!(job = %id, %error, "job progress not written");
                    }
                    (written, since_write) = (version, Duration::ZERO);
                }
            })
        };
        let outcome = work(progress.clone()).await;
        writer.abort();
        // The last progress stands with the result (a short job may end before any write).
        if let (_, Some(latest)) = progress.latest() {
            if let Err(error) = store.job_progress(&id, &latest).await {
                tracing::warn!(job = %id, %error, "job progress not written");
            }
        }
        let finished = match &outcome {
            Ok(result) => store.finish_job(&id, Ok(result)).await,
            Err(error) => {
                if let ServiceError::Internal(cause) = error {
                    tracing::error!(job = %id, error = ?cause, "job failed");
                }
                let message = error.to_string();
                store.finish_job(&id, Err((error.code(), &message))).await
            }
        };
        if let Err(error) = finished {
            tracing::error!(job = %id, %error, "job end not written");
        }
    });
    Ok(job)
}
