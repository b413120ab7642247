-- Foundation schema (SQLite). Times are milliseconds since the Unix epoch; ids are text.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    admin_key_hash TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT,
    phone_enc TEXT,
    email_enc TEXT,
    address_enc TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, channel, external_id)
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    skills TEXT NOT NULL,
    max_concurrent BIGINT NOT NULL,
    token_version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX agents_tenant ON agents (tenant_id);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    customer_id TEXT NOT NULL UNIQUE REFERENCES customers(id),
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    skill_group TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    agent_id TEXT,
    queue_key BIGINT NOT NULL DEFAULT 0,
    handoff_reason TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    customer_acked_seq BIGINT NOT NULL DEFAULT 0,
    agent_acked_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    assigned_at BIGINT,
    first_response_at BIGINT,
    closed_at BIGINT
);
CREATE INDEX conversations_queue ON conversations (tenant_id, state, priority, queue_key);
CREATE INDEX conversations_agent ON conversations (agent_id, state);
CREATE INDEX conversations_tenant_updated ON conversations (tenant_id, updated_at);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    sender_kind TEXT NOT NULL,
    sender_id TEXT,
    text TEXT NOT NULL,
    client_msg_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, sender_kind, client_msg_id);

CREATE TABLE conversation_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    reason TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX conversation_events_conversation ON conversation_events (conversation_id, id);

CREATE TABLE canned_replies (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    shortcut TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, shortcut)
);
