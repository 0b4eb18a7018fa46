-- DldTar DEVIS's transaction as the server runs it (src/exchange/tarification.rs, src/store/
-- tarification.rs, audit.rs), statement for statement and round trip for round trip, for
-- `pgbench -M prepared`: the ceiling of a DEVIS of the load generator's prescription (a PH7 line
-- and an LPP line whose rule has an annual ceiling). Client :client_id works on its own dossier
-- (made by scripts/bench), as each connection of the load generator does. Values the server
-- computes in Rust (amounts, accreditation, response) are constants or parameters here.
-- Keep in step with the server's SQL (the unit tests of src/store/ceiling_scripts.rs fail otherwise).
-- Prescription numbers unique per dossier over the whole run, as a PEC's must be (random ones
-- collided after some 10,000 PECs on a dossier): scripts/bench gives each ceiling run its own
-- :prescription_base, and pgbench keeps :n per client from one transaction to the next.
\set n :n + 1
\set p :prescription_base + :n
\set q1 random(0, 4611686018427387903)
\set q2 random(0, 4611686018427387903)
\startpipeline
BEGIN;
SET LOCAL ROLE vd_tarif;
\endpipeline
SELECT r.empreinte, r.reponse, d.numero_amc, d.structure, d.expiration, d.statut,
       d.cle_plafond, d.regles::text AS regles,
       EXISTS (SELECT 1 FROM dispensation.tarification t
                WHERE t.numero_dossier = ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid
                  AND t.id_prescription = :p AND t.mode = 'PEC' AND NOT t.annulee) AS engagee
  FROM (SELECT 1) AS one
  LEFT JOIN dispensation.reponse r
         ON r.id_requete = (lpad(to_hex(:q1::bigint), 16, '0') || lpad(to_hex(:q2::bigint), 16, '0'))::uuid
  LEFT JOIN dispensation.dossier d
         ON d.numero_dossier = ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid \gset
SELECT c.code_garantie, c.code_prestation, c.annee, c.consomme
  FROM dispensation.consommation c
  JOIN UNNEST('{G-PHAR-GEN}'::text[], '{LPP}'::text[], '{2026}'::smallint[]) AS k(g, p, y)
    ON c.code_garantie = k.g AND c.code_prestation = k.p AND c.annee = k.y
 WHERE c.cle_plafond = :cle_plafond::bytea;
WITH t AS (
    INSERT INTO dispensation.tarification (numero_dossier, id_requete, structure, mode,
        id_prescription, chiffree, donnees_chiffrees, total_facture, total_ro,
        total_amc, total_reste_a_charge, numero_accreditation)
    VALUES (('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, (lpad(to_hex(:q1::bigint), 16, '0') || lpad(to_hex(:q2::bigint), 16, '0'))::uuid, :structure, 'DEVIS', :p, false, NULL, 2150, 1360, 740, 50,
            NULL) RETURNING id),
l AS (
    INSERT INTO dispensation.ligne (tarification_id, id_ligne, code_prestation,
        date_execution, quantite, prix_unitaire, montant_facture, base_remboursement,
        taux_ro, montant_ro, code_cip, code_lpp, montant_amc, reste_a_charge,
        code_garantie, code_ligne)
    SELECT (SELECT id FROM t), * FROM UNNEST('{1,2}'::int[], '{PH7,LPP}'::text[], '{2026-11-29,2026-11-29}'::date[],
        '{2,1}'::int[], '{1000,150}'::bigint[], '{2000,150}'::bigint[], '{2000,100}'::bigint[],
        '{65,60}'::smallint[], '{1300,60}'::bigint[], '{3400930000001,NULL}'::text[], '{NULL,1234567}'::text[],
        '{700,40}'::bigint[], '{0,50}'::bigint[], '{G-PHAR-GEN,G-PHAR-GEN}'::text[], '{000,000}'::text[])),
u AS (
    UPDATE dispensation.consommation c SET consomme = c.consomme + k.a
      FROM UNNEST('{}'::text[], '{}'::text[], '{}'::smallint[], '{}'::bigint[]) AS k(g, p, y, a)
     WHERE c.cle_plafond = :cle_plafond::bytea AND c.code_garantie = k.g
       AND c.code_prestation = k.p AND c.annee = k.y),
cp AS (
    INSERT INTO dispensation.consommation_pec (tarification_id, cle_plafond,
        code_garantie, code_prestation, annee, montant)
    SELECT (SELECT id FROM t), :cle_plafond::bytea, * FROM UNNEST('{}'::text[], '{}'::text[], '{}'::smallint[], '{}'::bigint[])),
r AS (
    INSERT INTO dispensation.reponse (id_requete, empreinte, reponse)
    VALUES ((lpad(to_hex(:q1::bigint), 16, '0') || lpad(to_hex(:q2::bigint), 16, '0'))::uuid, sha256(:q1::text::bytea), :response))
INSERT INTO audit.journal (instance, operation, code, duree_ms, id_requete,
    id_reponse, horodatage_client, adresse_pair, cert_sujet, cert_emetteur, cert_serie,
    cert_empreinte, identifiant_ps, numero_structure, numero_amc, numero_dossier,
    numero_accreditation, motif, profil_certificat, origine_structure)
VALUES (:instance, 'DldTar', '0000', 2, (lpad(to_hex(:q1::bigint), 16, '0') || lpad(to_hex(:q2::bigint), 16, '0'))::uuid,
    (lpad(to_hex(:q2::bigint), 16, '0') || lpad(to_hex(:q1::bigint), 16, '0'))::uuid, now(), '127.0.0.1:40000', :subject, :issuer, :serial,
    :fingerprint, :ps, :structure, :amc, ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, NULL, NULL, 'CPE', 'certificat');
COMMIT;
