-- The knowledge-gap loop: customer questions the bot could not answer (out of scope, a clarify,
-- a handoff for uncertainty), kept per tenant (the newest 20,000), with their cached sentence
-- embedding and the group they were clustered into. A question keeps its group once given one,
-- so a group's identity and its dismissed state survive every later clustering.
CREATE TABLE gap_questions (
    id BIGSERIAL PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    text TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    suggestions TEXT NOT NULL DEFAULT '[]',
    embedding BYTEA,
    group_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX gap_questions_tenant ON gap_questions (tenant_id, id);
CREATE INDEX gap_questions_group ON gap_questions (tenant_id, group_id, created_at);

CREATE TABLE gap_groups (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    centroid BYTEA NOT NULL,
    label TEXT NOT NULL,
    dismissed BIGINT NOT NULL DEFAULT 0,
    faq_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
