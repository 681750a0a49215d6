-- Stores (tenants), people, credentials, contacts and their consent evidence.
CREATE TABLE stores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    default_country TEXT NOT NULL,
    timezone TEXT NOT NULL,
    language TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    store_id BIGINT NOT NULL REFERENCES stores(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_store ON api_keys(store_id, id);

CREATE TABLE admin_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL REFERENCES stores(id),
    phone TEXT NOT NULL,
    -- false for numbers that cannot receive SMS (fixed lines): kept, never messaged.
    mobile BOOLEAN NOT NULL DEFAULT TRUE,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    consent TEXT NOT NULL CHECK (consent IN ('opted_in', 'opted_out', 'unknown')),
    consent_changed_at BIGINT,
    consent_source TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (store_id, phone)
);
CREATE INDEX contacts_store_id ON contacts(store_id, id);
CREATE INDEX contacts_store_consent ON contacts(store_id, consent, id);

CREATE TABLE contact_tags (
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    store_id BIGINT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_store_tag ON contact_tags(store_id, tag, contact_id);

-- Evidence for regulators: kept even when the contact is deleted (no foreign key).
CREATE TABLE consent_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    phone TEXT NOT NULL,
    from_consent TEXT,
    to_consent TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX consent_events_contact ON consent_events(store_id, contact_id, id);

-- Replays of requests carrying an Idempotency-Key get the first answer.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Only `serve --demo` writes here, so a second run can print the same demo credentials.
CREATE TABLE demo_credentials (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store_id BIGINT NOT NULL,
    email TEXT NOT NULL,
    password TEXT NOT NULL,
    api_key TEXT NOT NULL,
    admin_key TEXT NOT NULL
);
