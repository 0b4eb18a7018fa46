-- The audit (spec/data.md): one row per exchange and per refused handshake, append-only and
-- chained. Rows are written in the exchange's own transaction; a single sealer (one at a time
-- across instances, by advisory lock) then chains them in `audit.sceau` shortly after commit, so
-- that the chain never serialises concurrent exchanges. Both tables refuse UPDATE, DELETE and
-- TRUNCATE.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vd_audit_sealer') THEN
        CREATE ROLE vd_audit_sealer NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE vd_audit_sealer IS 'Chains audit rows: reads audit.journal, inserts audit.sceau';

CREATE TABLE audit.journal (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    horodatage           timestamptz NOT NULL DEFAULT clock_timestamp(),
    instance             text NOT NULL,
    operation            text NOT NULL,
    code                 text NOT NULL,
    duree_ms             integer NOT NULL,
    id_requete           uuid,
    id_reponse           uuid,
    horodatage_client    timestamptz,
    adresse_pair         text,
    cert_sujet           text,
    cert_emetteur        text,
    cert_serie           text,
    cert_empreinte       text,
    identifiant_ps       text,
    numero_structure     text,
    numero_amc           text,
    numero_dossier       uuid,
    numero_accreditation text,
    motif                text
);
CREATE INDEX journal_horodatage ON audit.journal (horodatage);
CREATE INDEX journal_dossier ON audit.journal (numero_dossier) WHERE numero_dossier IS NOT NULL;

CREATE TABLE audit.sceau (
    position   bigint PRIMARY KEY,
    journal_id bigint NOT NULL UNIQUE REFERENCES audit.journal (id),
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    scelle_le  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON audit.journal
    FOR EACH ROW EXECUTE FUNCTION audit.append_only();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON audit.journal
    FOR EACH STATEMENT EXECUTE FUNCTION audit.append_only();
CREATE TRIGGER sceau_append_only BEFORE UPDATE OR DELETE ON audit.sceau
    FOR EACH ROW EXECUTE FUNCTION audit.append_only();
CREATE TRIGGER sceau_no_truncate BEFORE TRUNCATE ON audit.sceau
    FOR EACH STATEMENT EXECUTE FUNCTION audit.append_only();

GRANT USAGE ON SCHEMA audit TO vd_audit_sealer;
GRANT INSERT ON audit.journal TO vd_droits, vd_tarif, vd_audit_writer;
GRANT SELECT ON audit.journal, audit.sceau TO vd_auditeur, vd_audit_sealer;
GRANT INSERT ON audit.sceau TO vd_audit_sealer;
