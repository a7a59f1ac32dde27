//! The deterministic explanation: the score, its band and the strongest fields in a fixed form, built from the
//! attributions without an LLM. What a caller gets when the LLM's explanation fails its check.

use super::text::join;
use super::{Band, Grounds, TopField};

impl Grounds {
    /// The explanation written from the grounds alone (always passes [`Grounds::check`]).
    pub fn template(&self) -> String {
        let band = match self.band {
            Band::Low => "low".to_owned(),
            Band::Elevated => format!(
                "elevated, though below the {:.2} at which the model flags a customer",
                self.threshold
            ),
            Band::High => format!("high: the model flags customers at {:.2} or above", self.threshold),
        };
        let mut text = format!(
            "The churn model puts this customer's probability of leaving at {:.2}, which is {band}.",
            self.score
        );
        if !self.top_fields.is_empty() {
            let factors: Vec<String> = self.top_fields.iter().map(factor).collect();
            text.push_str(&format!(" What moves it most: {}.", join(&factors)));
        }
        let raising: Vec<&TopField> = self.top_fields.iter().filter(|f| f.delta > 0.0).collect();
        if self.band != Band::Low && !raising.is_empty() {
            let names: Vec<String> = raising.iter().map(|f| format!("the {}", f.name)).collect();
            text.push_str(&format!(" A retention offer should address {}.", join(&names)));
        }
        text
    }
}

/// "their contract (Month-to-month) raises it by 0.21".
fn factor(field: &TopField) -> String {
    let direction = if field.delta > 0.0 { "raises" } else { "lowers" };
    format!(
        "the {} ({}) {direction} it by {:.2}",
        field.name,
        field.value,
        field.delta.abs()
    )
}
