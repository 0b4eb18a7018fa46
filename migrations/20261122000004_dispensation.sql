-- Dossiers as tarification sees them (spec/data.md, schema dispensation): no identity at all.
CREATE TABLE dispensation.dossier (
    numero_dossier uuid PRIMARY KEY,
    numero_amc     text NOT NULL CHECK (numero_amc ~ '^[0-9]{8,10}$'),
    structure      text NOT NULL CHECK (structure ~ '^[0-9]{9}$'),
    expiration     timestamptz NOT NULL,
    statut         text NOT NULL DEFAULT 'OUVERT' CHECK (statut IN ('OUVERT', 'CLOS')),
    -- HMAC-SHA256(pseudonymisation key, numero_amc ":" beneficiary id): sums consumption of one
    -- beneficiary across dossiers without naming anyone.
    cle_plafond    bytea NOT NULL CHECK (length(cle_plafond) = 32),
    -- The guarantee rules of the dossier's domains, with no identity in them.
    regles         jsonb NOT NULL,
    cree_le        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dossier_expiration ON dispensation.dossier (expiration);

GRANT INSERT ON dispensation.dossier TO vd_droits;
GRANT SELECT, UPDATE ON dispensation.dossier TO vd_tarif;
GRANT SELECT ON dispensation.dossier TO vd_tiers_confiance;
