//! A prescription as the pharmacy sends it (clear, or decrypted in memory): validated lines, in
//! cents.

use chrono::NaiveDate;

use super::tarification::Line;

/// One dispensed line, validated (spec: `prescription/ligne`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispensedLine {
    pub id: i32,
    pub prestation: String,
    pub execution: NaiveDate,
    pub quantity: i32,
    pub unit_price: i64,
    pub billed: i64,
    pub base: i64,
    /// AMO rate, percent.
    pub rate: i16,
    pub amo: i64,
    pub cip: Option<String>,
    pub lpp: Option<String>,
}

impl DispensedLine {
    /// What the tarification engine reads of the line.
    pub fn line(&self) -> Line {
        Line {
            id: self.id as u32,
            prestation: self.prestation.clone(),
            execution: self.execution,
            billed: self.billed,
            base: self.base,
            amo: self.amo,
        }
    }
}

/// A valid prescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    /// `id_prescription`, 1..999999999.
    pub id: i32,
    pub lines: Vec<DispensedLine>,
}
