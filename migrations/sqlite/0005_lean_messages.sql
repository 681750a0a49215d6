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
--   the campaign); failures have a small partial index of their own.
-- Codes already sent in earlier texts were random and are not recognised any more.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE campaigns ADD COLUMN first_message_id BIGINT;
ALTER TABLE campaigns ADD COLUMN last_message_id BIGINT;
ALTER TABLE campaigns ADD COLUMN launch_language TEXT;
ALTER TABLE campaigns ADD COLUMN launch_public_url TEXT;

CREATE TABLE messages_lean (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL,
    contact_id BIGINT,
    -- NULL: the campaign's current hold; set for test sends, which hold credits of their own.
    hold_id BIGINT,
    phone TEXT NOT NULL,
    -- NULL: rendered from the campaign and the names below (see above).
    text TEXT,
    first_name TEXT,
    last_name TEXT,
    segments BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    -- Test sends are charged like any message but never counted in the campaign.
    test BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'unknown')),
    priority BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    -- Fencing token of the current claim: an outcome is written only under the token it claimed with.
    lease_token BIGINT,
    provider_message_id TEXT,
    delivery_status TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    updated_at BIGINT NOT NULL
);
INSERT INTO messages_lean (id, store_id, campaign_id, contact_id, hold_id, phone, text, segments, cost, test, status, priority,
    next_attempt_at, attempts, lease_owner, lease_until, lease_token, provider_message_id, delivery_status, error_code,
    error_message, created_at, sent_at, updated_at)
SELECT id, store_id, campaign_id, contact_id, hold_id, phone, text, segments, cost, test, status, priority,
    next_attempt_at, attempts, lease_owner, lease_until, lease_token, provider_message_id, delivery_status, error_code,
    error_message, created_at, sent_at, updated_at
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_lean RENAME TO messages;

UPDATE campaigns SET
    first_message_id = (SELECT MIN(id) FROM messages m WHERE m.campaign_id = campaigns.id AND NOT m.test),
    last_message_id = (SELECT MAX(id) FROM messages m WHERE m.campaign_id = campaigns.id AND NOT m.test);

CREATE INDEX messages_campaign_ready ON messages (campaign_id, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX messages_test_ready ON messages (next_attempt_at, id) WHERE status = 'pending' AND test;
CREATE INDEX messages_leases ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_failures ON messages (campaign_id, id) WHERE status IN ('failed', 'unknown');
CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;
-- Throughput over the last minutes for queue monitoring.
CREATE INDEX messages_sent_at ON messages (sent_at) WHERE status = 'sent';
