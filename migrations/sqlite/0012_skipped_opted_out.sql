-- Messages whose contact opted out after the launch are skipped when claimed (not sent, not
-- charged): counted here, a part of `cancelled`.
ALTER TABLE campaigns ADD COLUMN skipped_opted_out BIGINT NOT NULL DEFAULT 0;
-- Hold expiry asks whether a hold still pays for a run that can send.
CREATE INDEX campaigns_hold ON campaigns (hold_id);
