-- Delivery reports (issue 13): every report as received, for audit, and the message's delivery
-- status moving forward only (src/domain/delivery.rs has the order).
ALTER TABLE campaigns ADD COLUMN undelivered BIGINT NOT NULL DEFAULT 0;
-- When the report that set `delivery_status` says it happened, and its error text.
ALTER TABLE messages ADD COLUMN delivery_at BIGINT;
ALTER TABLE messages ADD COLUMN delivery_error TEXT;
-- Mitto names a message in its reports by its own messageId, which the send answer gave; a report
-- without our reference is found through this index (migration 0007 had dropped it).
CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE delivery_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at BIGINT NOT NULL,
    -- Our message, once known (by reference or by provider id).
    message_id BIGINT,
    reference TEXT,
    provider_message_id TEXT,
    -- Normalised (delivered, undelivered, expired, rejected, sent, queued, other) and as sent.
    status TEXT NOT NULL,
    raw_status TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    error TEXT,
    -- The report object exactly as it arrived (JSON text).
    body TEXT NOT NULL,
    -- applied: changed (or confirmed) its message; parked: its message's send outcome is not
    -- recorded yet (applied when it is); ignored: no message it can change (failed, cancelled).
    state TEXT NOT NULL CHECK (state IN ('applied', 'parked', 'ignored'))
);
CREATE INDEX delivery_reports_parked ON delivery_reports (message_id) WHERE state = 'parked';
CREATE INDEX delivery_reports_parked_provider ON delivery_reports (provider_message_id, received_at) WHERE state = 'parked';
