-- Per-store counts of costly actions (creating API keys, imports, sends) in fixed windows
-- (README, "Per-store rate limits"). Counted by a conditional upsert, so the limits hold across
-- nodes and concurrent requests. One row per store and action, reused window after window.
CREATE TABLE rate_windows (
    key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    used BIGINT NOT NULL
);
