//! Read acknowledgements, coalesced: a connection records how far its client has read without
//! waiting for the database, and a flusher writes the highest pending seq of each conversation
//! and side every [`crate::StoreOptions::ack_flush_ms`], all of them in one transaction (one
//! statement per side and [`CHUNK`] conversations). Only the highest seq matters, and a write
//! never lowers a stored ack, so coalescing changes nothing but when the row is written.
//!
//! Memory is one entry per conversation acked since the last flush; a written entry is removed.
//! [`crate::Store::close`] flushes what is pending before it closes the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::AssertSqlSafe;
use switchboard_channels::web::SenderKind;

use crate::{Store, StoreResult};

/// Conversations pending before the flusher is woken ahead of its tick.
const EAGER: usize = 2048;
/// Conversations per statement (two bound values each).
const CHUNK: usize = 500;

/// The pending maxima: per conversation, the customer's and the agent's (0: none pending).
#[derive(Default)]
pub(crate) struct Acks {
    pending: Mutex<HashMap<String, [i64; 2]>>,
    wake: tokio::sync::Notify,
    /// One flush at a time, so `close` waits for one in progress before it flushes the rest.
    flushing: tokio::sync::Mutex<()>,
    /// `None`: every ack is written when it arrives (no coalescing).
    every: Option<Duration>,
}

impl Acks {
    pub(crate) fn new(flush_ms: u64) -> Acks {
        Acks {
            every: (flush_ms > 0).then(|| Duration::from_millis(flush_ms)),
            ..Acks::default()
        }
    }

    fn side(by: SenderKind) -> usize {
        match by {
            SenderKind::Agent => 1,
            _ => 0,
        }
    }

    /// Keeps the highest of the pending and the new seq.
    fn record(&self, conversation_id: &str, by: SenderKind, seq: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let side = Acks::side(by);
        let wake = match pending.get_mut(conversation_id) {
            Some(entry) => {
                entry[side] = entry[side].max(seq);
                false
            }
            None => {
                let mut entry = [0; 2];
                entry[side] = seq;
                pending.insert(conversation_id.to_owned(), entry);
                pending.len() >= EAGER
            }
        };
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> HashMap<String, [i64; 2]> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back what a failed flush took, keeping the maxima of anything recorded since.
    fn restore(&self, taken: HashMap<String, [i64; 2]>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (conversation_id, seqs) in taken {
            let entry = pending.entry(conversation_id).or_insert([0; 2]);
            entry[0] = entry[0].max(seqs[0]);
            entry[1] = entry[1].max(seqs[1]);
        }
    }

    /// How many conversations have acks waiting to be written.
    fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Starts the flusher of `store`'s acks (none when acks are written as they arrive). It ends
/// when the last handle of the store is dropped or the pool is closed.
pub(crate) fn start(store: &Store) {
    let Some(every) = store.acks.every else {
        return;
    };
    let acks: Weak<Acks> = Arc::downgrade(&store.acks);
    // The flusher's handle holds neither the acks it flushes nor the writers' queues, so that
    // dropping every other handle ends both.
    let mut flusher = store.clone();
    flusher.acks = Arc::new(Acks::default());
    flusher.appender = None;
    tokio::spawn(async move {
        loop {
            let woken = match acks.upgrade() {
                Some(acks) => async move { acks.wake.notified().await },
                None => return,
            };
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = woken => {}
            }
            if flusher.pool.is_closed() {
                return;
            }
            let Some(acks) = acks.upgrade() else {
                return;
            };
            if let Err(error) = flusher.flush_acks_of(&acks).await {
                tracing::warn!(error = %error, "acks not stored; retrying at the next flush");
            }
        }
    });
}

impl Store {
    /// Records how far a participant has read (never moves backwards). Coalesced (the default):
    /// returns at once, and the flusher writes the highest seq within
    /// [`crate::StoreOptions::ack_flush_ms`]; otherwise the ack is written before it returns.
    pub async fn record_ack(
        &self,
        conversation_id: &str,
        by: SenderKind,
        seq: i64,
    ) -> StoreResult<()> {
        if self.acks.every.is_none() {
            return self.set_acked(conversation_id, by, seq).await;
        }
        self.acks.record(conversation_id, by, seq);
        Ok(())
    }

    /// Writes every pending ack now (the flusher does it on its own; `close` does it last).
    pub async fn flush_acks(&self) -> StoreResult<()> {
        let acks = self.acks.clone();
        self.flush_acks_of(&acks).await
    }

    /// Conversations whose acks wait for the flusher.
    pub fn pending_acks(&self) -> usize {
        self.acks.len()
    }

    async fn flush_acks_of(&self, acks: &Acks) -> StoreResult<()> {
        let _flushing = acks.flushing.lock().await;
        let taken = acks.take();
        if taken.is_empty() {
            return Ok(());
        }
        match self.write_acks(&taken).await {
            Ok(()) => Ok(()),
            Err(error) => {
                acks.restore(taken);
                Err(error)
            }
        }
    }

    /// One transaction: per side, `UPDATE ... FROM (VALUES ...)` in chunks, each row raised only
    /// if the new seq is higher and not past the conversation's last message (as
    /// [`Store::set_acked`]).
    async fn write_acks(&self, taken: &HashMap<String, [i64; 2]>) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        for (side, column) in ["customer_acked_seq", "agent_acked_seq"]
            .into_iter()
            .enumerate()
        {
            let rows: Vec<(&str, i64)> = taken
                .iter()
                .filter(|(_, seqs)| seqs[side] > 0)
                .map(|(id, seqs)| (id.as_str(), seqs[side]))
                .collect();
            for chunk in rows.chunks(CHUNK) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect();
                // Both dialects name a VALUES list's columns column1, column2.
                let sql = format!(
                    "UPDATE conversations SET {column} = v.column2 FROM (VALUES {}) AS v \
                     WHERE conversations.id = v.column1 AND conversations.{column} < v.column2 \
                     AND conversations.last_seq >= v.column2",
                    values.join(", ")
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (id, seq) in chunk {
                    query = query.bind(*id).bind(*seq);
                }
                query.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
