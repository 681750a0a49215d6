-- The demo is seeded in steps (store and credentials, then contacts and credits); `seeded` marks the
-- last one done, so a first run that was interrupted is finished by the next. Rows that exist were
-- written last by the earlier code, after everything else.
ALTER TABLE demo_credentials ADD COLUMN seeded BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE demo_credentials SET seeded = TRUE;
