//! Tenant policies as the gateway runs them: WASM routing and quality components (every upload a
//! version in the store, one active per kind) and sensitive-word lists. The store is the truth;
//! each node caches the compiled form and re-checks the store's stamp every few seconds, so an
//! upload or rollback on one node reaches the others.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use switchboard_policies::sensitive::{Action, SensitiveWords, Verdict, WordList};
use switchboard_policies::types::{ClosedConversation, Handoff};
use switchboard_policies::{
    route_handoff, score_conversation, BuiltinQuality, BuiltinRouting, PolicyEngine,
    PolicyEngineConfig, PolicyError, PolicyId, PolicyKind, QualityOutcome, QualityPolicy,
    RoutingOutcome, RoutingPolicy,
};

use crate::error::{ServiceError, ServiceResult};
use store::{PolicyVersion, SensitiveListRecord, Store};

/// How long a node trusts its cached policies and word lists before checking the store.
const STAMP_TTL: Duration = Duration::from_secs(2);

/// The two kinds of uploadable policy, as they appear in paths and the store.
pub fn parse_kind(kind: &str) -> ServiceResult<PolicyKind> {
    match kind {
        "routing" => Ok(PolicyKind::Routing),
        "quality" => Ok(PolicyKind::Quality),
        _ => Err(ServiceError::NotFound("policy kind")),
    }
}

fn policy_error(error: PolicyError) -> ServiceError {
    ServiceError::invalid(error.code(), error.to_string())
}

#[derive(Clone)]
enum Loaded {
    Routing(RoutingPolicy),
    Quality(QualityPolicy),
}

/// A tenant's active policy of one kind: its version and loaded form (`None`: built-in).
type Active = Option<(i64, Loaded)>;

#[derive(Clone)]
struct Slot<T> {
    checked: Instant,
    stamp: T,
}

/// Word lists one tenant may have.
pub const MAX_WORD_LISTS_PER_TENANT: usize = 32;
/// Words across one tenant's lists (the 65k-word public Chinese list fits three times over).
pub const MAX_WORDS_PER_TENANT: usize = 250_000;

pub struct Policies {
    store: Store,
    engine: Arc<PolicyEngine>,
    active: RwLock<HashMap<(String, PolicyKind), Slot<Active>>>,
    words: RwLock<HashMap<String, Arc<SensitiveWords>>>,
    word_stamps: RwLock<HashMap<String, Slot<(i64, i64)>>>,
    pub builtin_routing: BuiltinRouting,
    pub builtin_quality: BuiltinQuality,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> ServiceResult<T> {
    crate::error::blocking("policy", work).await
}

impl Policies {
    pub fn new(store: Store, config: PolicyEngineConfig) -> anyhow::Result<Arc<Policies>> {
        let engine = PolicyEngine::new(config)
            .map_err(|error| anyhow::anyhow!("cannot start the policy engine: {error}"))?;
        Ok(Arc::new(Policies {
            store,
            engine: Arc::new(engine),
            active: RwLock::new(HashMap::new()),
            words: RwLock::new(HashMap::new()),
            word_stamps: RwLock::new(HashMap::new()),
            builtin_routing: BuiltinRouting::default(),
            builtin_quality: BuiltinQuality::default(),
        }))
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// Compiles and validates a component of `kind` (it must export that world and answer the
    /// sample input); blocking.
    fn load(
        engine: &PolicyEngine,
        kind: PolicyKind,
        id: PolicyId,
        wasm: &[u8],
    ) -> Result<Loaded, PolicyError> {
        match kind {
            PolicyKind::Routing => engine.load_routing(id, wasm).map(Loaded::Routing),
            PolicyKind::Quality => engine.load_quality(id, wasm).map(Loaded::Quality),
        }
    }

    /// Validates and stores a new version, which becomes the active one; `uploaded_by` names
    /// who sent it (a member's email, `admin key`, `cli`).
    pub async fn upload(
        &self,
        tenant: &str,
        kind: PolicyKind,
        wasm: Vec<u8>,
        uploaded_by: &str,
    ) -> ServiceResult<i64> {
        let engine = self.engine.clone();
        let id = PolicyId::new(tenant, 0);
        let (checked, wasm) = blocking(move || {
            let result = Self::load(&engine, kind, id, &wasm);
            (result, wasm)
        })
        .await?;
        checked.map_err(policy_error)?;
        let sha = hex(&Sha256::digest(&wasm));
        let version = self
            .store
            .add_policy_version(tenant, kind.as_str(), &wasm, &sha, uploaded_by)
            .await?;
        self.forget(tenant, kind);
        tracing::info!(tenant, kind = %kind, version, sha256 = %sha, "policy uploaded and activated");
        Ok(version)
    }

    pub async fn versions(
        &self,
        tenant: &str,
        kind: PolicyKind,
    ) -> ServiceResult<Vec<PolicyVersion>> {
        Ok(self.store.policy_versions(tenant, kind.as_str()).await?)
    }

    /// Makes a stored version active again (validated first, as on upload).
    pub async fn activate(
        &self,
        tenant: &str,
        kind: PolicyKind,
        version: i64,
    ) -> ServiceResult<()> {
        let wasm = self
            .store
            .policy_wasm(tenant, kind.as_str(), version)
            .await?
            .ok_or(ServiceError::NotFound("policy version"))?;
        let engine = self.engine.clone();
        let id = PolicyId::new(tenant, version.clamp(0, u32::MAX as i64) as u32);
        blocking(move || Self::load(&engine, kind, id, &wasm).map(|_| ()))
            .await?
            .map_err(policy_error)?;
        self.store
            .activate_policy(tenant, kind.as_str(), version)
            .await?;
        self.forget(tenant, kind);
        tracing::info!(tenant, kind = %kind, version, "policy version activated");
        Ok(())
    }

    fn forget(&self, tenant: &str, kind: PolicyKind) {
        self.active
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_owned(), kind));
    }

    /// The tenant's active policy of `kind`, loaded (from the compile cache when possible).
    async fn active(&self, tenant: &str, kind: PolicyKind) -> ServiceResult<Option<(i64, Loaded)>> {
        let key = (tenant.to_owned(), kind);
        let cached = self
            .active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(slot) = &cached {
            if slot.checked.elapsed() < STAMP_TTL {
                return Ok(slot.stamp.clone());
            }
        }
        let current = self.store.active_policy(tenant, kind.as_str()).await?;
        let loaded = match (current, cached) {
            (None, _) => None,
            (
                Some((version, _)),
                Some(Slot {
                    stamp: Some((cached_version, loaded)),
                    ..
                }),
            ) if cached_version == version => Some((version, loaded)),
            (Some((version, _)), _) => {
                let wasm = self
                    .store
                    .policy_wasm(tenant, kind.as_str(), version)
                    .await?
                    .ok_or(ServiceError::NotFound("policy version"))?;
                let engine = self.engine.clone();
                let id = PolicyId::new(tenant, version.clamp(0, u32::MAX as i64) as u32);
                // Stored versions were validated on upload; skip the sample call here.
                let loaded = blocking(move || match kind {
                    PolicyKind::Routing => engine
                        .load_routing_without_sample(id, &wasm)
                        .map(Loaded::Routing),
                    PolicyKind::Quality => engine
                        .load_quality_without_sample(id, &wasm)
                        .map(Loaded::Quality),
                })
                .await?;
                match loaded {
                    Ok(loaded) => Some((version, loaded)),
                    Err(error) => {
                        tracing::error!(tenant, kind = %kind, version, error = %error, "stored policy does not load; built-in used");
                        None
                    }
                }
            }
        };
        self.active
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                Slot {
                    checked: Instant::now(),
                    stamp: loaded.clone(),
                },
            );
        Ok(loaded)
    }

    /// The tenant's active policy of `kind`; a store error is logged and means "none" (the
    /// built-in strategy decides).
    async fn active_or_builtin(&self, tenant: &str, kind: PolicyKind) -> Option<Loaded> {
        match self.active(tenant, kind).await {
            Ok(active) => active.map(|(_, loaded)| loaded),
            Err(error) => {
                tracing::error!(tenant, kind = %kind, error = %error, "cannot read the policy; built-in used");
                None
            }
        }
    }

    /// Routes a handoff with the tenant's policy, or the built-in strategy (also when the
    /// policy fails: the failure is logged and counted).
    pub async fn route(&self, input: Handoff) -> ServiceResult<RoutingOutcome> {
        let policy = match self
            .active_or_builtin(&input.tenant, PolicyKind::Routing)
            .await
        {
            Some(Loaded::Routing(policy)) => Some(policy),
            _ => None,
        };
        let builtin = self.builtin_routing.clone();
        blocking(move || route_handoff(policy.as_ref(), &input, &builtin)).await
    }

    /// Scores a closed conversation with the tenant's quality policy, or the built-in scorer.
    pub async fn score(&self, input: ClosedConversation) -> ServiceResult<QualityOutcome> {
        let policy = match self
            .active_or_builtin(&input.tenant, PolicyKind::Quality)
            .await
        {
            Some(Loaded::Quality(policy)) => Some(policy),
            _ => None,
        };
        let builtin = self.builtin_quality.clone();
        blocking(move || score_conversation(policy.as_ref(), &input, &builtin)).await
    }

    // ---- sensitive words ---------------------------------------------------------------------

    /// Creates or replaces a named list (validated before anything is stored).
    pub async fn put_word_list(
        &self,
        tenant: &str,
        name: &str,
        action: &str,
        words: Vec<String>,
    ) -> ServiceResult<serde_json::Value> {
        let action: Action = action.parse().map_err(
            |error: switchboard_policies::sensitive::SensitiveWordsError| {
                ServiceError::invalid(error.code(), error.to_string())
            },
        )?;
        let list = WordList::new(name, action, words)
            .map_err(|error| ServiceError::invalid(error.code(), error.to_string()))?;
        let count = list.words().len();
        // The tenant's lists together stay within what one matcher should hold.
        let others: Vec<SensitiveListRecord> = self
            .store
            .sensitive_lists(tenant)
            .await?
            .into_iter()
            .filter(|record| record.name != name)
            .collect();
        if others.len() >= MAX_WORD_LISTS_PER_TENANT {
            return Err(ServiceError::invalid(
                "too_many_lists",
                format!("a tenant has at most {MAX_WORD_LISTS_PER_TENANT} word lists"),
            ));
        }
        let total: usize = count
            + others
                .iter()
                .map(|r| r.words.lines().count())
                .sum::<usize>();
        if total > MAX_WORDS_PER_TENANT {
            return Err(ServiceError::invalid(
                "too_many_words",
                format!("a tenant's lists hold at most {MAX_WORDS_PER_TENANT} words together"),
            ));
        }
        // The tenant's lists as they would be must build (their words may not be too nested):
        // refused before anything is stored, so what is stored always builds.
        let mut lists = word_lists_of(&others);
        let words = list.words().join("\n");
        lists.push(list);
        blocking(move || SensitiveWords::build(&lists).map(drop))
            .await?
            .map_err(|error| ServiceError::invalid(error.code(), error.to_string()))?;
        self.store
            .put_sensitive_list(tenant, name, action.as_str(), &words)
            .await?;
        self.refresh_words(tenant).await?;
        Ok(serde_json::json!({ "name": name, "action": action.as_str(), "words": count }))
    }

    pub async fn delete_word_list(&self, tenant: &str, name: &str) -> ServiceResult<()> {
        self.store.delete_sensitive_list(tenant, name).await?;
        self.refresh_words(tenant).await?;
        Ok(())
    }

    pub async fn word_lists(&self, tenant: &str) -> ServiceResult<Vec<SensitiveListRecord>> {
        Ok(self.store.sensitive_lists(tenant).await?)
    }

    /// Rebuilds the tenant's matcher from the store.
    async fn refresh_words(&self, tenant: &str) -> ServiceResult<()> {
        let stamp = self.store.sensitive_stamp(tenant).await?;
        let lists = word_lists_of(&self.store.sensitive_lists(tenant).await?);
        // Building a large list takes tens of milliseconds: off the executor.
        let built = blocking(move || SensitiveWords::load(&lists))
            .await?
            .map_err(|error| ServiceError::invalid(error.code(), error.to_string()))?;
        self.words
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), Arc::new(built));
        self.checked_words(tenant, stamp);
        Ok(())
    }

    /// Records that the tenant's word lists were checked now, at `stamp`.
    fn checked_words(&self, tenant: &str, stamp: (i64, i64)) {
        self.word_stamps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                tenant.to_owned(),
                Slot {
                    checked: Instant::now(),
                    stamp,
                },
            );
    }

    /// The tenant's compiled word lists, re-read when the store changed.
    pub async fn words(&self, tenant: &str) -> Arc<SensitiveWords> {
        let cached = self
            .word_stamps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned();
        let fresh = cached
            .as_ref()
            .is_some_and(|slot| slot.checked.elapsed() < STAMP_TTL);
        if !fresh {
            let changed = match self.store.sensitive_stamp(tenant).await {
                Ok(stamp) => cached.as_ref().map(|slot| slot.stamp) != Some(stamp),
                Err(error) => {
                    tracing::warn!(tenant, error = %error, "cannot check word lists");
                    false
                }
            };
            if changed {
                if let Err(error) = self.refresh_words(tenant).await {
                    tracing::error!(tenant, error = %error, "cannot load word lists");
                    // Tried again after the stamp's time to live, not at every message (a
                    // build can take a large fraction of a second).
                    self.checked_words(tenant, cached.map_or((-1, -1), |slot| slot.stamp));
                }
            } else if let Some(slot) = cached {
                self.checked_words(tenant, slot.stamp);
            }
        }
        self.words
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| Arc::new(SensitiveWords::empty()))
    }

    /// Checks a text against the tenant's lists.
    pub async fn check(&self, tenant: &str, text: &str) -> Verdict {
        self.words(tenant).await.check(text)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

// ---- chat records as the policies see them ----------------------------------------------

use store::MessageRecord;
use switchboard_channels::web::SenderKind;
use switchboard_policies::types::{
    Attachment as PolicyAttachment, AttachmentKind, Message as PolicyMessage, Speaker,
};

fn speaker(kind: SenderKind) -> Speaker {
    match kind {
        SenderKind::Customer => Speaker::Customer,
        SenderKind::Bot => Speaker::Bot,
        SenderKind::Agent => Speaker::Agent,
        SenderKind::System => Speaker::System,
    }
}

/// A transcript as the policies see it.
pub fn policy_messages(messages: &[MessageRecord]) -> Vec<PolicyMessage> {
    messages
        .iter()
        .map(|message| PolicyMessage {
            speaker: speaker(message.sender),
            author_id: match message.sender {
                SenderKind::Customer | SenderKind::Agent => {
                    message.sender_id.clone().unwrap_or_default()
                }
                _ => String::new(),
            },
            text: message.text.clone(),
            at_unix_ms: message.created_at.max(0) as u64,
            attachments: crate::files::attachments_of(message)
                .into_iter()
                .map(|attachment| PolicyAttachment {
                    kind: match attachment.kind {
                        store::attachments::AttachmentKind::Image => AttachmentKind::Image,
                        store::attachments::AttachmentKind::File => AttachmentKind::File,
                    },
                    name: attachment.name,
                    media_type: attachment.media_type,
                    size_bytes: attachment.size.max(0) as u64,
                })
                .collect(),
        })
        .collect()
}

/// The customer's language, as a policy input (`zh-CN` or `en`).
pub fn language_of(messages: &[MessageRecord]) -> String {
    let text: String = messages
        .iter()
        .filter(|message| message.sender == SenderKind::Customer)
        .map(|message| message.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match switchboard_knowledge::guess_locale(&text) {
        "zh" => "zh-CN".into(),
        _ => "en".into(),
    }
}

/// Stored word lists as the matcher takes them (a record that does not parse is left out).
fn word_lists_of(records: &[SensitiveListRecord]) -> Vec<WordList> {
    records
        .iter()
        .filter_map(|record| {
            let action = record.action.parse().ok()?;
            WordList::from_plain_text(record.name.clone(), action, &record.words).ok()
        })
        .collect()
}
