-- Revision 2 of the certificate profiles (spec/security.md): the audit says which profile
-- recognised the client certificate and how the structure was established (from the
-- certificate, checked against the professional directory, declared and trusted by
-- configuration, or declared without a certificate). The hash chain covers both columns.
ALTER TABLE audit.journal
    ADD COLUMN profil_certificat text,
    ADD COLUMN origine_structure text;
