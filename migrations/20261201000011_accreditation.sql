-- The accreditation lifecycle (spec/exchanges.md ConsultationAccreditation, "Retries", line code
-- L04; spec/data.md): each PEC's status, its per-line justification, retry keys per structure,
-- and the services and degraded-mode delay an operator sets per AMC.

-- An accreditation is ACTIVE, ANNULEE (cancelled by the pharmacy) or REVOQUEE (revoked by the
-- operator, with the reason). A revoked PEC keeps its prescription taken in its dossier (7009).
ALTER TABLE dispensation.tarification
    ADD COLUMN statut text CHECK (statut IN ('ACTIVE', 'ANNULEE', 'REVOQUEE')),
    ADD COLUMN statut_le timestamptz,
    ADD COLUMN motif_revocation text CHECK (length(motif_revocation) BETWEEN 1 AND 150);
UPDATE dispensation.tarification
   SET statut = CASE WHEN annulee THEN 'ANNULEE' ELSE 'ACTIVE' END,
       statut_le = coalesce(annulee_le, cree_le)
 WHERE mode = 'PEC';
DROP INDEX dispensation.tarification_pec_unique;
ALTER TABLE dispensation.tarification
    DROP COLUMN annulee,
    DROP COLUMN annulee_le,
    ADD CONSTRAINT tarification_statut CHECK ((mode = 'PEC') = (statut IS NOT NULL AND statut_le IS NOT NULL)),
    ADD CONSTRAINT tarification_motif CHECK ((statut = 'REVOQUEE') = (motif_revocation IS NOT NULL));
-- One PEC per prescription and dossier that is not cancelled: its violation is the 7009 code.
CREATE UNIQUE INDEX tarification_pec_unique ON dispensation.tarification (numero_dossier, id_prescription)
    WHERE mode = 'PEC' AND statut <> 'ANNULEE';
-- ConsultationAccreditation and accreditation revoke find a PEC by its number alone (the UNIQUE
-- constraint's index).

-- The justification of each line, as computed: the rule applied (none for L01), the amount before
-- caps, and for a line under an annual ceiling the ceiling and its consumption for the
-- beneficiary and year just before and just after the request. Lines recorded before this
-- migration have none (NULL).
ALTER TABLE dispensation.ligne
    DROP CONSTRAINT ligne_code_ligne_check,
    ADD CONSTRAINT ligne_code_ligne_check CHECK (code_ligne IN ('000', 'L01', 'L02', 'L03', 'L04')),
    ADD COLUMN regle_code text,
    ADD COLUMN regle_unite text CHECK (regle_unite IN ('PO', 'TA', 'FO')),
    ADD COLUMN regle_valeur bigint,
    ADD COLUMN montant_avant_plafonds bigint,
    ADD COLUMN plafond_annuel bigint,
    ADD COLUMN consomme_avant bigint,
    ADD COLUMN consomme_apres bigint,
    ADD CONSTRAINT ligne_regle CHECK ((regle_code IS NULL) = (regle_unite IS NULL)
        AND (regle_code IS NULL) = (regle_valeur IS NULL)),
    ADD CONSTRAINT ligne_plafond CHECK ((plafond_annuel IS NULL) = (consomme_avant IS NULL)
        AND (plafond_annuel IS NULL) = (consomme_apres IS NULL));

-- Retry keys are scoped to the structure: another structure's use of an id_requete is invisible.
-- Stored responses get the structure of the request that stored them: a tarification's from its
-- row, a cancellation's from its audit row; one whose structure cannot be found is dropped (a
-- retry of it is then answered as a new request).
ALTER TABLE dispensation.reponse ADD COLUMN structure text;
UPDATE dispensation.reponse r SET structure = t.structure
  FROM dispensation.tarification t WHERE t.id_requete = r.id_requete;
UPDATE dispensation.reponse r SET structure = a.numero_structure
  FROM (SELECT DISTINCT ON (id_requete) id_requete, numero_structure FROM audit.journal
         WHERE operation = 'AnnulationTar' AND code = '0000' AND numero_structure IS NOT NULL
         ORDER BY id_requete, id) a
 WHERE r.structure IS NULL AND a.id_requete = r.id_requete;
DELETE FROM dispensation.reponse WHERE structure IS NULL OR structure !~ '^[0-9]{9}$';
ALTER TABLE dispensation.reponse
    ALTER COLUMN structure SET NOT NULL,
    ADD CONSTRAINT reponse_structure CHECK (structure ~ '^[0-9]{9}$'),
    DROP CONSTRAINT reponse_pkey,
    ADD CONSTRAINT reponse_pkey PRIMARY KEY (structure, id_requete);

-- Every service an operator opens or closes per AMC: TARIFICATION_CHIFFREE (effective only where
-- this server also holds the trusted third party's key) and CONSULTATION join the others, both
-- starting as TARIFICATION stands.
ALTER TABLE identite.amc_service
    DROP CONSTRAINT amc_service_service_check,
    ADD CONSTRAINT amc_service_service_check CHECK (service IN ('DROITS', 'TARIFICATION',
        'TARIFICATION_CHIFFREE', 'ANNULATION', 'CONSULTATION'));
INSERT INTO identite.amc_service (numero_amc, service, actif)
SELECT numero_amc, s.service, actif FROM identite.amc_service,
       (VALUES ('TARIFICATION_CHIFFREE'), ('CONSULTATION')) AS s(service)
 WHERE amc_service.service = 'TARIFICATION'
ON CONFLICT DO NOTHING;

-- The norm's degraded mode: for how many days after its last accredited rights a pharmacy may
-- still bill on them when this server is unreachable (published by ServicesOuverts).
ALTER TABLE identite.amc
    ADD COLUMN delai_grace_jours smallint CHECK (delai_grace_jours BETWEEN 0 AND 30);
