-- The AMC service flags that tarification checks at each request (spec/exchanges.md: an AMC may
-- close TARIFICATION or ANNULATION after a dossier was issued), readable under vd_tarif without
-- any access to identite: a copy in dispensation, kept by the same transaction that changes
-- identite.amc_service (a trigger), so that the two never disagree. Service flags identify no one.

CREATE TABLE dispensation.amc_service (
    numero_amc text NOT NULL,
    service    text NOT NULL,
    actif      boolean NOT NULL,
    PRIMARY KEY (numero_amc, service)
);

INSERT INTO dispensation.amc_service (numero_amc, service, actif)
SELECT numero_amc, service, actif FROM identite.amc_service;

CREATE FUNCTION dispensation.copy_amc_service() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM dispensation.amc_service
         WHERE numero_amc = OLD.numero_amc AND service = OLD.service;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO dispensation.amc_service (numero_amc, service, actif)
        VALUES (NEW.numero_amc, NEW.service, NEW.actif);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER amc_service_copy
AFTER INSERT OR UPDATE OR DELETE ON identite.amc_service
FOR EACH ROW EXECUTE FUNCTION dispensation.copy_amc_service();

-- Read only: the exchanges never change a flag.
GRANT SELECT ON dispensation.amc_service TO vd_tarif;
