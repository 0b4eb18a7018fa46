-- Pro Santé Connect (spec/security.md): an exchange authenticated by a bearer token is audited
-- with the token's issuer, its `jti` and its SHA-256 (lower-case hex) — never the token itself.
-- The hash chain covers the three columns.
ALTER TABLE audit.journal
    ADD COLUMN jeton_emetteur text,
    ADD COLUMN jeton_jti text,
    ADD COLUMN jeton_empreinte text CHECK (jeton_empreinte ~ '^[0-9a-f]{64}$');
