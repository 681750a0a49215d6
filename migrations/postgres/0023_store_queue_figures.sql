-- A store's throughput on its dashboard ("sent in the last minute / 5 minutes") comes from its
-- charges (one per accepted batch, with its message count), not from the message table: this
-- walks only the store's own recent charges.
CREATE INDEX transfers_charges ON transfers (store_id, created_at) WHERE kind = 'charge';
