-- Test messages per store per UTC day (README, "Test sends"): a test send adds its messages here
-- in its own transaction, with a conditional upsert, so the daily limit holds across nodes and
-- concurrent requests. One small row per store and day.
CREATE TABLE test_send_days (
    store_id BIGINT NOT NULL,
    day BIGINT NOT NULL,
    sent BIGINT NOT NULL,
    PRIMARY KEY (store_id, day)
);

-- The operator's weight of a store in the claim round-robin (fair share of the provider's
-- throughput between stores with work waiting): a store of weight 3 gets three claims in turn
-- to every one of a store of weight 1. No row: weight 1. A table of its own rather than a column
-- of `stores`, whose rows are read with `*` (a new column there changed cached statements' shape).
CREATE TABLE store_weights (
    store_id BIGINT PRIMARY KEY,
    weight BIGINT NOT NULL CHECK (weight BETWEEN 1 AND 100)
);
