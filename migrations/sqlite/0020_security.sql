-- Failed log-ins, counted per account and per client address over a sliding window (login
-- throttling). In the database, not in memory, so every node sees the same counts. The account is
-- the SHA-256 of the normalised email (typed emails are not kept); rows older than the window are
-- purged.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    client TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_account ON login_failures(account, at);
CREATE INDEX login_failures_client ON login_failures(client, at);

-- Sender names a store asked for, waiting for (or decided by) the platform operator.
CREATE TABLE sender_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    sender_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    requested_at BIGINT NOT NULL,
    decided_at BIGINT,
    reason TEXT
);
CREATE INDEX sender_requests_status ON sender_requests(status, id);
CREATE INDEX sender_requests_store ON sender_requests(store_id, id);

-- For purging expired sessions and old idempotency replays.
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
