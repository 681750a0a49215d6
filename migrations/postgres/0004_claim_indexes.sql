-- Pending test sends, a handful at most: an idle engine asks "anything to send?" through this and
-- the campaign counters, instead of walking the pending rows of every campaign (on PostgreSQL also
-- the uncommitted rows of a launch in progress, one visibility check each).
CREATE INDEX messages_test_ready ON messages (next_attempt_at, id) WHERE status = 'pending' AND test;

-- Only accepted messages have a provider id, and lookups always give one: indexing every other
-- row's NULL cost an index entry per message at launch (and on PostgreSQL one more per claim).
DROP INDEX messages_provider_id;
CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;
