-- Separation of identity and dispensing data (spec/data.md): three schemas, guarded by roles.
-- Roles are cluster-wide: create them only when missing, so that several databases of one
-- cluster (tests, staging) can each be migrated.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['vd_droits', 'vd_tarif', 'vd_audit_writer', 'vd_auditeur', 'vd_tiers_confiance']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

COMMENT ON ROLE vd_droits IS 'Rights exchange: reads identite, inserts the pairing row, the dispensation dossier row and audit rows';
COMMENT ON ROLE vd_tarif IS 'Tarification: reads and writes dispensation, inserts audit rows; no access at all to identite';
COMMENT ON ROLE vd_audit_writer IS 'Inserts audit rows only';
COMMENT ON ROLE vd_auditeur IS 'Reads audit';
COMMENT ON ROLE vd_tiers_confiance IS 'Trusted third party: the only role that can join a dossier''s lines to a person';

CREATE SCHEMA identite;
CREATE SCHEMA dispensation;
CREATE SCHEMA audit;

REVOKE ALL ON SCHEMA identite, dispensation, audit FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA identite TO vd_droits, vd_tiers_confiance;
GRANT USAGE ON SCHEMA dispensation TO vd_droits, vd_tarif, vd_tiers_confiance;
GRANT USAGE ON SCHEMA audit TO vd_droits, vd_tarif, vd_audit_writer, vd_auditeur;
