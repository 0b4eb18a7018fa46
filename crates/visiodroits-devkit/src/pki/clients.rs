//! The dev PKI's client certificates: who each one is (its subject's shape) and what it is for.

/// The pharmacy (structure) of the valid dev certificate: FINESS.
pub const DEV_FINESS: &str = "750000001";
/// Another pharmacy.
pub const OTHER_FINESS: &str = "920000002";
/// The RPPS of the valid dev pharmacist (11 digits, Luhn-valid).
pub const DEV_RPPS: &str = "10001234565";
/// The RPPS of the real-shaped CPS card (the public test vector's `CN=899700075122`).
pub const CPS_RPPS: &str = "99700075122";
/// The identifier of the CPE card: `3` + FINESS + `/` + the pharmacy's own number.
pub const CPE_PS: &str = "3750000001/1234";

/// A client certificate of the dev PKI.
pub struct DevClient {
    pub name: &'static str,
    pub(super) shape: Shape,
    pub(super) what: ClientKind,
}

/// How the subject is written.
#[derive(Clone)]
pub(super) enum Shape {
    /// `C, O, OU, CN`: the tidy test shape (a CPE card under the default profiles).
    Tidy { cn: String, ou: String },
    /// A real CPS card: `SN+CN+GN` in one multi-valued RDN, `title`, `C`; no O, no OU.
    Cps {
        sn: &'static str,
        cn: String,
        gn: &'static str,
    },
    /// A person's card without OU (CPS under the default profiles), written by rcgen.
    NoOu { cn: String },
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum ClientKind {
    Valid,
    Revoked,
    Expired,
    NotYetValid,
    UnknownCa,
    /// KeyUsage digitalSignature, no ExtendedKeyUsage.
    NoEku,
    /// A card's signature certificate: KeyUsage nonRepudiation only.
    SignatureOnly,
    /// Issued by the re-keyed intermediate that the root revoked.
    UnderRevokedRekeyed,
}

/// Names of the client certificates, with what they are for.
pub const CLIENTS: &[(&str, &str)] = &[
    (
        "valid",
        "pharmacist of the dev pharmacy, CN 8+RPPS and OU 1+FINESS (a CPE card's shape)",
    ),
    ("revoked", "listed in the intermediate CA's CRL"),
    ("expired", "notAfter in the past"),
    ("not-yet-valid", "notBefore in the future"),
    (
        "bad-ou",
        "OU is a SIRET (type 3): names a structure no profile binds",
    ),
    ("other-structure", "pharmacist of another pharmacy (OU)"),
    ("unknown-ca", "issued by a CA the server does not trust"),
    (
        "cps",
        "real CPS card: SN=PHARMACH0007512+CN=899700075122+GN=CAROLE,title=Pharmacien,C=FR",
    ),
    ("cpe", "CPE card: CN 3750000001/1234, OU 1750000001"),
    (
        "org",
        "ORG certificate of the dev pharmacy's software: OU 1750000001, no person",
    ),
    ("noeku", "a card without ExtendedKeyUsage"),
    (
        "signature-only",
        "a card's signature certificate (nonRepudiation only)",
    ),
    (
        "rekeyed-revoked",
        "issued by the re-keyed intermediate (same name) that the root revoked",
    ),
];

pub(super) fn clients() -> Vec<DevClient> {
    let ps = |rpps: &str| format!("8{rpps}");
    let tidy = |cn: String, ou: String| Shape::Tidy { cn, ou };
    let finess = |f: &str| format!("1{f}");
    vec![
        DevClient {
            name: "valid",
            shape: tidy(ps(DEV_RPPS), finess(DEV_FINESS)),
            what: ClientKind::Valid,
        },
        DevClient {
            name: "revoked",
            shape: tidy(ps("10001234573"), finess(DEV_FINESS)),
            what: ClientKind::Revoked,
        },
        DevClient {
            name: "expired",
            shape: tidy(ps("10001234581"), finess(DEV_FINESS)),
            what: ClientKind::Expired,
        },
        DevClient {
            name: "not-yet-valid",
            shape: tidy(ps("10001234599"), finess(DEV_FINESS)),
            what: ClientKind::NotYetValid,
        },
        DevClient {
            name: "bad-ou",
            shape: tidy(ps("10001234607"), "312345678900017".into()),
            what: ClientKind::Valid,
        },
        DevClient {
            name: "other-structure",
            shape: tidy(ps("10001234615"), finess(OTHER_FINESS)),
            what: ClientKind::Valid,
        },
        DevClient {
            name: "unknown-ca",
            shape: tidy(ps("10001234623"), finess(DEV_FINESS)),
            what: ClientKind::UnknownCa,
        },
        DevClient {
            name: "cps",
            shape: Shape::Cps {
                sn: "PHARMACH0007512",
                cn: ps(CPS_RPPS),
                gn: "CAROLE",
            },
            what: ClientKind::Valid,
        },
        DevClient {
            name: "cpe",
            shape: tidy(CPE_PS.into(), finess(DEV_FINESS)),
            what: ClientKind::Valid,
        },
        DevClient {
            name: "org",
            shape: tidy("LOGICIEL OFFICINE DEV".into(), finess(DEV_FINESS)),
            what: ClientKind::Valid,
        },
        DevClient {
            name: "noeku",
            shape: Shape::NoOu {
                cn: ps("10001234631"),
            },
            what: ClientKind::NoEku,
        },
        DevClient {
            name: "signature-only",
            shape: Shape::NoOu {
                cn: ps("10001234649"),
            },
            what: ClientKind::SignatureOnly,
        },
        DevClient {
            name: "rekeyed-revoked",
            shape: Shape::NoOu {
                cn: ps("10001234656"),
            },
            what: ClientKind::UnderRevokedRekeyed,
        },
    ]
}

/// The PS identifier a dev client's certificate carries (tests and the demo).
pub fn client_ps_id(name: &str) -> Option<String> {
    clients()
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| match c.shape {
            Shape::Tidy { cn, .. } | Shape::Cps { cn, .. } | Shape::NoOu { cn } => cn,
        })
}

/// What `pki dev` prints: the client certificates and their purpose.
pub fn describe() -> String {
    CLIENTS
        .iter()
        .map(|(name, what)| format!("  clients/{name}.pem|.key|.p12  {what}\n"))
        .collect()
}
