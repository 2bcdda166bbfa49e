-- Publish keys are stored as their hex SHA-256 (metastore.HashPublishKey)
-- from this version on; hash the keys earlier versions stored in plain text.
UPDATE streams SET publish_key = encode(sha256(convert_to(publish_key, 'UTF8')), 'hex') WHERE publish_key <> '';
