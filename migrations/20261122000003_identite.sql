-- Identity data of the rights exchange (spec/data.md, schema identite). Loaded by `import`.

-- The AMC's own beneficiaries. `ref_externe` is the AMC's identifier of the person (the import
-- key); the NIR is optional because a child may be known only through an insured person's NIR.
CREATE TABLE identite.beneficiaire (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    numero_amc     text NOT NULL REFERENCES identite.amc (numero_amc),
    ref_externe    text NOT NULL CHECK (length(ref_externe) BETWEEN 1 AND 40),
    nir            text CHECK (nir ~ '^[0-9]{5}([0-9]{2}|2A|2B)[0-9]{6}$'),
    cle_nir        text CHECK (cle_nir ~ '^[0-9]{2}$'),
    date_naissance text NOT NULL CHECK (date_naissance ~ '^[0-9]{8}$'),
    rang           smallint NOT NULL CHECK (rang BETWEEN 1 AND 9),
    nom            text NOT NULL CHECK (length(nom) BETWEEN 1 AND 80),
    prenom         text NOT NULL CHECK (length(prenom) BETWEEN 1 AND 80),
    CHECK ((nir IS NULL) = (cle_nir IS NULL)),
    UNIQUE (numero_amc, ref_externe)
);
CREATE INDEX beneficiaire_nir ON identite.beneficiaire (nir) WHERE nir IS NOT NULL;
CREATE INDEX beneficiaire_naissance ON identite.beneficiaire (numero_amc, date_naissance, rang);

-- The insured persons who open the rights (ouvrant droit): up to two NIRs per beneficiary.
CREATE TABLE identite.ouvrant_droit (
    beneficiaire_id bigint NOT NULL REFERENCES identite.beneficiaire (id) ON DELETE CASCADE,
    position        smallint NOT NULL CHECK (position IN (1, 2)),
    nir             text NOT NULL CHECK (nir ~ '^[0-9]{5}([0-9]{2}|2A|2B)[0-9]{6}$'),
    cle_nir         text NOT NULL CHECK (cle_nir ~ '^[0-9]{2}$'),
    PRIMARY KEY (beneficiaire_id, position)
);
CREATE INDEX ouvrant_droit_nir ON identite.ouvrant_droit (nir);

CREATE TABLE identite.contrat (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    numero_amc      text NOT NULL REFERENCES identite.amc (numero_amc),
    numero_contrat  text NOT NULL CHECK (length(numero_contrat) BETWEEN 1 AND 30),
    numero_adherent text CHECK (length(numero_adherent) BETWEEN 1 AND 15),
    responsable     boolean NOT NULL,
    UNIQUE (numero_amc, numero_contrat)
);
CREATE INDEX contrat_adherent ON identite.contrat (numero_amc, numero_adherent);

-- A beneficiary's guarantee in one domain under one contract, for one rights period.
CREATE TABLE identite.garantie (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    beneficiaire_id bigint NOT NULL REFERENCES identite.beneficiaire (id) ON DELETE CASCADE,
    contrat_id      bigint NOT NULL REFERENCES identite.contrat (id) ON DELETE CASCADE,
    domaine         text NOT NULL CHECK (domaine ~ '^[A-Z0-9]{1,8}$'),
    libelle         text NOT NULL CHECK (length(libelle) BETWEEN 1 AND 60),
    code_garantie   text NOT NULL CHECK (length(code_garantie) BETWEEN 1 AND 20),
    priorite        smallint NOT NULL CHECK (priorite BETWEEN 0 AND 99),
    reseau          text CHECK (length(reseau) BETWEEN 1 AND 10),
    debut           date NOT NULL,
    fin             date NOT NULL CHECK (fin >= debut),
    UNIQUE (beneficiaire_id, contrat_id, domaine, debut)
);

-- The prestation rules of a guarantee: PO (% of BR, AMO included), TA (% of the ticket
-- modérateur), FO (flat amount in euros); DEF is the domain's default.
CREATE TABLE identite.prestation (
    garantie_id    bigint NOT NULL REFERENCES identite.garantie (id) ON DELETE CASCADE,
    code           text NOT NULL CHECK (length(code) BETWEEN 1 AND 7),
    unite          text NOT NULL CHECK (unite IN ('PO', 'TA', 'FO')),
    valeur         bigint NOT NULL CHECK (valeur >= 0),            -- hundredths
    plafond_annuel bigint CHECK (plafond_annuel >= 0),             -- cents
    PRIMARY KEY (garantie_id, code)
);

-- The pairing of a dossier with a person: the only link between identity and dispensing data.
CREATE TABLE identite.appariement (
    numero_dossier  uuid PRIMARY KEY,
    beneficiaire_id bigint NOT NULL REFERENCES identite.beneficiaire (id),
    contrat_id      bigint NOT NULL REFERENCES identite.contrat (id),
    cree_le         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appariement_cree_le ON identite.appariement (cree_le);

GRANT SELECT ON identite.beneficiaire, identite.ouvrant_droit, identite.contrat,
                identite.garantie, identite.prestation TO vd_droits;
GRANT INSERT ON identite.appariement TO vd_droits;
GRANT SELECT ON identite.appariement, identite.beneficiaire, identite.contrat TO vd_tiers_confiance;
