-- Tarification (spec/exchanges.md DldTar, AnnulationTar; spec/data.md): requests and results,
-- lines (clear only when they came in clear; ciphertext as received otherwise), accreditations,
-- and ceiling consumption keyed by the pseudonymous ceiling key. No identity anywhere.

CREATE TABLE dispensation.tarification (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    numero_dossier       uuid NOT NULL REFERENCES dispensation.dossier (numero_dossier),
    id_requete           uuid NOT NULL,
    structure            text NOT NULL CHECK (structure ~ '^[0-9]{9}$'),
    mode                 text NOT NULL CHECK (mode IN ('DEVIS', 'PEC')),
    id_prescription      integer NOT NULL CHECK (id_prescription BETWEEN 1 AND 999999999),
    chiffree             boolean NOT NULL,
    donnees_chiffrees    bytea,
    total_facture        bigint NOT NULL,
    total_ro             bigint NOT NULL,
    total_amc            bigint NOT NULL,
    total_reste_a_charge bigint NOT NULL,
    numero_accreditation text UNIQUE CHECK (numero_accreditation ~ '^[0-9A-Z]{2}M[0-9A-HJKMNP-TV-Z]{13}$'),
    annulee              boolean NOT NULL DEFAULT false,
    annulee_le           timestamptz,
    cree_le              timestamptz NOT NULL DEFAULT now(),
    CHECK ((mode = 'PEC') = (numero_accreditation IS NOT NULL)),
    CHECK (chiffree = (donnees_chiffrees IS NOT NULL))
);
-- One live PEC per prescription and dossier: its violation is the 7009 code.
CREATE UNIQUE INDEX tarification_pec_unique ON dispensation.tarification (numero_dossier, id_prescription)
    WHERE mode = 'PEC' AND NOT annulee;
CREATE INDEX tarification_dossier ON dispensation.tarification (numero_dossier);
CREATE INDEX tarification_cree_le ON dispensation.tarification (cree_le);

-- Lines as received in clear (none for an encrypted request), with their results.
CREATE TABLE dispensation.ligne (
    tarification_id    bigint NOT NULL REFERENCES dispensation.tarification (id) ON DELETE CASCADE,
    id_ligne           integer NOT NULL,
    code_prestation    text,
    date_execution     date,
    quantite           integer,
    prix_unitaire      bigint,
    montant_facture    bigint,
    base_remboursement bigint,
    taux_ro            smallint,
    montant_ro         bigint,
    code_cip           text,
    code_lpp           text,
    montant_amc        bigint NOT NULL,
    reste_a_charge     bigint NOT NULL,
    code_garantie      text,
    code_ligne         text NOT NULL CHECK (code_ligne IN ('000', 'L01', 'L02', 'L03')),
    PRIMARY KEY (tarification_id, id_ligne)
);

-- Ceiling consumption: one row per (beneficiary key, guarantee, prestation, year). PECs lock the
-- rows they consume, so concurrent PECs never exceed a ceiling together.
CREATE TABLE dispensation.consommation (
    cle_plafond     bytea NOT NULL,
    code_garantie   text NOT NULL,
    code_prestation text NOT NULL,
    annee           smallint NOT NULL,
    consomme        bigint NOT NULL DEFAULT 0 CHECK (consomme >= 0),
    PRIMARY KEY (cle_plafond, code_garantie, code_prestation, annee)
);

-- What each PEC consumed, to reverse it exactly on cancellation.
CREATE TABLE dispensation.consommation_pec (
    tarification_id bigint NOT NULL REFERENCES dispensation.tarification (id) ON DELETE CASCADE,
    cle_plafond     bytea NOT NULL,
    code_garantie   text NOT NULL,
    code_prestation text NOT NULL,
    annee           smallint NOT NULL,
    montant         bigint NOT NULL CHECK (montant > 0),
    PRIMARY KEY (tarification_id, code_garantie, code_prestation, annee)
);

-- Idempotent retries: the response given to an id_requete, with a fingerprint of its content.
CREATE TABLE dispensation.reponse (
    id_requete uuid PRIMARY KEY,
    empreinte  bytea NOT NULL,
    reponse    text NOT NULL,
    cree_le    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reponse_cree_le ON dispensation.reponse (cree_le);

GRANT SELECT, INSERT, UPDATE ON dispensation.tarification, dispensation.ligne,
    dispensation.consommation, dispensation.consommation_pec, dispensation.reponse TO vd_tarif;
GRANT SELECT ON dispensation.tarification, dispensation.ligne TO vd_tiers_confiance;
