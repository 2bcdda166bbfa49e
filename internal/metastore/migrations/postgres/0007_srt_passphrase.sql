-- A live stream may require SRT publishers to encrypt with a passphrase.
-- SRT derives its keys from the passphrase itself, so it is kept as given
-- (a hash would be useless); the API never returns it after creation.
-- '' means the stream takes unencrypted SRT.
ALTER TABLE streams ADD COLUMN srt_passphrase TEXT NOT NULL DEFAULT '';
