-- After the send, part one: unsubscribe links and inbound keywords.
-- Unsubscribes through a campaign's links, counted in the transaction that opts the contact out.
ALTER TABLE campaigns ADD COLUMN unsubscribed BIGINT NOT NULL DEFAULT 0;
-- The campaign behind a consent change (an unsubscribe link, a STOP reply), when there is one.
ALTER TABLE consent_events ADD COLUMN campaign_id BIGINT;

-- A store's own keywords, besides the built-in ones. Stored folded (upper case, no accents), the
-- form the matcher compares.
CREATE TABLE store_keywords (
    store_id BIGINT NOT NULL,
    keyword TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    PRIMARY KEY (store_id, keyword)
);

-- Every inbound SMS, kept for audit: one row per store it was attributed to (store_id NULL when
-- no store messaged the number), with what it meant and the raw payload.
CREATE TABLE inbound_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT,
    contact_id BIGINT,
    campaign_id BIGINT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt_out', 'opt_in', 'help', 'none')),
    -- Whether the consent changed (false when it already was what the keyword asks).
    changed BOOLEAN NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX inbound_messages_store ON inbound_messages(store_id, id);
