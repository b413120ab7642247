-- A tenant's own OpenAI-compatible endpoint for the bot's LLM step (instead of the node's):
-- the key encrypted like contact fields, never returned by the API.
CREATE TABLE tenant_llm (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    api_key TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
