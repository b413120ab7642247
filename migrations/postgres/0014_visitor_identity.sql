-- Identified web visitors: the tenant's site signs its user's id (HMAC-SHA256 with this secret)
-- and the widget passes id and signature. The secret is encrypted like contact fields ('' when
-- none is set) and shown once, when it is made.
CREATE TABLE tenant_identity (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    secret_enc TEXT NOT NULL,
    -- when the current secret was made (null: never, or removed)
    secret_created_at BIGINT,
    -- 1: anonymous visitors are refused
    required BIGINT NOT NULL DEFAULT 0,
    -- 1: a mobile app token's `sub` is the same user id, so the app user is linked too
    link_mobile BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
