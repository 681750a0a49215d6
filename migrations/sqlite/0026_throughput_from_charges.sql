-- The operator's throughput ("sent in the last minute / 5 minutes", every store) comes from the
-- charges, one per accepted batch with its message count, as each store's does since 0023. The
-- sent-at index of `messages` served only that figure and cost an index entry per message in every
-- outcome's transaction (BENCHMARKS.md, "Send engine: claims and outcomes measured again").
DROP INDEX messages_sent_at;
CREATE INDEX transfers_charges_at ON transfers (created_at) WHERE kind = 'charge';
