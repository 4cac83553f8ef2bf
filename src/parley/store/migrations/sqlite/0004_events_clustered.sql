-- Events are read by thread in order and never by id: one clustered b-tree keyed (thread_id, ord)
-- replaces the rowid table + primary-key index + thread index, so a send writes one b-tree, not three.
CREATE TABLE events_new (
  chat_id TEXT NOT NULL,
  id TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  license_id INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  type TEXT NOT NULL,
  author_id TEXT,
  recipients TEXT NOT NULL,
  custom_id TEXT,
  body TEXT NOT NULL,
  PRIMARY KEY (thread_id, ord)
) WITHOUT ROWID;
INSERT INTO events_new SELECT chat_id, id, thread_id, license_id, ord, type, author_id, recipients, custom_id, body FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE UNIQUE INDEX events_by_custom_id ON events (chat_id, author_id, custom_id) WHERE custom_id IS NOT NULL;

-- The newest event of a thread, kept with its count: export finds recent chats and start-up finds
-- the clock's last stamp without scanning events.
ALTER TABLE threads ADD COLUMN last_event_ord INTEGER NOT NULL DEFAULT 0;
UPDATE threads SET last_event_ord = coalesce((SELECT max(ord) FROM events WHERE events.thread_id = threads.id), 0);
