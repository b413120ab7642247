-- Attachments: images and files customers and agents send with their messages. A row is written
-- when the upload is complete (its blob stored first); a message refers to its attachments by id
-- and keeps a copy of their description in its meta. `uploader_kind`/`uploader_id` say who may
-- put the attachment on a message (the customer or agent who uploaded it).
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    uploader_kind TEXT NOT NULL,
    uploader_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    width BIGINT,
    height BIGINT,
    thumbnail BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_tenant_created ON attachments (tenant_id, created_at);

-- Blobs kept in the database (cluster mode: every node serves every blob without a shared
-- disk), in chunks of at most 256 KiB so neither a write nor a read holds a whole file.
CREATE TABLE blob_chunks (
    blob_key TEXT NOT NULL,
    n BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (blob_key, n)
);
