//! The bot itself (`switchboard_bot::Bot`: encoder, intent heads, the dense side of every
//! tenant's FAQs), built once the models are loaded; [`BotRuntime`] keeps its dense side in step
//! with the knowledge base's changes. Inference never runs on the async executor: the encoder
//! service has its own threads, the rest of a decision runs on the blocking pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switchboard_bot::{Bot, LlmSettings};
use switchboard_knowledge::KnowledgeIndex;
use tokio::sync::mpsc;

use crate::error::{ServiceError, ServiceResult};
use crate::intents::models;
use crate::kb::KbChange;
use store::Store;

pub struct BotRuntime {
    store: Store,
    index: Arc<KnowledgeIndex>,
    llm: Option<LlmSettings>,
    bot: tokio::sync::OnceCell<Result<Arc<Bot>, String>>,
    /// Knowledge-base changes applied to the dense side (compare `Knowledge::changes_sent`).
    changes_applied: AtomicU64,
}

impl BotRuntime {
    pub fn new(store: Store, index: Arc<KnowledgeIndex>, llm: Option<LlmSettings>) -> Arc<Self> {
        Arc::new(BotRuntime {
            store,
            index,
            llm,
            bot: tokio::sync::OnceCell::new(),
            changes_applied: AtomicU64::new(0),
        })
    }

    /// The bot, built on first use: models loaded, every tenant's FAQs embedded.
    pub async fn ready(&self) -> ServiceResult<Arc<Bot>> {
        self.bot
            .get_or_init(|| self.init())
            .await
            .clone()
            .map_err(|message| ServiceError::unavailable("models_unavailable", message))
    }

    /// Whether the bot was built (its models are loaded).
    pub fn is_built(&self) -> bool {
        self.bot.initialized()
    }

    /// Knowledge-base changes applied to the dense side so far.
    pub fn changes_applied(&self) -> u64 {
        self.changes_applied.load(Ordering::Relaxed)
    }

    async fn init(&self) -> Result<Arc<Bot>, String> {
        let models = models().await.map_err(|error| error.to_string())?;
        let mut bot = Bot::with_default_head(
            self.index.clone(),
            models.encoder.clone(),
            models.builtin.clone(),
        );
        if let Some(llm) = &self.llm {
            tracing::info!(base_url = %llm.base_url, model = %llm.model, "bot answers may be phrased by an LLM");
            bot = bot.with_llm(llm.clone());
        }
        let bot = Arc::new(bot);
        let started = Instant::now();
        let states = self.store.kb_revisions().await.map_err(|e| e.to_string())?;
        for (tenant, _) in states {
            let (records, _) = self
                .store
                .all_faqs(&tenant)
                .await
                .map_err(|e| e.to_string())?;
            let worker = bot.clone();
            let result =
                tokio::task::spawn_blocking(move || worker.rebuild_faqs(&tenant, &records)).await;
            if let Ok(Err(error)) = result {
                tracing::error!(error = %error, "cannot embed a tenant's FAQs");
            }
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "bot ready (FAQs embedded)"
        );
        Ok(bot)
    }

    /// Follows the knowledge base: every change to an index is applied to the dense side, in
    /// order, once the bot is ready (changes before that are covered by its initial build).
    /// Without `preload` it waits until a turn has loaded the bot.
    pub fn start_dense_sync(
        self: &Arc<Self>,
        mut changes: mpsc::UnboundedReceiver<KbChange>,
        preload: bool,
    ) {
        let runtime = self.clone();
        tokio::spawn(async move {
            while !preload && !runtime.bot.initialized() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let bot = match runtime.ready().await {
                Ok(bot) => bot,
                Err(error) => {
                    tracing::error!(error = %error, "the bot is unavailable: bot-first tenants hand every chat to agents");
                    return;
                }
            };
            // The tenants whose knowledge base changed are refitted every few seconds: a burst
            // of writes costs one fit, and a turn never waits for one.
            let refit = bot.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
                loop {
                    tick.tick().await;
                    // Ends with the last handle on the bot besides this one.
                    if Arc::strong_count(&refit) == 1 {
                        break;
                    }
                    let bot = refit.clone();
                    let Ok(fitted) =
                        crate::error::blocking("bot calibration", move || bot.recalibrate_stale())
                            .await
                    else {
                        continue;
                    };
                    for (tenant, result) in fitted {
                        match result {
                            Ok(Some(fit)) => tracing::info!(
                                tenant,
                                queries = fit.queries,
                                "bot self-calibration refitted"
                            ),
                            Ok(None) => tracing::debug!(tenant, "too few FAQs to self-calibrate"),
                            Err(error) => {
                                tracing::warn!(tenant, %error, "bot self-calibration failed")
                            }
                        }
                    }
                }
            });
            while let Some(change) = changes.recv().await {
                let bot = bot.clone();
                let result = tokio::task::spawn_blocking(move || match change {
                    KbChange::Written(tenant, records) => bot.index_faqs(&tenant, &records),
                    KbChange::Rebuilt(tenant, records) => bot.rebuild_faqs(&tenant, &records),
                    KbChange::Deleted(tenant, ids) => {
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        bot.remove_faqs(&tenant, &ids);
                        Ok(())
                    }
                })
                .await;
                if let Ok(Err(error)) = result {
                    tracing::error!(error = %error, "cannot update the bot's dense index");
                }
                runtime.changes_applied.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
