-- Channels (PostgreSQL): webhook and mobile app configuration, identity links, reply routes and the
-- outbox of durable outbound deliveries. Times are milliseconds since the Unix epoch.

-- One app of a tenant on a channel. `public` is JSON of the fields the API may show (appid,
-- client_key); `secrets_enc` is the FieldCipher-encrypted JSON of the rest (tokens, keys, secrets).
CREATE TABLE channel_apps (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    app TEXT NOT NULL,
    public TEXT NOT NULL,
    secrets_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, app)
);

-- The first customer linked to a CRM id owns the shared conversation of every identity linked to it.
CREATE TABLE crm_links (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    crm_id TEXT NOT NULL,
    primary_customer_id TEXT NOT NULL REFERENCES customers(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, crm_id)
);

CREATE TABLE customer_links (
    customer_id TEXT PRIMARY KEY REFERENCES customers(id),
    tenant_id TEXT NOT NULL,
    crm_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX customer_links_crm ON customer_links (tenant_id, crm_id);

-- Where replies in a conversation go: the channel identity that wrote last, and the provider's
-- latest reply context (Douyin conversation and message ids).
CREATE TABLE conversation_routes (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id),
    tenant_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    app TEXT NOT NULL,
    external_user_id TEXT NOT NULL,
    reply_context TEXT,
    updated_at BIGINT NOT NULL
);

-- One row per outbound delivery of a stored message: a provider send (`send`) or a push hook
-- call (`push`). `next_attempt_at` is also the lease of the worker that claimed the row.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    app TEXT NOT NULL,
    recipient TEXT NOT NULL,
    reply_context TEXT,
    text TEXT NOT NULL,
    sender_kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_code TEXT,
    last_error TEXT,
    provider_message_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (conversation_id, seq, kind)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
