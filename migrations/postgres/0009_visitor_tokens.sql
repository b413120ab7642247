-- A customer's token version: visitor tokens carry it, and raising it revokes every token the
-- customer was given (a stolen widget token, say).
ALTER TABLE customers ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
