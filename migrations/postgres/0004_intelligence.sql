-- Bot-first conversations, intent models, policies, sensitive words and quality scores.

-- Routing attributes of a customer (VIP level, CRM tags, free attributes), set by the tenant's
-- admins and read by routing policies. Plain JSON: they are not contact fields.
ALTER TABLE customers ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';

-- Per-message extras: the bot's decision and suggestions, sensitive-word flags, masking.
ALTER TABLE messages ADD COLUMN meta TEXT;

-- A tenant's own intent classifier: a head trained here on the shared encoder (`head`), or a
-- classifier the tenant brought (`onnx`: model, tokenizer.json and labels). One active per tenant.
CREATE TABLE intent_models (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    kind TEXT NOT NULL,
    head BYTEA,
    model BYTEA,
    tokenizer BYTEA,
    labels TEXT,
    report TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every uploaded policy component is a new version; `policy_active` says which one runs.
CREATE TABLE policy_versions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    wasm BYTEA NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, version)
);

CREATE TABLE policy_active (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);

-- Named sensitive-word lists; `words` is one word a line.
CREATE TABLE sensitive_lists (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    words TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One quality assessment per close of a conversation.
CREATE TABLE quality_scores (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    closed_at BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    score BIGINT NOT NULL,
    findings TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    policy_version BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, closed_at)
);
