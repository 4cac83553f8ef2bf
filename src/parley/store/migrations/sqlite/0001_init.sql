CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE licenses (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  organization_id TEXT NOT NULL UNIQUE,
  settings TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);

CREATE TABLE groups (
  license_id INTEGER NOT NULL REFERENCES licenses(id),
  id INTEGER NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY (license_id, id)
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  license_id INTEGER NOT NULL REFERENCES licenses(id),
  email TEXT NOT NULL,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  groups TEXT NOT NULL,
  routing_status TEXT NOT NULL,
  max_chats INTEGER,
  avatar TEXT NOT NULL DEFAULT '',
  last_seen INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  UNIQUE (license_id, email)
);

CREATE TABLE customers (
  id TEXT PRIMARY KEY,
  license_id INTEGER NOT NULL REFERENCES licenses(id),
  name TEXT,
  email TEXT,
  monitoring TEXT NOT NULL DEFAULT '{}',
  properties TEXT NOT NULL DEFAULT '{}',
  last_seen INTEGER NOT NULL DEFAULT 0,
  banned_until INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

CREATE TABLE chats (
  id TEXT PRIMARY KEY,
  license_id INTEGER NOT NULL REFERENCES licenses(id),
  customer_id TEXT NOT NULL REFERENCES customers(id),
  ord INTEGER NOT NULL,
  scopes TEXT NOT NULL,
  properties TEXT NOT NULL DEFAULT '{}',
  active_thread_id TEXT,
  agent_ids TEXT NOT NULL DEFAULT '[]',
  threads_count INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_activity INTEGER NOT NULL
);
CREATE INDEX chats_by_customer ON chats (license_id, customer_id, ord DESC);
CREATE INDEX chats_by_activity ON chats (license_id, last_activity);

CREATE TABLE threads (
  id TEXT PRIMARY KEY,
  chat_id TEXT NOT NULL REFERENCES chats(id),
  license_id INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  active INTEGER NOT NULL,
  user_ids TEXT NOT NULL,
  properties TEXT NOT NULL DEFAULT '{}',
  events_count INTEGER NOT NULL DEFAULT 0,
  agent_id TEXT,
  queued_at INTEGER,
  closed_at INTEGER
);
CREATE INDEX threads_by_chat ON threads (chat_id, ord);

CREATE TABLE events (
  chat_id TEXT NOT NULL,
  id TEXT NOT NULL,
  thread_id TEXT NOT NULL REFERENCES threads(id),
  license_id INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  type TEXT NOT NULL,
  author_id TEXT,
  recipients TEXT NOT NULL,
  custom_id TEXT,
  body TEXT NOT NULL,
  PRIMARY KEY (chat_id, id)
);
CREATE INDEX events_by_thread ON events (thread_id, ord);
CREATE UNIQUE INDEX events_by_custom_id ON events (chat_id, author_id, custom_id) WHERE custom_id IS NOT NULL;

CREATE TABLE last_seen (
  user_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  license_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (user_id, chat_id)
);

CREATE TABLE files (
  token TEXT PRIMARY KEY,
  license_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  data BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
