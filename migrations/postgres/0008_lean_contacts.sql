-- Fewer structures written per imported contact (a million-row import writes each one a million
-- times):
-- * No foreign key from tags to contacts: it cost a trigger and an index probe per tag row. Tags
--   are written only for contacts the same transaction has just found or written, and deleted with
--   their contact (`store::contacts::delete`), which never relied on the cascade.
-- * No (store_id, consent, id) index: audiences and lists walk a store's contacts by
--   (store_id, id) and test consent on the row; most of a store's contacts are opted in anyway.
ALTER TABLE contact_tags DROP CONSTRAINT contact_tags_contact_id_fkey;
DROP INDEX contacts_store_consent;
