-- How many unsure bot decisions (clarify, out of scope) in a row a conversation has had: kept
-- with the conversation, so every node of a cluster sees the same streak.
ALTER TABLE conversations ADD COLUMN bot_unsure_streak INTEGER NOT NULL DEFAULT 0;
