-- Every stored event moves its chat's last_activity. With that column indexed, PostgreSQL must
-- write a new entry into every index of chats for each message, while without it the update is
-- HOT (heap-only, no index writes). Only `parley admin export --since` filters on last_activity,
-- and it can afford to scan a licence's chats through chats_by_order.
-- (No semicolons in comments: the migration runner splits files on them.)
DROP INDEX IF EXISTS chats_by_activity
