-- When a console session was last used, so one left unused for the node's idle timeout ends
-- before its absolute lifetime. 0: made before this column (counted as used now).
ALTER TABLE member_sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
