-- The message table is the queue: one row per recipient of a campaign run (DESIGN.md §4).
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    contact_id BIGINT,
    -- NULL: the campaign's current hold; set for test sends, which hold credits of their own.
    hold_id BIGINT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
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
    unsubscribe_code TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    updated_at BIGINT NOT NULL
);
-- Claims walk only pending rows, highest priority first, then age.
CREATE INDEX messages_ready ON messages (priority DESC, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX messages_campaign ON messages (campaign_id, status, id);
CREATE INDEX messages_campaign_ready ON messages (campaign_id, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX messages_leases ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_provider_id ON messages (provider_message_id);
-- Throughput over the last minutes for queue monitoring.
CREATE INDEX messages_sent_at ON messages (sent_at) WHERE status = 'sent';

-- Cluster-wide token buckets (per provider account, per store), in milli-tokens.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    rate_per_sec BIGINT NOT NULL,
    capacity BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL
);

-- Engine processes and their heartbeats.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    in_flight BIGINT NOT NULL DEFAULT 0
);
