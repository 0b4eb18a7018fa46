-- AMCs hosted by this server and the services each one opens (spec/exchanges.md ServicesOuverts).
CREATE TABLE identite.amc (
    numero_amc        text PRIMARY KEY CHECK (numero_amc ~ '^[0-9]{8,10}$'),
    nom               text NOT NULL CHECK (length(nom) BETWEEN 1 AND 100),
    contact_nom       text CHECK (length(contact_nom) <= 100),
    contact_email     text CHECK (length(contact_email) <= 100),
    contact_telephone text CHECK (length(contact_telephone) <= 20),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- TARIFICATION_CHIFFREE is not stored: it is open exactly where TARIFICATION is open and this
-- server holds the trusted third party's key.
CREATE TABLE identite.amc_service (
    numero_amc text NOT NULL REFERENCES identite.amc (numero_amc) ON DELETE CASCADE,
    service    text NOT NULL CHECK (service IN ('DROITS', 'TARIFICATION', 'ANNULATION')),
    actif      boolean NOT NULL,
    PRIMARY KEY (numero_amc, service)
);

GRANT SELECT ON identite.amc, identite.amc_service TO vd_droits;
