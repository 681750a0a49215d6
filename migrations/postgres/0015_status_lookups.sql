-- Status lookups (issue 13): messages the provider accepted but has sent no final report for are
-- looked up at the provider after a while. `looked_up_at` says when one last was, so engines on
-- several machines do not look up the same message, and each is asked again only after as long.
ALTER TABLE messages ADD COLUMN looked_up_at BIGINT;
-- Only messages still waiting for a final report: they leave the index when it comes.
CREATE INDEX messages_awaiting_report ON messages (sent_at)
    WHERE status = 'sent' AND (delivery_status IS NULL OR delivery_status IN ('queued', 'sent'));
