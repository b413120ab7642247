//! What reports read: one row per ended episode of a conversation ([`Episode`]), customers'
//! ratings of them ([`Rating`]), the idle sweep that ends the bot's quiet conversations, and the
//! survey message that asks for a rating after a close.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::bot::append_bot_tx;
use super::{finish_transition, Store, StoreResult, CONVERSATION_COLUMNS};
use crate::model::{Actor, Conversation, Dialect, MessageRecord};
use crate::util::now_ms;

/// One ended episode of a conversation: from its creation or reopening to its close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Episode {
    pub conversation_id: String,
    pub closed_at: i64,
    pub tenant_id: String,
    pub channel: String,
    pub skill_group: String,
    /// The agent who held it at the end; empty when no person did.
    pub agent_id: String,
    /// `agent` or `idle`.
    pub closed_by: String,
    pub opened_at: i64,
    pub handed_off_at: Option<i64>,
    pub handoff_reason: Option<String>,
    pub assigned_at: Option<i64>,
    pub first_agent_reply_at: Option<i64>,
    pub customer_messages: i64,
    pub agent_messages: i64,
    pub bot_answers: i64,
    pub bot_clarifies: i64,
    pub bot_out_of_scope: i64,
    /// The customer's CRM tags at the close.
    pub tags: Vec<String>,
}

/// A customer's rating of an episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rating {
    pub conversation_id: String,
    pub closed_at: i64,
    pub agent_id: String,
    pub score: i64,
    pub comment: String,
    pub created_at: i64,
}

/// Which episodes a report covers: closed in `[from, to)`, and the optional equalities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpisodeFilter {
    pub from: i64,
    pub to: i64,
    pub channel: Option<String>,
    pub skill_group: Option<String>,
    pub agent: Option<String>,
    /// Only episodes whose customer carried this CRM tag.
    pub tag: Option<String>,
}

/// An episode with its rating, as a report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedEpisode {
    pub episode: Episode,
    pub score: Option<i64>,
}

const EPISODE_COLUMNS: &str =
    "e.tenant_id, e.conversation_id, e.closed_at, e.channel, e.skill_group, \
     e.agent_id, e.closed_by, e.opened_at, e.handed_off_at, e.handoff_reason, e.assigned_at, \
     e.first_agent_reply_at, e.customer_messages, e.agent_messages, e.bot_answers, \
     e.bot_clarifies, e.bot_out_of_scope, e.tags";

/// [`EPISODE_COLUMNS`] without the tenant, for queries of one tenant's rows.
fn tenant_episode_columns() -> &'static str {
    EPISODE_COLUMNS.trim_start_matches("e.tenant_id, ")
}

/// Tags as stored: `|a|b|` (a `|` inside a tag is dropped), so one tag is found as `|tag|`.
fn encode_tags(tags: &[String]) -> String {
    let mut out = String::from("|");
    for tag in tags {
        let clean: String = tag.chars().filter(|c| *c != '|').collect();
        if !clean.is_empty() {
            out.push_str(&clean);
            out.push('|');
        }
    }
    if out.len() == 1 {
        String::new()
    } else {
        out
    }
}

fn decode_tags(stored: &str) -> Vec<String> {
    stored
        .split('|')
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What finds one tag in the stored tags: `|tag|` (a `|` inside the tag dropped, as stored).
fn tag_needle(tag: &str) -> String {
    let clean: String = tag.chars().filter(|c| *c != '|').collect();
    format!("|{clean}|")
}

fn episode_from_row(row: &AnyRow) -> StoreResult<Episode> {
    let tenant_id = row.try_get("tenant_id")?;
    episode_of_tenant(row, tenant_id)
}

/// An episode row read with `tenant_id` known (the query asked for that tenant's rows): one
/// string fewer to decode and copy per row, which a report over 100,000 episodes notices.
fn episode_of_tenant(row: &AnyRow, tenant_id: String) -> StoreResult<Episode> {
    Ok(Episode {
        conversation_id: row.try_get("conversation_id")?,
        closed_at: row.try_get("closed_at")?,
        tenant_id,
        channel: row.try_get("channel")?,
        skill_group: row.try_get("skill_group")?,
        agent_id: row.try_get("agent_id")?,
        closed_by: row.try_get("closed_by")?,
        opened_at: row.try_get("opened_at")?,
        handed_off_at: row.try_get("handed_off_at")?,
        handoff_reason: row.try_get("handoff_reason")?,
        assigned_at: row.try_get("assigned_at")?,
        first_agent_reply_at: row.try_get("first_agent_reply_at")?,
        customer_messages: row.try_get("customer_messages")?,
        agent_messages: row.try_get("agent_messages")?,
        bot_answers: row.try_get("bot_answers")?,
        bot_clarifies: row.try_get("bot_clarifies")?,
        bot_out_of_scope: row.try_get("bot_out_of_scope")?,
        tags: decode_tags(&row.try_get::<String, _>("tags")?),
    })
}

impl Store {
    /// Stores an ended episode; storing the same one again changes nothing.
    pub async fn put_episode(&self, episode: &Episode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO episodes (conversation_id, closed_at, tenant_id, channel, skill_group, \
             agent_id, closed_by, opened_at, handed_off_at, handoff_reason, assigned_at, \
             first_agent_reply_at, customer_messages, agent_messages, bot_answers, bot_clarifies, \
             bot_out_of_scope, tags, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
             ON CONFLICT (conversation_id, closed_at) DO NOTHING",
        )
        .bind(&episode.conversation_id)
        .bind(episode.closed_at)
        .bind(&episode.tenant_id)
        .bind(&episode.channel)
        .bind(&episode.skill_group)
        .bind(&episode.agent_id)
        .bind(&episode.closed_by)
        .bind(episode.opened_at)
        .bind(episode.handed_off_at)
        .bind(episode.handoff_reason.clone())
        .bind(episode.assigned_at)
        .bind(episode.first_agent_reply_at)
        .bind(episode.customer_messages)
        .bind(episode.agent_messages)
        .bind(episode.bot_answers)
        .bind(episode.bot_clarifies)
        .bind(episode.bot_out_of_scope)
        .bind(encode_tags(&episode.tags))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The episode of a conversation that closed at `closed_at`, if it was stored.
    pub async fn episode(
        &self,
        conversation_id: &str,
        closed_at: i64,
    ) -> StoreResult<Option<Episode>> {
        let sql = format!(
            "SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.conversation_id = $1 AND e.closed_at = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation_id)
            .bind(closed_at)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(episode_from_row).transpose()
    }

    /// A page of a tenant's episodes in the filter, with their ratings, oldest close first:
    /// those after `after` (the last `(closed_at, conversation_id)` of the previous page), at
    /// most `limit`. A report reads the period page by page, so its memory stays bounded.
    pub async fn rated_episodes(
        &self,
        tenant: &str,
        filter: &EpisodeFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<RatedEpisode>> {
        let mut sql = format!(
            "SELECT {}, r.score AS score FROM episodes e \
             LEFT JOIN ratings r ON r.conversation_id = e.conversation_id AND r.closed_at = e.closed_at \
             WHERE e.tenant_id = $1 AND e.closed_at >= $2 AND e.closed_at < $3",
            tenant_episode_columns()
        );
        let mut texts = Vec::new();
        for (column, value) in [
            ("e.channel", &filter.channel),
            ("e.skill_group", &filter.skill_group),
            ("e.agent_id", &filter.agent),
        ] {
            if let Some(value) = value {
                texts.push(value.clone());
                sql.push_str(&format!(" AND {column} = ${}", 3 + texts.len()));
            }
        }
        if let Some(tag) = &filter.tag {
            // The tag between its bars, found as it is written on both backends (SQLite's LIKE
            // would ignore ASCII case where PostgreSQL's does not).
            texts.push(tag_needle(tag));
            let find = match self.dialect() {
                Dialect::Sqlite => "instr(e.tags, ${}) > 0",
                Dialect::Postgres => "strpos(e.tags, ${}) > 0",
            };
            sql.push_str(" AND ");
            sql.push_str(&find.replace("{}", &(3 + texts.len()).to_string()));
        }
        let mut next = 4 + texts.len();
        if after.is_some() {
            sql.push_str(&format!(
                " AND (e.closed_at > ${next} OR (e.closed_at = ${next} AND e.conversation_id > ${}))",
                next + 1
            ));
            next += 2;
        }
        sql.push_str(&format!(
            " ORDER BY e.closed_at, e.conversation_id LIMIT ${next}"
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(filter.from)
            .bind(filter.to);
        for text in texts {
            query = query.bind(text);
        }
        if let Some((closed_at, conversation_id)) = after {
            query = query.bind(closed_at).bind(conversation_id.to_owned());
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(RatedEpisode {
                    episode: episode_of_tenant(row, tenant.to_owned())?,
                    score: row.try_get("score")?,
                })
            })
            .collect()
    }

    /// Stores a rating of the episode that closed at `closed_at` (a later one replaces it).
    pub async fn put_rating(&self, tenant: &str, rating: &Rating) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ratings (conversation_id, closed_at, tenant_id, agent_id, score, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (conversation_id, closed_at) DO UPDATE SET score = excluded.score, \
             comment = excluded.comment, created_at = excluded.created_at",
        )
        .bind(&rating.conversation_id)
        .bind(rating.closed_at)
        .bind(tenant)
        .bind(&rating.agent_id)
        .bind(rating.score)
        .bind(&rating.comment)
        .bind(rating.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The rating of one episode, if there is one.
    pub async fn rating(
        &self,
        conversation_id: &str,
        closed_at: i64,
    ) -> StoreResult<Option<Rating>> {
        let row = sqlx::query(
            "SELECT conversation_id, closed_at, agent_id, score, comment, created_at FROM ratings \
             WHERE conversation_id = $1 AND closed_at = $2",
        )
        .bind(conversation_id)
        .bind(closed_at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Rating {
                conversation_id: row.try_get("conversation_id")?,
                closed_at: row.try_get("closed_at")?,
                agent_id: row.try_get("agent_id")?,
                score: row.try_get("score")?,
                comment: row.try_get("comment")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Ends up to `limit` conversations the bot holds whose last change is older than
    /// `quiet_since` and that hold at least one message (`only`: just that one, if it
    /// qualifies); each gets its `closed` event (actor system, reason `idle`) and the notice, in
    /// one transaction per conversation, so two nodes sweeping at once never close one twice.
    pub async fn close_idle_bot_conversations(
        &self,
        quiet_since: i64,
        limit: i64,
        only: Option<&str>,
        notice: &str,
    ) -> StoreResult<Vec<(Conversation, MessageRecord)>> {
        let ids: Vec<String> = match only {
            Some(id) => vec![id.to_owned()],
            None => sqlx::query(
                "SELECT id FROM conversations WHERE state = 'bot' AND updated_at < $1 AND last_seq > 0 \
                 ORDER BY updated_at LIMIT $2",
            )
            .bind(quiet_since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?,
        };
        let mut closed = Vec::with_capacity(ids.len());
        for id in ids {
            let now = now_ms();
            let (_guard, mut tx) = self.write().await?;
            let sql = format!(
                "UPDATE conversations SET state = 'closed', closed_at = $1, updated_at = $1 \
                 WHERE id = $2 AND state = 'bot' AND updated_at < $3 AND last_seq > 0 \
                 RETURNING {CONVERSATION_COLUMNS}"
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(now)
                .bind(&id)
                .bind(quiet_since)
                .fetch_optional(&mut *tx)
                .await?;
            let event = ("closed", &Actor::system(), Some("idle"));
            if let Some(done) = finish_transition(tx, row, event, notice, now).await? {
                closed.push(done);
            }
        }
        Ok(closed)
    }

    /// Appends the bot's message to a conversation that is still closed at `closed_at` (the
    /// rating survey and its thanks); `None` when the conversation reopened or closed again since.
    pub async fn append_after_close(
        &self,
        conversation_id: &str,
        closed_at: i64,
        text: &str,
        meta: serde_json::Value,
    ) -> StoreResult<Option<MessageRecord>> {
        let (_guard, mut tx) = self.write().await?;
        // Takes the row (a reopening waits for this transaction) only while it is that close.
        let row = sqlx::query(
            "UPDATE conversations SET updated_at = updated_at \
             WHERE id = $1 AND state = 'closed' AND closed_at = $2 RETURNING tenant_id",
        )
        .bind(conversation_id)
        .bind(closed_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant: String = row.try_get("tenant_id")?;
        let message =
            append_bot_tx(&mut tx, conversation_id, &tenant, text, meta, now_ms()).await?;
        tx.commit().await?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stored_between_bars_and_found_with_escaped_patterns() {
        let tags = vec![
            "vip".to_owned(),
            "a|b".to_owned(),
            String::new(),
            "50%_off".to_owned(),
        ];
        assert_eq!(encode_tags(&tags), "|vip|ab|50%_off|");
        assert_eq!(decode_tags("|vip|ab|50%_off|"), ["vip", "ab", "50%_off"]);
        assert_eq!(encode_tags(&[]), "");
        assert!(decode_tags("").is_empty());
        assert_eq!(tag_needle("50%_o|ff"), "|50%_off|");
    }
}
