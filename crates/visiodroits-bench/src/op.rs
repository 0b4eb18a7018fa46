//! The operations of the load: what each request does, the mix that weights them, and the one
//! prescription every tarification sends.

use anyhow::Context;
use serde::Serialize;

use visiodroits_client::messages::{Line, Prescription};

/// What one request of the load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Op {
    /// `ServicesOuverts`.
    Services,
    /// `DemandeDroits` for a random beneficiary of the population (a new dossier each time).
    Rights,
    /// `DldTar` DEVIS, clear prescription (PH7 + LPP lines).
    Devis,
    /// `DldTar` PEC, clear prescription: the ceiling row is locked and consumed.
    Pec,
    /// `DldTar` PEC, prescription encrypted by the client to the published certificate.
    PecEncrypted,
    /// `AnnulationTar` of the connection's last PEC; when it has none, it makes one first (not
    /// measured in closed loop).
    Cancellation,
    /// A new TCP + TLS connection with a full handshake (client certificate, CRL checked), then
    /// one small request; the connection is dropped.
    HandshakeFull,
    /// The same with a resumed TLS session.
    HandshakeResumed,
}

impl Op {
    pub const ALL: &'static [Op] = &[
        Op::Services,
        Op::Rights,
        Op::Devis,
        Op::Pec,
        Op::PecEncrypted,
        Op::Cancellation,
        Op::HandshakeFull,
        Op::HandshakeResumed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Services => "services",
            Op::Rights => "droits",
            Op::Devis => "devis",
            Op::Pec => "pec",
            Op::PecEncrypted => "pec-chiffre",
            Op::Cancellation => "annulation",
            Op::HandshakeFull => "handshake-full",
            Op::HandshakeResumed => "handshake-resumed",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == s)
    }

    pub(crate) fn needs_dossier(self) -> bool {
        matches!(
            self,
            Op::Devis | Op::Pec | Op::PecEncrypted | Op::Cancellation
        )
    }

    pub(crate) fn is_handshake(self) -> bool {
        matches!(self, Op::HandshakeFull | Op::HandshakeResumed)
    }
}

/// `droits=4,pec=1` → weighted operations.
pub fn parse_mix(s: &str) -> anyhow::Result<Vec<(Op, u32)>> {
    let mut mix = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let op = Op::parse(name.trim()).with_context(|| {
            let names: Vec<_> = Op::ALL.iter().map(|o| o.name()).collect();
            format!("unknown operation {name:?} (one of {})", names.join(", "))
        })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| *w > 0)
            .with_context(|| format!("{name}: the weight is a positive integer"))?;
        mix.push((op, weight));
    }
    anyhow::ensure!(!mix.is_empty(), "the mix names no operation");
    let handshakes = mix.iter().filter(|(o, _)| o.is_handshake()).count();
    anyhow::ensure!(
        handshakes == 0 || mix.len() == 1,
        "handshake operations are measured alone"
    );
    Ok(mix)
}

/// The prescription of every tarification of the load, dated `today`: a PH7 line and an LPP
/// line whose rule has an annual ceiling (the ceilings price the same, see `ceiling`).
pub fn prescription(id: u32, today: &str) -> Prescription {
    let line = |id, prestation: &str, q, pu: &str, f: &str, br: &str, t, ro: &str| Line {
        id,
        prestation: prestation.into(),
        execution: today.into(),
        quantity: q,
        unit_price: pu.into(),
        billed: f.into(),
        base: br.into(),
        rate: t,
        amo: ro.into(),
        cip: (prestation != "LPP").then(|| "3400930000001".into()),
        lpp: (prestation == "LPP").then(|| "1234567".into()),
    };
    Prescription {
        id,
        date: today.into(),
        prescriber: "123456789".into(),
        billing_date: today.into(),
        lines: vec![
            line(1, "PH7", 2, "10.00", "20.00", "20.00", 65, "13.00"),
            line(2, "LPP", 1, "1.50", "1.50", "1.00", 60, "0.60"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_with_weights_and_refuse_nonsense() {
        assert_eq!(
            parse_mix("droits=4,pec").unwrap(),
            vec![(Op::Rights, 4), (Op::Pec, 1)]
        );
        assert!(parse_mix("droits=0").is_err());
        assert!(parse_mix("nothing").is_err());
        assert!(parse_mix("").is_err());
        assert!(parse_mix("handshake-full,droits").is_err());
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(*op));
        }
    }
}
