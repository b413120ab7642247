//! The knowledge-gap loop: questions the bot could not answer are kept (`record`, off the turn),
//! grouped by meaning (`refresh`: e5 embeddings from the shared encoder, cached with each
//! question, and a deterministic leader clustering by cosine on normalized vectors), listed
//! largest first with counts, a 7-day trend, examples and the agents' replies (`groups`), and a
//! group becomes a draft FAQ (`draft`) for the knowledge manager to edit and publish.
//!
//! Which decisions are gaps: out of scope (`no_match`), a clarify (`low_confidence`; dropped
//! again when the customer's next message is one of its buttons) and a handoff for uncertainty
//! (`unsure_twice`). A question keeps the group it was first put in, so groups keep their ids
//! and their dismissed state across clusterings; a new question close to a dismissed group joins
//! it and stays out of the list.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use store::gaps::{GapClustering, GapGroup, GapQuestion, NewGapQuestion};
use store::util::now_ms;
use store::Store;
use switchboard_bot::{Decision, DecisionKind};
use switchboard_knowledge::FaqRecord;
use switchboard_models::TextKind;

use crate::error::{blocking, ServiceError, ServiceResult};
use crate::intents::models;

/// Cosine similarity (of normalized e5-small vectors) at which a question joins a group
/// (chosen on BANKING77, see docs/reports.md "Knowledge gaps").
pub const JOIN_THRESHOLD: f32 = 0.93;
/// Questions one refresh takes into groups at most (the newest); the rest wait for the next.
pub const QUESTIONS_PER_REFRESH: i64 = 2_000;
/// Members read per group to pick its label and its draft's questions.
const MEMBERS_READ: i64 = 200;
/// Days of the trend.
pub const TREND_DAYS: usize = 7;
/// Examples and agent replies shown per group.
const EXAMPLES: usize = 5;
const AGENT_REPLIES: usize = 3;
/// Conversations looked at per group for agent replies.
const REPLY_LOOKUPS: usize = 20;
/// Alternates of a draft FAQ.
const DRAFT_ALTERNATES: usize = 9;

/// Whether a decision leaves the customer's question unanswered.
pub fn is_gap(decision: &Decision) -> bool {
    match decision.kind {
        DecisionKind::OutOfScope => decision.reason != "no_text",
        DecisionKind::Clarify => true,
        DecisionKind::Handoff => decision.reason == "unsure_twice",
        DecisionKind::Answer => false,
    }
}

/// Keeps the question of an unanswered turn; the insert runs on its own task, so the turn does
/// not wait for it.
pub fn record(
    store: &Store,
    tenant: &str,
    conversation_id: &str,
    seq: i64,
    text: &str,
    decision: &Decision,
) {
    if !is_gap(decision) || text.trim().is_empty() {
        return;
    }
    let question = NewGapQuestion {
        tenant: tenant.to_owned(),
        conversation_id: conversation_id.to_owned(),
        seq,
        text: text.trim().chars().take(1_000).collect(),
        decision: decision.kind.as_str().to_owned(),
        reason: decision.reason.clone(),
        confidence: decision.confidence,
        suggestions: decision.suggestions.clone(),
    };
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(error) = store.record_gap_question(&question).await {
            tracing::warn!(tenant = %question.tenant, error = %error, "cannot keep an unanswered question");
        }
    });
}

fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector.iter().map(|v| v / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One group during clustering: the sum of its members' vectors.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub sum: Vec<f32>,
    unit: Vec<f32>,
}

impl Cluster {
    pub fn new(sum: Vec<f32>) -> Cluster {
        let unit = normalized(&sum);
        Cluster { sum, unit }
    }

    /// The direction of the members' mean.
    pub fn centroid(&self) -> &[f32] {
        &self.unit
    }

    fn add(&mut self, vector: &[f32]) {
        if self.sum.len() != vector.len() {
            self.sum = vec![0.0; vector.len()];
        }
        for (s, v) in self.sum.iter_mut().zip(vector) {
            *s += v;
        }
        self.unit = normalized(&self.sum);
    }
}

/// Leader clustering: each vector (normalized), in order, joins the group whose centroid is
/// closest if the cosine reaches `threshold` (the centroid then moves), else starts a group.
/// `clusters` holds the existing groups and receives the new ones; returns each vector's group
/// index. Deterministic: the same input gives the same groups.
pub fn cluster(clusters: &mut Vec<Cluster>, vectors: &[Vec<f32>], threshold: f32) -> Vec<usize> {
    let mut assigned = Vec::with_capacity(vectors.len());
    for vector in vectors {
        let unit = normalized(vector);
        let best = clusters
            .iter()
            .enumerate()
            .map(|(index, cluster)| (index, dot(&unit, cluster.centroid())))
            .fold(None::<(usize, f32)>, |best, (index, score)| match best {
                Some((_, top)) if top >= score => best,
                _ => Some((index, score)),
            });
        match best {
            Some((index, score)) if score >= threshold => {
                clusters[index].add(&unit);
                assigned.push(index);
            }
            _ => {
                clusters.push(Cluster::new(unit));
                assigned.push(clusters.len() - 1);
            }
        }
    }
    assigned
}

/// Texts ordered by closeness to `centroid` (most central first), the same text once
/// (case-insensitive).
pub fn most_central<'a>(centroid: &[f32], members: &[(&'a str, &[f32])]) -> Vec<&'a str> {
    let mut scored: Vec<(f32, usize, &str)> = members
        .iter()
        .enumerate()
        .map(|(index, (text, vector))| (dot(&normalized(vector), centroid), index, *text))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut seen = HashSet::new();
    scored
        .into_iter()
        .filter(|(_, _, text)| seen.insert(text.trim().to_lowercase()))
        .map(|(_, _, text)| text)
        .collect()
}

/// The questions' sentence embeddings (normalized) from the shared encoder.
pub async fn embed(texts: &[&str]) -> ServiceResult<Vec<Vec<f32>>> {
    let models = models().await?;
    let vectors = models
        .service
        .embed_many(TextKind::Query, texts)
        .await
        .map_err(|error| {
            ServiceError::unavailable("busy", format!("the encoder cannot embed: {error}"))
        })?;
    Ok(vectors.into_iter().map(|vector| vector.to_vec()).collect())
}

/// What one refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Refreshed {
    /// Questions put into groups.
    pub clustered: usize,
    /// Groups started.
    pub new_groups: usize,
    /// Clarifies whose button the customer clicked after all (no longer gaps).
    pub answered: usize,
    /// Questions deleted beyond the tenant's cap.
    pub pruned: u64,
}

/// Puts the tenant's new unanswered questions (at most [`QUESTIONS_PER_REFRESH`]) into groups.
pub async fn refresh(store: &Store, tenant: &str) -> ServiceResult<Refreshed> {
    let mut done = Refreshed {
        pruned: store
            .prune_gap_questions(tenant, store::gaps::GAP_QUESTIONS_KEPT)
            .await?,
        ..Refreshed::default()
    };
    let mut questions = store
        .unclustered_gap_questions(tenant, QUESTIONS_PER_REFRESH)
        .await?;
    if questions.is_empty() {
        return Ok(done);
    }
    let mut clustering = GapClustering::default();
    // A clarify whose button was clicked next was answered after all.
    let mut kept = Vec::with_capacity(questions.len());
    for question in questions.drain(..) {
        if question.decision == DecisionKind::Clarify.as_str() && !question.suggestions.is_empty() {
            let next = store
                .first_message_after(&question.conversation_id, question.seq, "customer")
                .await?;
            if next.is_some_and(|text| question.suggestions.iter().any(|s| s.trim() == text.trim()))
            {
                clustering.answered.push(question.id);
                continue;
            }
        }
        kept.push(question);
    }
    let mut questions = kept;
    let missing: Vec<usize> = (0..questions.len())
        .filter(|&index| questions[index].embedding.is_none())
        .collect();
    if !missing.is_empty() {
        let texts: Vec<&str> = missing
            .iter()
            .map(|&i| questions[i].text.as_str())
            .collect();
        let vectors = embed(&texts).await?;
        for (&index, vector) in missing.iter().zip(vectors) {
            clustering
                .embeddings
                .push((questions[index].id, vector.clone()));
            questions[index].embedding = Some(vector);
        }
    }
    let existing = store.gap_groups(tenant).await?;
    let existing_count = existing.len();
    let vectors: Vec<Vec<f32>> = questions
        .iter()
        .map(|q| q.embedding.clone().unwrap_or_default())
        .collect();
    let (assigned, clusters) = {
        let sums: Vec<Vec<f32>> = existing.iter().map(|g| g.centroid.clone()).collect();
        blocking("gap clustering", move || {
            let mut clusters: Vec<Cluster> = sums.into_iter().map(Cluster::new).collect();
            let assigned = cluster(&mut clusters, &vectors, JOIN_THRESHOLD);
            (assigned, clusters)
        })
        .await?
    };
    let mut ids: Vec<String> = existing.iter().map(|g| g.id.clone()).collect();
    while ids.len() < clusters.len() {
        ids.push(store.new_gap_group_id());
    }
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for (question, &group) in assigned.iter().enumerate() {
        clustering
            .assignments
            .push((questions[question].id, ids[group].clone()));
        members.entry(group).or_default().push(question);
    }
    let mut touched: Vec<usize> = members.keys().copied().collect();
    touched.sort_unstable();
    for group in touched {
        let earlier = if group < existing_count {
            store
                .gap_group_questions(tenant, &ids[group], MEMBERS_READ)
                .await?
        } else {
            Vec::new()
        };
        let mut texts: Vec<(&str, &[f32])> = members[&group]
            .iter()
            .map(|&q| {
                (
                    questions[q].text.as_str(),
                    questions[q].embedding.as_deref().unwrap_or(&[]),
                )
            })
            .collect();
        texts.extend(
            earlier
                .iter()
                .filter_map(|q| q.embedding.as_deref().map(|e| (q.text.as_str(), e))),
        );
        let label = most_central(clusters[group].centroid(), &texts)
            .first()
            .map(|text| text.to_string())
            .unwrap_or_default();
        let base = existing.get(group);
        clustering.groups.push(GapGroup {
            id: ids[group].clone(),
            centroid: clusters[group].sum.clone(),
            label,
            dismissed: base.is_some_and(|g| g.dismissed),
            faq_id: base.and_then(|g| g.faq_id.clone()),
            created_at: base.map_or(0, |g| g.created_at),
            updated_at: 0,
        });
    }
    done.clustered = clustering.assignments.len();
    done.new_groups = clusters.len() - existing_count;
    done.answered = clustering.answered.len();
    store.save_gap_clustering(tenant, &clustering).await?;
    Ok(done)
}

/// One example question of a group.
#[derive(Debug, Clone, Serialize)]
pub struct GapExample {
    pub text: String,
    pub decision: String,
    pub reason: String,
    pub confidence: f32,
    pub conversation_id: String,
    pub created_at: i64,
}

/// A group as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GapGroupView {
    pub id: String,
    /// The most central question.
    pub label: String,
    pub count: i64,
    pub last_at: i64,
    /// Questions per UTC day over the last [`TREND_DAYS`] days, oldest first.
    pub trend: Vec<i64>,
    pub dismissed: bool,
    /// The FAQ drafted from the group, and whether it is published (exists and is enabled).
    pub faq_id: Option<String>,
    pub published: bool,
    /// The newest questions.
    pub examples: Vec<GapExample>,
    /// How agents answered these conversations (the first agent message after the question).
    pub agent_replies: Vec<String>,
}

/// The tenant's groups, largest first (then the most recent), without dismissed ones unless
/// asked; at most `limit`.
pub async fn groups(
    store: &Store,
    tenant: &str,
    include_dismissed: bool,
    limit: usize,
) -> ServiceResult<Vec<GapGroupView>> {
    let stats = store.gap_group_stats(tenant, TREND_DAYS, now_ms()).await?;
    let mut listed: Vec<GapGroup> = store
        .gap_groups(tenant)
        .await?
        .into_iter()
        .filter(|g| include_dismissed || !g.dismissed)
        .filter(|g| stats.get(&g.id).is_some_and(|s| s.count > 0))
        .collect();
    listed.sort_by(|a, b| {
        let (sa, sb) = (&stats[&a.id], &stats[&b.id]);
        sb.count
            .cmp(&sa.count)
            .then(sb.last_at.cmp(&sa.last_at))
            .then(a.id.cmp(&b.id))
    });
    listed.truncate(limit);
    let mut views = Vec::with_capacity(listed.len());
    for group in listed {
        let stat = &stats[&group.id];
        let members = store
            .gap_group_questions(tenant, &group.id, REPLY_LOOKUPS as i64)
            .await?;
        let agent_replies = agent_replies(store, &members, AGENT_REPLIES).await?;
        let published = match &group.faq_id {
            Some(id) => store.faq(tenant, id).await?.is_some_and(|faq| faq.enabled),
            None => false,
        };
        views.push(GapGroupView {
            id: group.id,
            label: group.label,
            count: stat.count,
            last_at: stat.last_at,
            trend: stat.per_day.clone(),
            dismissed: group.dismissed,
            faq_id: group.faq_id,
            published,
            examples: members
                .into_iter()
                .take(EXAMPLES)
                .map(|q| GapExample {
                    text: q.text,
                    decision: q.decision,
                    reason: q.reason,
                    confidence: q.confidence,
                    conversation_id: q.conversation_id,
                    created_at: q.created_at,
                })
                .collect(),
            agent_replies,
        });
    }
    Ok(views)
}

/// Distinct first agent replies after the members' questions, up to `limit`.
async fn agent_replies(
    store: &Store,
    members: &[GapQuestion],
    limit: usize,
) -> ServiceResult<Vec<String>> {
    let mut replies: Vec<String> = Vec::new();
    let mut conversations = HashSet::new();
    for question in members.iter().take(REPLY_LOOKUPS) {
        if replies.len() >= limit {
            break;
        }
        if !conversations.insert(question.conversation_id.as_str()) {
            continue;
        }
        if let Some(reply) = store
            .first_message_after(&question.conversation_id, question.seq, "agent")
            .await?
        {
            if !reply.trim().is_empty() && !replies.contains(&reply) {
                replies.push(reply);
            }
        }
    }
    Ok(replies)
}

/// A draft FAQ from a group: its most central question, the next ones as alternates, the first
/// agent reply as the answer (empty when no agent answered). Not saved: the knowledge manager
/// edits it and publishes it through the FAQ routes under the given id (`gap-…`). The group
/// notes the id, so the console can tell when it is published.
pub async fn draft(store: &Store, tenant: &str, group_id: &str) -> ServiceResult<FaqRecord> {
    let group = store
        .gap_group(tenant, group_id)
        .await?
        .ok_or(ServiceError::NotFound("gap group"))?;
    let members = store
        .gap_group_questions(tenant, group_id, MEMBERS_READ)
        .await?;
    let centroid = normalized(&group.centroid);
    let texts: Vec<(&str, &[f32])> = members
        .iter()
        .filter_map(|q| q.embedding.as_deref().map(|e| (q.text.as_str(), e)))
        .collect();
    let central = most_central(&centroid, &texts);
    let question = central
        .first()
        .map(|text| text.to_string())
        .unwrap_or_else(|| group.label.clone());
    let alternates = central
        .iter()
        .skip(1)
        .take(DRAFT_ALTERNATES)
        .map(|text| text.to_string())
        .collect();
    let answer = agent_replies(store, &members, 1)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let id = group
        .faq_id
        .clone()
        .unwrap_or_else(|| group.id.replacen("gap_", "gap-", 1));
    if group.faq_id.is_none() {
        store.set_gap_group_faq(tenant, group_id, &id).await?;
    }
    Ok(FaqRecord {
        id,
        locale: switchboard_knowledge::guess_locale(&question).to_owned(),
        question,
        answer,
        alternates,
        tags: vec!["knowledge-gap".into()],
        enabled: true,
        updated_at_ms: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_vectors_share_a_group_and_far_ones_start_their_own() {
        let mut clusters = vec![Cluster::new(vec![0.0, 0.0, 2.0])];
        let vectors = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.99, 0.1, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.05, 0.0, 1.0],
            vec![0.1, 0.98, 0.0],
        ];
        let assigned = cluster(&mut clusters, &vectors, 0.9);
        assert_eq!(assigned, [1, 1, 2, 0, 2]);
        assert_eq!(clusters.len(), 3);
        // The same input gives the same groups.
        let mut again = vec![Cluster::new(vec![0.0, 0.0, 2.0])];
        assert_eq!(cluster(&mut again, &vectors, 0.9), assigned);
        // A centroid is the members' mean direction.
        let centroid = clusters[1].centroid();
        assert!(centroid[0] > 0.99 && centroid[1] > 0.0);
    }

    #[test]
    fn the_most_central_text_comes_first_once() {
        let centroid = normalized(&[1.0, 1.0]);
        let members: Vec<(&str, &[f32])> = vec![
            ("edge", &[1.0, 0.0]),
            ("middle", &[1.0, 1.1]),
            ("MIDDLE ", &[1.0, 1.0]),
            ("other edge", &[0.0, 1.0]),
        ];
        assert_eq!(
            most_central(&centroid, &members),
            ["MIDDLE ", "edge", "other edge"]
        );
    }

    #[test]
    fn gaps_are_the_unanswered_decisions() {
        let decision = |kind, reason: &str| Decision {
            kind,
            faq_id: None,
            answer: String::new(),
            suggestions: Vec::new(),
            intent: switchboard_bot::IntentScore {
                label: String::new(),
                score: 0.0,
            },
            confidence: 0.0,
            reason: reason.into(),
            skill_hint: None,
            evidence: Vec::new(),
        };
        assert!(is_gap(&decision(DecisionKind::OutOfScope, "no_match")));
        assert!(!is_gap(&decision(DecisionKind::OutOfScope, "no_text")));
        assert!(is_gap(&decision(DecisionKind::Clarify, "low_confidence")));
        assert!(is_gap(&decision(DecisionKind::Handoff, "unsure_twice")));
        assert!(!is_gap(&decision(
            DecisionKind::Handoff,
            "explicit_request"
        )));
        assert!(!is_gap(&decision(DecisionKind::Answer, "faq_match")));
    }
}
