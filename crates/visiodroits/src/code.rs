//! Response codes of spec/exchanges.md, with their fixed French labels and how each travels.

/// A `code_reponse` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Ok,
    Technical,
    InvalidRequest,
    BeneficiaryUnknown,
    RightsNotOpen,
    NotEligible,
    AdherentNeeded,
    AmcUnknown,
    ServiceClosed,
    DossierUnknown,
    DossierExpired,
    OtherStructure,
    DossierClosed,
    MixedData,
    EncryptedUnreadable,
    EncryptedNotAccepted,
    RequestIdReused,
    CommitmentExists,
    AccreditationUnknown,
    PsMismatch,
    CertificateRequired,
    CertificatePolicy,
    StructureNotEstablished,
}

/// How a refusal travels when it is not a normal response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// `Sender` (SOAP 1.1 `Client`).
    Sender,
    /// `Sender` with subcode `vd:Acces` (SOAP 1.1 `Client`; the detail's code says which).
    Access,
    /// `Receiver` (SOAP 1.1 `Server`).
    Receiver,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "0000",
            Code::Technical => "0999",
            Code::InvalidRequest => "6000",
            Code::BeneficiaryUnknown => "6001",
            Code::RightsNotOpen => "6002",
            Code::NotEligible => "6003",
            Code::AdherentNeeded => "6005",
            Code::AmcUnknown => "6020",
            Code::ServiceClosed => "6021",
            Code::DossierUnknown => "7001",
            Code::DossierExpired => "7002",
            Code::OtherStructure => "7003",
            Code::DossierClosed => "7004",
            Code::MixedData => "7005",
            Code::EncryptedUnreadable => "7006",
            Code::EncryptedNotAccepted => "7007",
            Code::RequestIdReused => "7008",
            Code::CommitmentExists => "7009",
            Code::AccreditationUnknown => "7010",
            Code::PsMismatch => "8001",
            Code::CertificateRequired => "8002",
            Code::CertificatePolicy => "8003",
            Code::StructureNotEstablished => "8004",
        }
    }

    /// The fixed label (≤ 150 characters). Never carries request data or internal detail.
    pub fn label(self) -> &'static str {
        match self {
            Code::Ok => "Traitement effectué",
            Code::Technical => "Erreur technique",
            Code::InvalidRequest => "Requête invalide",
            Code::BeneficiaryUnknown => "Bénéficiaire inconnu",
            Code::RightsNotOpen => "Droits non ouverts à la date de référence",
            Code::NotEligible => "Bénéficiaire non éligible au(x) domaine(s) demandé(s)",
            Code::AdherentNeeded => "Numéro d'adhérent nécessaire pour identifier le bénéficiaire",
            Code::AmcUnknown => "AMC inconnue ou non hébergée",
            Code::ServiceClosed => "Service fermé pour cette AMC",
            Code::DossierUnknown => "Dossier inconnu",
            Code::DossierExpired => "Dossier expiré",
            Code::OtherStructure => "Dossier ou accréditation d'une autre structure",
            Code::DossierClosed => "Dossier clos",
            Code::MixedData => "Données d'identité et de dispensation mêlées dans un même échange",
            Code::EncryptedUnreadable => "Données chiffrées illisibles",
            Code::EncryptedNotAccepted => "Tarification chiffrée non acceptée",
            Code::RequestIdReused => "Identifiant de requête déjà utilisé avec un autre contenu",
            Code::CommitmentExists => "Une prise en charge existe déjà pour cette prescription",
            Code::AccreditationUnknown => "Accréditation inconnue ou déjà annulée",
            Code::PsMismatch => "Le professionnel du message n'est pas celui du certificat",
            Code::CertificateRequired => "Cet échange nécessite un certificat client (CPS)",
            Code::CertificatePolicy => {
                "Certificat refusé : aucun profil accepté ne le reconnaît, ou il n'est plus valable"
            }
            Code::StructureNotEstablished => {
                "Le professionnel n'exerce pas dans la structure déclarée (annuaire), ou elle ne peut être établie"
            }
        }
    }

    /// `None` for codes carried in a normal response; the Fault kind otherwise.
    pub(crate) fn fault(self) -> Option<FaultKind> {
        match self {
            Code::Technical => Some(FaultKind::Receiver),
            Code::PsMismatch
            | Code::CertificateRequired
            | Code::CertificatePolicy
            | Code::StructureNotEstablished => Some(FaultKind::Access),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_the_schema() {
        for code in [
            Code::Ok,
            Code::Technical,
            Code::InvalidRequest,
            Code::BeneficiaryUnknown,
            Code::RightsNotOpen,
            Code::NotEligible,
            Code::AdherentNeeded,
            Code::AmcUnknown,
            Code::ServiceClosed,
            Code::DossierUnknown,
            Code::DossierExpired,
            Code::OtherStructure,
            Code::DossierClosed,
            Code::MixedData,
            Code::EncryptedUnreadable,
            Code::EncryptedNotAccepted,
            Code::RequestIdReused,
            Code::CommitmentExists,
            Code::AccreditationUnknown,
            Code::PsMismatch,
            Code::CertificateRequired,
            Code::CertificatePolicy,
            Code::StructureNotEstablished,
        ] {
            assert!(code.label().chars().count() <= 150, "{code:?}");
            assert_eq!(code.as_str().len(), 4);
        }
    }
}
