//! The body of `POST /v1/classify` and what it asks for.

use serde::Deserialize;

use crate::exit::{Budget, PolicyKind};

/// The JSON body as sent: `text` or `texts`, optional `policy`, `budget` and `id`; unknown
/// fields are refused. [`ClassifyRequest::try_from`] checks it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
    /// One document.
    pub text: Option<String>,
    /// Several documents (answered in order).
    pub texts: Option<Vec<String>>,
    /// `2d`, `layer`, `sentence` or `full`.
    pub policy: Option<String>,
    /// Accuracy budget in points.
    pub budget: Option<f64>,
    /// The caller's id, echoed in the results.
    pub id: Option<String>,
}

/// The documents of a request: one text, answered with one record, or a batch, answered with
/// a list of records in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Documents {
    /// `"text": "…"`.
    One(String),
    /// `"texts": ["…", …]`, never empty.
    Batch(Vec<String>),
}

/// A checked request: documents that all hold text, a known policy, a well-formed budget.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyRequest {
    /// What to classify.
    pub documents: Documents,
    /// The policy asked for (`None`: the server's default).
    pub policy: Option<PolicyKind>,
    /// The budget asked for (`None`: the server's default).
    pub budget: Option<Budget>,
    /// The caller's id (`None`: numbers).
    pub id: Option<String>,
}

impl TryFrom<ClassifyBody> for ClassifyRequest {
    /// Why the body is refused, for the 422 answer.
    type Error = String;

    fn try_from(body: ClassifyBody) -> Result<Self, Self::Error> {
        let documents = match (body.text, body.texts) {
            (Some(text), None) => Documents::One(text),
            (None, Some(texts)) if texts.is_empty() => return Err("`texts` is empty".into()),
            (None, Some(texts)) => Documents::Batch(texts),
            (Some(_), Some(_)) => return Err("give either `text` or `texts`, not both".into()),
            (None, None) => {
                return Err(
                    "the body needs `text` (a string) or `texts` (a list of strings)".into(),
                );
            }
        };
        match &documents {
            Documents::One(text) if text.trim().is_empty() => {
                return Err("the text is empty".into());
            }
            Documents::Batch(texts) => {
                if let Some(index) = texts.iter().position(|text| text.trim().is_empty()) {
                    return Err(format!("text {index} is empty"));
                }
            }
            Documents::One(_) => {}
        }
        let (policy, budget) = policy_and_budget(body.policy, body.budget)?;
        Ok(ClassifyRequest {
            documents,
            policy,
            budget,
            id: body.id.filter(|id| !id.is_empty()),
        })
    }
}

/// A request's policy and budget, checked: a known policy name, a well-formed budget.
pub fn policy_and_budget(
    policy: Option<String>,
    budget: Option<f64>,
) -> Result<(Option<PolicyKind>, Option<Budget>), String> {
    let policy = policy
        .map(|name| {
            PolicyKind::from_name(&name)
                .ok_or_else(|| format!("unknown policy `{name}`; known: 2d, layer, sentence, full"))
        })
        .transpose()?;
    let budget = budget
        .map(Budget::from_points)
        .transpose()
        .map_err(|error| error.to_string())?;
    Ok((policy, budget))
}

impl Documents {
    /// How many texts.
    pub fn len(&self) -> usize {
        match self {
            Documents::One(_) => 1,
            Documents::Batch(texts) => texts.len(),
        }
    }

    /// Whether there is no text (never, for a checked request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The texts with their result ids: `ID` for one text (`0` without an id), `ID/N` for the
    /// N-th of a batch (`N` without an id), counting from 0.
    pub fn with_ids(self, id: Option<&str>) -> Vec<(String, String)> {
        match self {
            Documents::One(text) => vec![(id.unwrap_or("0").to_string(), text)],
            Documents::Batch(texts) => texts
                .into_iter()
                .enumerate()
                .map(|(index, text)| {
                    let numbered = match id {
                        Some(id) => format!("{id}/{index}"),
                        None => index.to_string(),
                    };
                    (numbered, text)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<ClassifyRequest, String> {
        let body: ClassifyBody = serde_json::from_str(json).map_err(|error| error.to_string())?;
        ClassifyRequest::try_from(body)
    }

    #[test]
    fn one_text_or_a_batch_with_their_ids() {
        let one = check(r#"{"text": "Good.", "id": "r1"}"#).expect("valid");
        assert_eq!(one.documents, Documents::One("Good.".into()));
        assert_eq!(
            one.documents.with_ids(one.id.as_deref()),
            vec![("r1".to_string(), "Good.".to_string())]
        );
        let batch =
            check(r#"{"texts": ["a", "b"], "policy": "layer", "budget": 2}"#).expect("valid");
        assert_eq!(batch.policy, Some(PolicyKind::Layer));
        assert_eq!(batch.budget, Some(Budget::from_hundredths(200)));
        assert_eq!(batch.documents.len(), 2);
        let ids: Vec<String> = batch
            .documents
            .with_ids(None)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["0", "1"]);
        let named = Documents::Batch(vec!["a".into()]).with_ids(Some("b7"));
        assert_eq!(named[0].0, "b7/0");
        assert_eq!(Documents::One("x".into()).with_ids(None)[0].0, "0");
        // An empty id counts as none.
        assert_eq!(check(r#"{"text": "a", "id": ""}"#).expect("valid").id, None);
    }

    #[test]
    fn refusals_say_why() {
        for (json, reason) in [
            (
                "{}",
                "the body needs `text` (a string) or `texts` (a list of strings)",
            ),
            (
                r#"{"text": "a", "texts": ["b"]}"#,
                "give either `text` or `texts`, not both",
            ),
            (r#"{"texts": []}"#, "`texts` is empty"),
            (r#"{"text": " \n"}"#, "the text is empty"),
            (r#"{"texts": ["a", ""]}"#, "text 1 is empty"),
            (
                r#"{"text": "a", "policy": "fast"}"#,
                "unknown policy `fast`; known: 2d, layer, sentence, full",
            ),
            (
                r#"{"text": "a", "budget": -1}"#,
                "invalid accuracy budget `-1`: it must be a number of points from 0 to 100",
            ),
        ] {
            assert_eq!(check(json).unwrap_err(), reason, "{json}");
        }
        assert!(
            check(r#"{"txt": "a"}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(
            check(r#"{"text": 5}"#)
                .unwrap_err()
                .contains("invalid type")
        );
    }
}
