-- Leases are told apart from scheduled retries: a claim sets leased_until (and next_attempt_at
-- to the same time); finishing or rescheduling clears it. A single node restarting on its own
-- database can then release the leases its previous run held, instead of waiting them out.
ALTER TABLE notifications ADD COLUMN leased_until BIGINT;
ALTER TABLE push_deliveries ADD COLUMN leased_until BIGINT;
