-- Pro Santé Connect (spec/security.md): an exchange authenticated by a bearer token is audited
-- with the token's issuer, its `jti` and its SHA-256 (lower-case hex) — never the token itself.
-- The hash chain covers the three columns.
ALTER TABLE audit.journal
    ADD COLUMN jeton_emetteur text,
    ADD COLUMN jeton_jti text,
    ADD COLUMN jeton_empreinte text CHECK (jeton_empreinte ~ '^[0-9a-f]{64}$');

-- Replay across instances: the `jti`s seen, until their token expires (the SHA-256 of the token
-- that carried it, and whether that token was single use). Written only through the function
-- below, atomically, by the exchanges' audit writer; expired entries are forgotten as it goes.
CREATE TABLE audit.jeton_vu (
    emetteur     text NOT NULL,
    jti          text NOT NULL,
    empreinte    text NOT NULL CHECK (empreinte ~ '^[0-9a-f]{64}$'),
    expire       timestamptz NOT NULL,
    usage_unique boolean NOT NULL,
    PRIMARY KEY (emetteur, jti)
);
CREATE INDEX jeton_vu_expire ON audit.jeton_vu (expire);
REVOKE ALL ON audit.jeton_vu FROM PUBLIC;

-- 'ok', 'replayed' (seen before, and this use or the first one was single use) or 'jti_reused'
-- (seen with another token).
CREATE FUNCTION audit.vd_jeton_vu(p_emetteur text, p_jti text, p_empreinte text,
                                  p_expire timestamptz, p_usage_unique boolean) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    seen audit.jeton_vu;
BEGIN
    DELETE FROM audit.jeton_vu
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM audit.jeton_vu WHERE expire < now() LIMIT 100));
    INSERT INTO audit.jeton_vu VALUES (p_emetteur, p_jti, p_empreinte, p_expire, p_usage_unique)
        ON CONFLICT (emetteur, jti) DO NOTHING;
    IF FOUND THEN
        RETURN 'ok';
    END IF;
    SELECT * INTO seen FROM audit.jeton_vu
     WHERE emetteur = p_emetteur AND jti = p_jti FOR UPDATE;
    IF seen.expire < now() THEN
        UPDATE audit.jeton_vu
           SET empreinte = p_empreinte, expire = p_expire, usage_unique = p_usage_unique
         WHERE emetteur = p_emetteur AND jti = p_jti;
        RETURN 'ok';
    END IF;
    IF seen.empreinte <> p_empreinte THEN
        RETURN 'jti_reused';
    END IF;
    IF seen.usage_unique OR p_usage_unique THEN
        RETURN 'replayed';
    END IF;
    RETURN 'ok';
END
$$;
REVOKE ALL ON FUNCTION audit.vd_jeton_vu(text, text, text, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.vd_jeton_vu(text, text, text, timestamptz, boolean) TO vd_audit_writer;
