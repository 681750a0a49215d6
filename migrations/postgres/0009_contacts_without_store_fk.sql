-- No foreign key from contacts to stores on PostgreSQL. Its check ran once per inserted contact (a
-- trigger and an index probe: about 8% of a million-row import), and took a KEY SHARE lock on the
-- store's row each time, so concurrent imports of one store shared that row through multixacts.
-- Every write of a contact takes the id of a store just authenticated, looked up (the CLI import)
-- or created (the demo), and stores are never deleted. SQLite keeps the key: its check is a lookup
-- in the same process and locks nothing.
ALTER TABLE contacts DROP CONSTRAINT contacts_store_id_fkey;
