-- After the send, part two: clicks on tracked links. Links need no table: a link code names a
-- message and the link's position in it (src/domain/links.rs), and the address is the campaign
-- message's URL at that position.
-- Counters moved in the transaction that records a click: every counted click, and the recipients
-- who clicked at least once.
ALTER TABLE campaigns ADD COLUMN clicks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN unique_clicks BIGINT NOT NULL DEFAULT 0;
-- Campaigns already started were rendered with their URLs as written; their messages are rendered
-- again when sent and listed, so they keep them that way (and their counted cost stays exact).
ALTER TABLE campaigns ADD COLUMN track_links BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE campaigns SET track_links = FALSE WHERE status NOT IN ('draft', 'scheduled') OR first_message_id IS NOT NULL;

-- Every visit of a tracked link: counted clicks ('click'), link previews and crawlers ('bot'),
-- HEAD requests ('head') and visits of test messages' links ('test'), with the user agent.
CREATE TABLE clicks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    contact_id BIGINT,
    link_index BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('click', 'bot', 'head', 'test')),
    user_agent TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX clicks_campaign ON clicks(campaign_id, link_index);

-- Messages with at least one counted click: the insert that succeeds is the recipient's first
-- click, so two clicks at once cannot both count as the unique one.
CREATE TABLE clicked_messages (
    message_id BIGINT PRIMARY KEY,
    campaign_id BIGINT NOT NULL,
    at BIGINT NOT NULL
);
