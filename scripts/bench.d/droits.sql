-- The rights exchange's transaction as the server runs it (src/exchange/rights.rs, src/store/
-- rights.rs, audit.rs), statement for statement and round trip for round trip, for `pgbench -M prepared`: the ceiling
-- of DemandeDroits. Beneficiary :i of the synthetic population (src/load/population.rs).
-- Values the server computes in Rust (dossier number, ceiling key, rules snapshot, audit
-- fields) are parameters here too. Keep in step with the server's SQL (the unit tests of src/store/ceiling_scripts.rs fail otherwise).
\set i random(0, :population - 1)
\set nir (1 + :i % 2) * 1000000000000 + (40 + (:i / 2) % 60) * 10000000000 + (1 + (:i / 120) % 12) * 100000000 + (1 + (:i / 1440) % 95) * 1000000 + :i % 1000000
\set key 97 - :nir % 97
\set birth 19000000 + (40 + (:i / 2) % 60) * 10000 + (1 + (:i / 120) % 12) * 100 + 15
\set d1 random(0, 4611686018427387903)
\set d2 random(0, 4611686018427387903)
\set q1 random(0, 4611686018427387903)
\set q2 random(0, 4611686018427387903)
\startpipeline
BEGIN;
SET LOCAL ROLE vd_droits;
\endpipeline
WITH a AS (
    SELECT a.numero_amc, a.nom,
           coalesce(bool_or(s.actif) FILTER (WHERE s.service = 'DROITS'), false) AS droits_ouverts
      FROM identite.amc a LEFT JOIN identite.amc_service s USING (numero_amc)
     WHERE a.numero_amc = :amc
     GROUP BY a.numero_amc),
b AS (
    SELECT id FROM (
        SELECT b.id FROM identite.beneficiaire b
         WHERE b.nir = :nir::text AND b.cle_nir = lpad(:key::text, 2, '0')
           AND b.numero_amc = :amc AND b.date_naissance = :birth::text AND b.rang = 1
        UNION
        SELECT b.id FROM identite.ouvrant_droit o
          JOIN identite.beneficiaire b ON b.id = o.beneficiaire_id
         WHERE o.nir = :nir::text AND o.cle_nir = lpad(:key::text, 2, '0')
           AND b.numero_amc = :amc AND b.date_naissance = :birth::text AND b.rang = 1
    ) m ORDER BY id LIMIT 1)
SELECT a.numero_amc, a.nom AS nom_amc, a.droits_ouverts, b.id AS beneficiaire, g.*
  FROM a
  LEFT JOIN b ON true
  LEFT JOIN LATERAL (
      SELECT g.contrat_id, c.numero_contrat, c.numero_adherent, c.responsable, g.domaine,
             g.libelle, g.code_garantie, g.priorite, g.reseau, g.debut, g.fin,
             coalesce(array_agg(p.code ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS codes,
             coalesce(array_agg(p.unite ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS unites,
             coalesce(array_agg(p.valeur ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS valeurs,
             coalesce(array_agg(p.plafond_annuel ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS plafonds
        FROM identite.garantie g
        JOIN identite.contrat c ON c.id = g.contrat_id
        LEFT JOIN identite.prestation p ON p.garantie_id = g.id
       WHERE g.beneficiaire_id = b.id
       GROUP BY g.id, c.id) g ON true
 ORDER BY g.priorite, g.domaine, g.debut \gset
WITH pairing AS (
    INSERT INTO identite.appariement (numero_dossier, beneficiaire_id, contrat_id)
    VALUES ((lpad(to_hex(:d1::bigint), 16, '0') || lpad(to_hex(:d2::bigint), 16, '0'))::uuid, :beneficiaire, :contrat_id)),
dossier AS (
    INSERT INTO dispensation.dossier (numero_dossier, numero_amc, structure, expiration,
                                      cle_plafond, regles)
    VALUES ((lpad(to_hex(:d1::bigint), 16, '0') || lpad(to_hex(:d2::bigint), 16, '0'))::uuid, :amc, :structure,
            now() + interval '1 day', sha256(:beneficiaire::text::bytea), :rules::jsonb))
INSERT INTO audit.journal (instance, operation, code, duree_ms, id_requete,
    id_reponse, horodatage_client, adresse_pair, cert_sujet, cert_emetteur, cert_serie,
    cert_empreinte, identifiant_ps, numero_structure, numero_amc, numero_dossier,
    numero_accreditation, motif, profil_certificat, origine_structure)
VALUES (:instance, 'DemandeDroits', '0000', 2, (lpad(to_hex(:q1::bigint), 16, '0') || lpad(to_hex(:q2::bigint), 16, '0'))::uuid,
    (lpad(to_hex(:q2::bigint), 16, '0') || lpad(to_hex(:q1::bigint), 16, '0'))::uuid, now(), '127.0.0.1:40000', :subject, :issuer, :serial,
    :fingerprint, :ps, :structure, :amc, (lpad(to_hex(:d1::bigint), 16, '0') || lpad(to_hex(:d2::bigint), 16, '0'))::uuid,
    NULL, NULL, 'CPE', 'certificat');
COMMIT;
