-- Fewer structures written per imported contact (a million-row import writes each one a million
-- times):
-- * Tags without a rowid (the primary key is the table: one B-tree fewer) and without a foreign key
--   to contacts (a lookup per tag row). Tags are written only for contacts the same transaction has
--   just found or written, and deleted with their contact (`store::contacts::delete`), which never
--   relied on the cascade.
-- * No (store_id, consent, id) index: audiences and lists walk a store's contacts by
--   (store_id, id) and test consent on the row; most of a store's contacts are opted in anyway.
CREATE TABLE contact_tags_lean (
    contact_id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
) WITHOUT ROWID;
INSERT INTO contact_tags_lean (contact_id, store_id, tag) SELECT contact_id, store_id, tag FROM contact_tags;
DROP TABLE contact_tags;
ALTER TABLE contact_tags_lean RENAME TO contact_tags;
CREATE INDEX contact_tags_store_tag ON contact_tags(store_id, tag, contact_id);
DROP INDEX contacts_store_consent;
