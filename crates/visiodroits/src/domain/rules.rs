//! Prestation rules of a guarantee (spec: tarification rules).

use super::Hundredths;

/// How a prestation rule computes the AMC amount (spec: tarification rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unit {
    /// Percentage of the BR, AMO included.
    PO,
    /// Percentage of the ticket modérateur.
    TA,
    /// Flat amount per line, in euros.
    FO,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PO" => Some(Unit::PO),
            "TA" => Some(Unit::TA),
            "FO" => Some(Unit::FO),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::PO => "PO",
            Unit::TA => "TA",
            Unit::FO => "FO",
        }
    }
}

/// A prestation rule of a guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub code: String,
    pub unit: Unit,
    /// Hundredths (of a percent for PO/TA, of a euro for FO).
    pub value: Hundredths,
    /// Annual ceiling, cents.
    pub annual_ceiling: Option<Hundredths>,
}
