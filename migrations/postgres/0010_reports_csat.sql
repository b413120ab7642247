-- Reports and satisfaction (issue #18).
--
-- One row per ended episode of a conversation: from its creation or reopening to its close (by
-- an agent, or by the idle sweep for conversations the bot kept). Written once, after the close,
-- from the conversation's events and transcript; every report reads these rows, so a report
-- never scans messages. Times are milliseconds since the Unix epoch.
CREATE TABLE episodes (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    closed_at BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    skill_group TEXT NOT NULL,
    -- The agent who held it at the end; empty when no person did.
    agent_id TEXT NOT NULL DEFAULT '',
    -- 'agent' (an agent closed it) or 'idle' (no message for the idle window).
    closed_by TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    -- The first move to the queue in this episode, and why; NULL when it never went to a person.
    handed_off_at BIGINT,
    handoff_reason TEXT,
    assigned_at BIGINT,
    first_agent_reply_at BIGINT,
    customer_messages BIGINT NOT NULL,
    agent_messages BIGINT NOT NULL,
    bot_answers BIGINT NOT NULL,
    bot_clarifies BIGINT NOT NULL,
    bot_out_of_scope BIGINT NOT NULL,
    -- The customer's CRM tags at the close, as |tag|tag| (filtered with LIKE '%|tag|%').
    tags TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, closed_at)
);
-- In the order reports read a period, so each page is one range of the index.
CREATE INDEX episodes_tenant_closed ON episodes (tenant_id, closed_at, conversation_id);

-- A customer's rating of an episode (1 to 5, an optional comment); a later rating of the same
-- episode replaces the earlier one.
CREATE TABLE ratings (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    closed_at BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    score BIGINT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, closed_at)
);

-- The idle sweep finds the bot's quiet conversations by state and age.
CREATE INDEX conversations_state_updated ON conversations (state, updated_at);
