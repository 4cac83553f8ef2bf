CREATE VIRTUAL TABLE events_fts USING fts5(text, chat_id UNINDEXED, thread_id UNINDEXED, license_id UNINDEXED);

CREATE INDEX threads_queue ON threads (license_id, queued_at) WHERE queued_at IS NOT NULL AND active = 1;
