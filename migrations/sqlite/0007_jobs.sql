-- Long work a console starts and watches (intent training, knowledge-base imports): one row a
-- job, with its progress, its result or its error, visible from every node.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress TEXT NOT NULL,
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    started_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at);

-- A channel app's recent deliveries (the console's Channels page).
CREATE INDEX outbox_app ON outbox (tenant_id, channel, app, created_at);
