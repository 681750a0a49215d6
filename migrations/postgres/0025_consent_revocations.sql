-- Claims check a message's consent again only when some contact of its store may have stopped
-- being opted in since the launch (BENCHMARKS.md, "Send engine: claims and outcomes measured again"):
-- every such change (opted in → anything else, or an opted-in contact deleted) leaves a row here,
-- written by these triggers whichever code path made it, with the id of the transaction that made
-- it. A launch notes its snapshot before its audience is read (`campaigns.consent_mark`); a claim
-- finding no row of the store from a transaction that snapshot did not see knows every recipient
-- is still opted in. Rows are only inserted, never a shared counter updated: a row lock held by
-- one import writer would stall the other (and with it the import). NULL mark: always checked.
CREATE TABLE consent_revocations (
    store_id BIGINT NOT NULL,
    xact xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX consent_revocations_store ON consent_revocations (store_id, xact);
CREATE FUNCTION note_consent_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO consent_revocations (store_id) VALUES (OLD.store_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_consent_revoked AFTER UPDATE OF consent ON contacts
    FOR EACH ROW WHEN (OLD.consent = 'opted_in' AND NEW.consent <> 'opted_in') EXECUTE FUNCTION note_consent_revocation();
CREATE TRIGGER contacts_opted_in_deleted AFTER DELETE ON contacts
    FOR EACH ROW WHEN (OLD.consent = 'opted_in') EXECUTE FUNCTION note_consent_revocation();
ALTER TABLE campaigns ADD COLUMN consent_mark TEXT;
