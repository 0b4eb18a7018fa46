-- Rule sets (barèmes) shared by the guarantees that carry the same rules: an insurer's portfolio
-- has a few hundred products and millions of guarantees, so a guarantee now points to its rule set
-- instead of owning one row per rule. The import writes a set once, whatever the number of lines
-- that carry it, and the rights exchange reads a guarantee's rules in the same row lookup as the
-- rest (no aggregation).

-- The canonical form of a rule set: for each rule, in byte order of the codes, the code in
-- hexadecimal (so no code can be mistaken for a separator), the unit, the value (hundredths) and
-- the annual ceiling (cents, empty for none), joined by ':' and the rules by ';'. Its SHA-256 is
-- the set's key; the importer computes the same one.
CREATE FUNCTION identite.vd_empreinte(codes text[], unites text[], valeurs bigint[],
                                      plafonds bigint[]) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(coalesce(string_agg(
               encode(convert_to(codes[i], 'UTF8'), 'hex') || ':' || unites[i] || ':' ||
               valeurs[i]::text || ':' || coalesce(plafonds[i]::text, ''), ';' ORDER BY i), ''),
           'UTF8'))
      FROM generate_subscripts(codes, 1) i
$$;

-- Codes of 1 to 7 characters, strictly increasing in byte order (so each code once).
CREATE FUNCTION identite.vd_codes_valides(codes text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_and(length(codes[i]) BETWEEN 1 AND 7
                             AND (i = 1 OR codes[i - 1] COLLATE "C" < codes[i] COLLATE "C")), true)
      FROM generate_subscripts(codes, 1) i
$$;

-- PO (% of BR, AMO included), TA (% of the ticket modérateur), FO (flat amount in euros); DEF is
-- the domain's default. Parallel arrays, one entry per rule.
CREATE TABLE identite.bareme (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    empreinte bytea NOT NULL UNIQUE,
    codes     text[] NOT NULL,
    unites    text[] NOT NULL,
    valeurs   bigint[] NOT NULL,                                   -- hundredths
    plafonds  bigint[] NOT NULL,                                   -- cents, NULL for none
    CHECK (cardinality(codes) = 0 OR (array_ndims(codes) = 1 AND array_lower(codes, 1) = 1)),
    CHECK (array_position(codes, NULL) IS NULL AND array_position(unites, NULL) IS NULL),
    CHECK (cardinality(unites) = cardinality(codes) AND cardinality(valeurs) = cardinality(codes)
           AND cardinality(plafonds) = cardinality(codes)),
    CHECK (identite.vd_codes_valides(codes)),
    CHECK (unites <@ ARRAY['PO', 'TA', 'FO']),
    CHECK (array_position(valeurs, NULL) IS NULL AND 0 <= ALL (valeurs)),
    CHECK (0 <= ALL (array_remove(plafonds, NULL))),
    CHECK (empreinte = identite.vd_empreinte(codes, unites, valeurs, plafonds))
);

ALTER TABLE identite.garantie ADD COLUMN bareme_id bigint REFERENCES identite.bareme (id);

-- Existing guarantees: their rules become sets, each distinct set once.
CREATE TEMP TABLE vd_regles ON COMMIT DROP AS
SELECT g.id AS garantie_id,
       coalesce(array_agg(p.code ORDER BY p.code COLLATE "C") FILTER (WHERE p.code IS NOT NULL), '{}') AS codes,
       coalesce(array_agg(p.unite ORDER BY p.code COLLATE "C") FILTER (WHERE p.code IS NOT NULL), '{}') AS unites,
       coalesce(array_agg(p.valeur ORDER BY p.code COLLATE "C") FILTER (WHERE p.code IS NOT NULL), '{}') AS valeurs,
       coalesce(array_agg(p.plafond_annuel ORDER BY p.code COLLATE "C") FILTER (WHERE p.code IS NOT NULL), '{}') AS plafonds
  FROM identite.garantie g
  LEFT JOIN identite.prestation p ON p.garantie_id = g.id
 GROUP BY g.id;
ALTER TABLE vd_regles ADD COLUMN empreinte bytea;
UPDATE vd_regles SET empreinte = identite.vd_empreinte(codes, unites, valeurs, plafonds);
INSERT INTO identite.bareme (empreinte, codes, unites, valeurs, plafonds)
SELECT DISTINCT ON (empreinte) empreinte, codes, unites, valeurs, plafonds FROM vd_regles;
UPDATE identite.garantie g SET bareme_id = b.id
  FROM vd_regles r JOIN identite.bareme b ON b.empreinte = r.empreinte
 WHERE g.id = r.garantie_id;

ALTER TABLE identite.garantie ALTER COLUMN bareme_id SET NOT NULL;
DROP TABLE identite.prestation;

-- The adherent look-up goes from the contract to its guarantees (and a contract's removal
-- cascades through them); no query looks a beneficiary up by birth date alone.
CREATE INDEX garantie_contrat ON identite.garantie (contrat_id);
DROP INDEX identite.beneficiaire_naissance;

GRANT SELECT ON identite.bareme TO vd_droits;
