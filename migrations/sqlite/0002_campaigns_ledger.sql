-- Saved audience segments: a small rule set evaluated against contacts.
CREATE TABLE segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (store_id, name)
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    audience TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    schedule_at BIGINT,
    sender TEXT,
    discount_code TEXT,
    greek_gsm BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'failed', 'cancelled')),
    -- Counters maintained in the same transactions as the message rows they count.
    total BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    sending BIGINT NOT NULL DEFAULT 0,
    sent BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    cancelled BIGINT NOT NULL DEFAULT 0,
    unknown BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    hold_id BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (store_id, name)
);
CREATE INDEX campaigns_store_status ON campaigns(store_id, status, id);
CREATE INDEX campaigns_due ON campaigns(status, schedule_at);

-- Every status change, with who and why: the answer to "why is it in this state?".
CREATE TABLE campaign_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX campaign_events_campaign ON campaign_events(campaign_id, id);

-- Credits, double-entry: balances are caches of the transfers; only the ledger module writes here.
-- Account keys: 'funding', 'revenue:{store}', 'wallet:{store}', 'hold:{idempotency key of the hold}'.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    store_id BIGINT,
    kind TEXT NOT NULL CHECK (kind IN ('funding', 'revenue', 'wallet', 'hold')),
    balance BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    -- Overspend is impossible by construction: only the funding source may go negative.
    CHECK (kind = 'funding' OR balance >= 0)
);

CREATE TABLE holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    campaign_id BIGINT,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    reserved BIGINT NOT NULL CHECK (reserved > 0),
    charged BIGINT NOT NULL DEFAULT 0,
    released BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('active', 'released', 'expired')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    finalized_at BIGINT,
    CHECK (charged + released <= reserved)
);
CREATE INDEX holds_due ON holds(state, expires_at);

-- Immutable transfers; each moves `amount` from one account to another, so every movement is
-- balanced. `idem_key` makes every money-moving write idempotent.
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key TEXT NOT NULL UNIQUE,
    store_id BIGINT,
    kind TEXT NOT NULL CHECK (kind IN ('top_up', 'hold', 'charge', 'release', 'expiry', 'adjustment')),
    debit_account BIGINT NOT NULL REFERENCES accounts(id),
    credit_account BIGINT NOT NULL REFERENCES accounts(id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    campaign_id BIGINT,
    hold_id BIGINT,
    messages BIGINT,
    reason TEXT,
    created_at BIGINT NOT NULL,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_store ON transfers(store_id, id);

INSERT INTO accounts (key, kind) VALUES ('funding', 'funding');
