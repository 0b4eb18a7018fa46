-- The migration level, readable by the server (whose login role reads no table by itself): `serve`
-- refuses a database whose level is not its own, `/readyz` and `check-config` report it. Under
-- vd_droits, which every server login role may act as. The function reads the migrations table
-- with its owner's rights and gives out one number.
CREATE FUNCTION public.vd_migration_level() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT max(version) FROM public._sqlx_migrations WHERE success
$$;
REVOKE ALL ON FUNCTION public.vd_migration_level() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.vd_migration_level() TO vd_droits;
