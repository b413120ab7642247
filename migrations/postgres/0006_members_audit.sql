-- The operator console's people: members of a tenant who sign in with an email and a password
-- (argon2id), each with one role.
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    -- The agent record a member works the agent console as (role agent, or a supervisor who
    -- took a chat over); empty when none.
    agent_id TEXT NOT NULL DEFAULT '',
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX members_email ON members (tenant_id, email);

-- Signed-in sessions: the cookie carries a random id, stored here only as its SHA-256.
CREATE TABLE member_sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX member_sessions_member ON member_sessions (member_id);

-- Every change made through the admin API or the console: who, when, what, and a summary of
-- before and after (JSON).
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status BIGINT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- Who uploaded each policy version (a member's email, or "admin key").
ALTER TABLE policy_versions ADD COLUMN uploaded_by TEXT NOT NULL DEFAULT '';
