-- Publish keys are stored as their hex SHA-256 (metastore.HashPublishKey)
-- from this version on; hash the keys earlier versions stored in plain text.
-- weir_sha256_hex is registered with the SQLite driver by package metastore.
UPDATE streams SET publish_key = weir_sha256_hex(publish_key) WHERE publish_key <> '';
