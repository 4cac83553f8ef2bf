-- Internal notes per thread, so a customer's events_count leaves them out.
ALTER TABLE threads ADD COLUMN notes_count INTEGER NOT NULL DEFAULT 0;
