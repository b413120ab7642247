-- A reply with attachments leaves as several provider messages (each image, then the caption):
-- how many were sent, so a retry resumes after them instead of sending them twice.
ALTER TABLE outbox ADD COLUMN parts_sent BIGINT NOT NULL DEFAULT 0;
