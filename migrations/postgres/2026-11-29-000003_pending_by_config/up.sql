-- The retry sweep claims per config (endpoint isolation, spec §10.1): each active config's
-- earliest due rows. Only pending rows are indexed, so delivered ones cost nothing here.
CREATE INDEX deliveries_pending_by_config ON deliveries (config_id, next_attempt_at, id) WHERE status = 'pending';
