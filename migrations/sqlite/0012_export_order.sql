-- Exports and other long reads page through a tenant's conversations by (updated_at, id): the
-- index carries the id, so a page starts where the last one ended without sorting ties. It
-- replaces the (tenant_id, updated_at) index, its prefix.
CREATE INDEX conversations_tenant_updated_id ON conversations (tenant_id, updated_at, id);
DROP INDEX conversations_tenant_updated;
