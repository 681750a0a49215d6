-- Claims check a message's consent again only when some contact of its store may have stopped
-- being opted in since the launch (BENCHMARKS.md, "Send engine: claims and outcomes measured again"):
-- every such change (opted in → anything else, or an opted-in contact deleted) leaves a row here,
-- written by these triggers whichever code path made it. A launch notes the highest id at its
-- start (`campaigns.consent_mark`; it holds the write lock, so every change is either before the
-- mark and seen by its audience, or after it); a claim finding no row of the store past the mark
-- knows every recipient is still opted in. NULL mark (launched before this): always checked.
CREATE TABLE consent_revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id BIGINT NOT NULL
);
CREATE INDEX consent_revocations_store ON consent_revocations (store_id, id);
CREATE TRIGGER contacts_consent_revoked AFTER UPDATE OF consent ON contacts
    WHEN OLD.consent = 'opted_in' AND NEW.consent <> 'opted_in'
BEGIN
    INSERT INTO consent_revocations (store_id) VALUES (OLD.store_id);
END;
CREATE TRIGGER contacts_opted_in_deleted AFTER DELETE ON contacts
    WHEN OLD.consent = 'opted_in'
BEGIN
    INSERT INTO consent_revocations (store_id) VALUES (OLD.store_id);
END;
ALTER TABLE campaigns ADD COLUMN consent_mark BIGINT;
