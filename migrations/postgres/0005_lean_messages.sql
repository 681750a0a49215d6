-- A leaner message table: launches insert a million rows, claims and outcomes rewrite them.
-- * No stored text for campaign messages: the text is a function of the campaign's message (not
--   editable once started), the language and public URL it was started with (kept on the
--   campaign), the recipient's names as they were at the launch (kept on the row) and the
--   unsubscribe code; it is rendered again, identically, when sent and when listed. `text` is
--   kept for test sends, whose campaign may still be edited afterwards.
-- * No unsubscribe_code column: a message's code is its id under a keyed permutation
--   (src/domain/unsubscribe.rs), so there is no unique index over random codes to maintain.
-- * No foreign key to campaigns: rows are only written by a campaign's launch or test send, in the
--   transaction that reads that campaign, and campaigns are never deleted; the per-row check cost
--   as much as the insert.
-- * Fewer indexes: claims pick a campaign from `campaigns` and walk its pending rows through
--   messages_campaign_ready; lists walk the campaign's id range by primary key (first/last id on
--   the campaign); failures have a small partial index of their own. Every claim and outcome is
--   a new row version with an entry in each index, so each index dropped is two writes fewer per
--   message on top of the one at launch.
-- Codes already sent in earlier texts were random and are not recognised any more.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE campaigns ADD COLUMN first_message_id BIGINT;
ALTER TABLE campaigns ADD COLUMN last_message_id BIGINT;
ALTER TABLE campaigns ADD COLUMN launch_language TEXT;
ALTER TABLE campaigns ADD COLUMN launch_public_url TEXT;
UPDATE campaigns SET
    first_message_id = (SELECT MIN(id) FROM messages m WHERE m.campaign_id = campaigns.id AND NOT m.test),
    last_message_id = (SELECT MAX(id) FROM messages m WHERE m.campaign_id = campaigns.id AND NOT m.test);

ALTER TABLE messages DROP COLUMN unsubscribe_code;
ALTER TABLE messages ALTER COLUMN text DROP NOT NULL, ADD COLUMN first_name TEXT, ADD COLUMN last_name TEXT;
ALTER TABLE messages DROP CONSTRAINT messages_campaign_id_fkey;
DROP INDEX messages_ready;
DROP INDEX messages_campaign;
CREATE INDEX messages_failures ON messages (campaign_id, id) WHERE status IN ('failed', 'unknown');
