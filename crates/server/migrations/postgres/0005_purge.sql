-- The purge takes expired requests a batch at a time in (expires_at, id) order: an index in
-- that order makes each batch a range scan, also when many requests share one expiry (the
-- old index on expires_at alone made every batch sort all of them). It serves every query
-- the old one served.
DROP INDEX auth_requests_expires_at_idx;
CREATE INDEX auth_requests_expiry_id_idx ON auth_requests (expires_at, id);
