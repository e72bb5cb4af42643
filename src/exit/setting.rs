//! Exit settings: which policy walks the (sentence, layer) grid, which rule measures confidence
//! and where it exits ([`PolicyConfig`], what a pack stores per operating point), and the
//! accuracy [`Budget`] an operating point is calibrated for.
//!
//! Layer fields are 0-based indices, as in the pack format.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The four ways of walking the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// No exit.
    Full,
    /// Layer-wise exit over the whole document.
    Layer,
    /// Sentence-wise exit at full depth.
    Sentence,
    /// Two-dimensional exit (sentences × layers) with a depth cap.
    #[serde(rename = "2d")]
    TwoDimensional,
}

impl PolicyKind {
    /// Every policy, in reporting order.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Full,
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Full => "full",
            PolicyKind::Layer => "layer",
            PolicyKind::Sentence => "sentence",
            PolicyKind::TwoDimensional => "2d",
        }
    }

    /// The policy called `name` ([`Self::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// How confidence is measured at a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitRule {
    /// The largest class probability.
    MaxProbability,
    /// The gap between the two largest class probabilities.
    Margin,
    /// The top-2 margin summed over the cells seen so far (Hůla et al.): confidence that builds
    /// up across layers and sentences.
    AccumulatedMargin,
    /// A learned model's probability that the current answer is the one `full` would give
    /// ([`crate::exit::learned`]).
    LearnedAgreement,
    /// A learned model's probability that the current answer is correct.
    LearnedCorrect,
}

impl ExitRule {
    /// The rules that need no learned model, as packs of format 1 knew them.
    pub const CLASSIC: [ExitRule; 3] = [
        ExitRule::MaxProbability,
        ExitRule::Margin,
        ExitRule::AccumulatedMargin,
    ];
    /// Every rule.
    pub const ALL: [ExitRule; 5] = [
        ExitRule::MaxProbability,
        ExitRule::Margin,
        ExitRule::AccumulatedMargin,
        ExitRule::LearnedAgreement,
        ExitRule::LearnedCorrect,
    ];

    /// The name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ExitRule::MaxProbability => "max_probability",
            ExitRule::Margin => "margin",
            ExitRule::AccumulatedMargin => "accumulated_margin",
            ExitRule::LearnedAgreement => "learned_agreement",
            ExitRule::LearnedCorrect => "learned_correct",
        }
    }

    /// What a learned rule's model predicts; `None` for the classic rules.
    pub fn learned_target(self) -> Option<ExitTarget> {
        match self {
            ExitRule::LearnedAgreement => Some(ExitTarget::AgreesWithFull),
            ExitRule::LearnedCorrect => Some(ExitTarget::Correct),
            _ => None,
        }
    }
}

/// What a learned exit model predicts about the answer at a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitTarget {
    /// It equals what `full` answers for the document.
    AgreesWithFull,
    /// It is the true class.
    Correct,
}

impl ExitTarget {
    /// Both targets.
    pub const ALL: [ExitTarget; 2] = [ExitTarget::AgreesWithFull, ExitTarget::Correct];
}

/// A complete exit setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Walking order.
    pub kind: PolicyKind,
    /// Confidence measure.
    pub rule: ExitRule,
    /// Exit when the measure reaches this value.
    pub threshold: f32,
    /// Cells below this layer never exit (and are not counted towards patience).
    pub min_layer: usize,
    /// Consecutive confident cells needed to exit (1: the first confident cell exits).
    pub patience: usize,
    /// Deepest layer any sentence is computed to (the 2d policy's cap); other policies ignore it.
    pub depth_cap: usize,
    /// Layer whose head answers for `full` and decides for `sentence`.
    pub decision_layer: usize,
    /// The 2d policy reads whole sentences in passes of at least this many tokens (the last
    /// pass may be shorter); 0: one sentence per pass, the paper's walk. Other policies ignore
    /// it.
    #[serde(default)]
    pub min_pass_tokens: usize,
    /// Before layer 1, the layer-0 head (a pack's lexical head on the whole document) answers
    /// when its top class probability reaches this; `None`: layer 0 is not asked (packs before
    /// format 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_zero_threshold: Option<f32>,
}

impl PolicyConfig {
    /// The `full` setting: no exit, every layer, `decision_layer`'s head answers, on a model
    /// with `layers` layers (at least one).
    pub fn full(layers: usize, decision_layer: usize) -> Self {
        PolicyConfig {
            kind: PolicyKind::Full,
            rule: ExitRule::MaxProbability,
            threshold: 1.0,
            min_layer: 0,
            patience: 1,
            depth_cap: layers.saturating_sub(1),
            decision_layer,
            min_pass_tokens: 0,
            layer_zero_threshold: None,
        }
    }
}

/// A 2d pass size that no document reaches: the whole document in one pass, so that the 2d
/// policy walks only the layers (up to its depth cap), as `layer` does.
pub const WHOLE_DOCUMENT_PASS_TOKENS: usize = 1 << 20;

/// Pass sizes tried for the 2d policy: one sentence per pass (the paper's walk), whole
/// sentences gathered up to this many tokens, or the whole document at once. On IMDB reviews
/// single sentences are weak evidence and small decodes cost more per token; longer passes
/// exit less often mid-document but each exit check sees more text. The whole-document pass
/// makes every walk `layer` can take one that 2d can take too (with a depth cap besides, and
/// 2d's own exit model), so that 2d's settings, and the sequence calibration draws from them,
/// are not limited to sentence-shaped walks where a document is best read whole: on mail and
/// news, 2d's calibrated setting was dearer than `layer`'s.
pub const TWO_DIMENSIONAL_PASS_TOKENS: [usize; 6] =
    [0, 32, 64, 128, 256, WHOLE_DOCUMENT_PASS_TOKENS];

/// A setting as people read it (reports, `/v1/info`): the same fields with layers numbered
/// from 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NumberedSetting {
    /// The policy's name.
    pub policy: &'static str,
    /// The rule's name.
    pub rule: &'static str,
    /// The rule's threshold.
    pub threshold: f32,
    /// Consecutive confident cells needed to exit.
    pub patience: usize,
    /// The first layer whose head may end the walk.
    pub first_exit_layer: usize,
    /// The deepest layer a pass computes.
    pub deepest_layer: usize,
    /// The layer whose head answers for `full` and decides for `sentence`.
    pub answering_layer: usize,
    /// Fewest tokens in a 2d pass (0: one sentence per pass).
    pub min_pass_tokens: usize,
    /// The layer-0 head answers before layer 1 when its top probability reaches this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_zero_threshold: Option<f32>,
}

impl PolicyConfig {
    /// This setting with its layers numbered from 1.
    pub fn numbered(&self) -> NumberedSetting {
        NumberedSetting {
            policy: self.kind.name(),
            rule: self.rule.name(),
            threshold: self.threshold,
            patience: self.patience,
            first_exit_layer: self.min_layer + 1,
            deepest_layer: self.depth_cap + 1,
            answering_layer: self.decision_layer + 1,
            min_pass_tokens: self.min_pass_tokens,
            layer_zero_threshold: self.layer_zero_threshold,
        }
    }

    /// Serializes a setting as [`NumberedSetting`] (for `#[serde(serialize_with)]`).
    pub fn serialize_numbered<S: Serializer>(
        config: &PolicyConfig,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        config.numbered().serialize(serializer)
    }
}

/// An accuracy budget: how many points (hundredths of accuracy) below the `full` policy a
/// calibrated setting may lose. Budgets are exact multiples of 0.01 point, so two budgets are
/// equal or not, with no tolerance to choose.
///
/// On the command line and in files a budget is a number of points (`1`, `0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Budget {
    hundredths: u32,
}

/// Why a number is not a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid accuracy budget `{given}`: {reason}")]
pub struct BudgetError {
    given: String,
    reason: &'static str,
}

impl Budget {
    /// No loss allowed against `full`.
    pub const ZERO: Budget = Budget { hundredths: 0 };
    /// The largest budget: every point of accuracy.
    pub const MAX_POINTS: f64 = 100.0;

    /// A budget of `hundredths` hundredths of a point (`50` is half a point).
    pub const fn from_hundredths(hundredths: u32) -> Self {
        Budget { hundredths }
    }

    /// A budget of `points` points; at most two decimals, from 0 to 100.
    pub fn from_points(points: f64) -> Result<Self, BudgetError> {
        let error = |reason| BudgetError {
            given: points.to_string(),
            reason,
        };
        if !points.is_finite() || !(0.0..=Self::MAX_POINTS).contains(&points) {
            return Err(error("it must be a number of points from 0 to 100"));
        }
        let hundredths = (points * 100.0).round();
        if (hundredths - points * 100.0).abs() > 1e-6 {
            return Err(error("budgets have at most two decimals (0.01 point)"));
        }
        // In 0..=10000 after the checks above.
        Ok(Budget {
            hundredths: hundredths as u32,
        })
    }

    /// The budget in points.
    pub fn points(self) -> f64 {
        f64::from(self.hundredths) / 100.0
    }

    /// The budget as a share of accuracy (1 point is 0.01).
    pub fn as_fraction(self) -> f64 {
        self.points() / 100.0
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.points(), formatter)
    }
}

impl FromStr for Budget {
    type Err = BudgetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let points: f64 = text.trim().parse().map_err(|_| BudgetError {
            given: text.to_string(),
            reason: "not a number",
        })?;
        Budget::from_points(points)
    }
}

impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.points())
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let points = f64::deserialize(deserializer)?;
        Budget::from_points(points).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        assert_eq!(PolicyKind::TwoDimensional.name(), "2d");
        assert_eq!(
            PolicyKind::from_name("2d"),
            Some(PolicyKind::TwoDimensional)
        );
        assert_eq!(PolicyKind::from_name("two"), None);
        assert_eq!(
            serde_json::to_string(&PolicyKind::TwoDimensional).expect("json"),
            "\"2d\""
        );
        assert_eq!(
            serde_json::to_string(&ExitRule::AccumulatedMargin).expect("json"),
            "\"accumulated_margin\""
        );
    }

    #[test]
    fn budgets_are_exact_hundredths_of_a_point() {
        assert_eq!("1".parse::<Budget>(), Ok(Budget::from_hundredths(100)));
        assert_eq!("0.5".parse::<Budget>(), Ok(Budget::from_hundredths(50)));
        assert_eq!(" 0.25 ".parse::<Budget>(), Ok(Budget::from_hundredths(25)));
        // 0.1 + 0.2 is not 0.3 in binary, but it is the same budget.
        assert_eq!(
            Budget::from_points(0.1 + 0.2),
            Ok(Budget::from_hundredths(30))
        );
        assert_eq!(Budget::from_hundredths(50).to_string(), "0.5");
        assert_eq!(Budget::from_hundredths(100).to_string(), "1");
        assert_eq!(Budget::from_hundredths(100).as_fraction(), 0.01);
        for refused in ["-1", "0.333", "NaN", "inf", "101", "one"] {
            let error = refused.parse::<Budget>().unwrap_err();
            assert!(
                error.to_string().starts_with("invalid accuracy budget `"),
                "{error}"
            );
        }
        assert_eq!(
            "0.333".parse::<Budget>().unwrap_err().to_string(),
            "invalid accuracy budget `0.333`: budgets have at most two decimals (0.01 point)"
        );
    }

    #[test]
    fn settings_read_by_people_number_layers_from_one() {
        let config = PolicyConfig {
            kind: PolicyKind::TwoDimensional,
            rule: ExitRule::Margin,
            threshold: 0.5,
            min_layer: 0,
            patience: 2,
            depth_cap: 9,
            decision_layer: 17,
            min_pass_tokens: 128,
            layer_zero_threshold: None,
        };
        let numbered = config.numbered();
        assert_eq!(numbered.policy, "2d");
        assert_eq!(numbered.rule, "margin");
        assert_eq!(
            (
                numbered.first_exit_layer,
                numbered.deepest_layer,
                numbered.answering_layer
            ),
            (1, 10, 18)
        );
        let full = PolicyConfig::full(18, 17);
        assert_eq!(full.depth_cap, 17);
        assert_eq!(full.numbered().deepest_layer, 18);
    }

    #[test]
    fn budgets_read_and_write_as_points() {
        let budget: Budget = serde_json::from_str("2").expect("an integer");
        assert_eq!(budget, Budget::from_hundredths(200));
        assert_eq!(
            serde_json::to_string(&Budget::from_hundredths(50)).expect("json"),
            "0.5"
        );
        let toml: std::collections::BTreeMap<String, Budget> =
            toml::from_str("a = 1.0\nb = 4").expect("toml");
        assert_eq!(toml["a"], Budget::from_hundredths(100));
        assert_eq!(toml["b"], Budget::from_hundredths(400));
        assert!(serde_json::from_str::<Budget>("-0.5").is_err());
    }
}
