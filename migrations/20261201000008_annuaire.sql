-- The professional directory (spec/data.md `annuaire`): where each health professional exercises,
-- from the ANS "Annuaire Santé" public extract (`annuaire import`). It holds professionals'
-- identifiers and structures only: no patient, no name. Readable by both exchange roles, which
-- check that a CPS card's holder exercises at the structure the message declares; written only
-- by the owner, whose import replaces the whole table in one transaction.

CREATE SCHEMA annuaire;
REVOKE ALL ON SCHEMA annuaire FROM PUBLIC;
GRANT USAGE ON SCHEMA annuaire TO vd_droits, vd_tarif;

-- One row per activity of a professional at a structure (a line of the extract).
CREATE TABLE annuaire.activite (
    identifiant_pp  text NOT NULL,
    code_profession text,
    finess_site     text,
    finess_ej       text,
    siret_site      text
);
CREATE INDEX activite_identifiant_pp ON annuaire.activite (identifiant_pp);

-- The load in force: at most one row, written in the import's transaction.
CREATE TABLE annuaire.chargement (
    unique_ligne boolean PRIMARY KEY DEFAULT true CHECK (unique_ligne),
    charge_le    timestamptz NOT NULL DEFAULT now(),
    fichier      text NOT NULL,
    lignes       bigint NOT NULL,
    activites    bigint NOT NULL,
    rejetees     bigint NOT NULL
);

GRANT SELECT ON annuaire.activite, annuaire.chargement TO vd_droits, vd_tarif;
