-- Knowledge base: FAQ records are the truth; the tantivy index on each node is derived.
CREATE TABLE faqs (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    alternates TEXT NOT NULL,
    tags TEXT NOT NULL,
    locale TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Bumped by every change to a tenant's FAQs or synonyms; an index built at an older revision is stale.
CREATE TABLE kb_state (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    revision BIGINT NOT NULL,
    synonyms TEXT NOT NULL DEFAULT ''
);
