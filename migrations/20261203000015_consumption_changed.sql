-- A PEC is priced on the consumption its request's first read returned, and its one recording
-- statement adds its consumption only to ceilings that still hold what was read (on the rows it
-- locks). When one does not (another PEC of the beneficiary, a cancellation, in between), the
-- statement calls this function, whose error undoes the whole statement; the server then prices
-- the PEC again in a transaction that locks its ceilings first. SQLSTATE VD001, and a message that
-- names no row.
CREATE FUNCTION dispensation.vd_consommation_changee() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'consommation modifiée depuis sa lecture' USING ERRCODE = 'VD001';
END
$$;
REVOKE ALL ON FUNCTION dispensation.vd_consommation_changee() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dispensation.vd_consommation_changee() TO vd_tarif;
