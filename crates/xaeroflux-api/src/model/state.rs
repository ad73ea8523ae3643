//! The JSON documents of the app-state routes: records, relations, the state root and
//! collaborative documents.
//!
//! Field values map to JSON one to one: null, booleans, numbers (an integer that fits
//! `i64` is an integer, any other number a float), strings, arrays, objects; bytes are
//! `{"$bytes": "<base64>"}`. A float JSON cannot hold (NaN, infinities) is written as
//! the string `"NaN"`, `"inf"` or `"-inf"`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use xaeroflux_views::Value;

use crate::problem::ApiError;

/// JSON of a field value.
pub fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(x) => serde_json::Number::from_f64(*x).map_or_else(
            || {
                J::String(
                    if x.is_nan() {
                        "NaN"
                    } else if *x > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .into(),
                )
            },
            J::Number,
        ),
        Value::Text(s) => J::String(s.clone()),
        Value::Bytes(b) => {
            serde_json::json!({ "$bytes": data_encoding::BASE64.encode(b) })
        }
        Value::List(l) => J::Array(l.iter().map(value_to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// The field value of a JSON value (see the module docs). The depth is checked when
/// the operation is encoded.
pub fn value_from_json(j: &serde_json::Value) -> Result<Value, ApiError> {
    use serde_json::Value as J;
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().ok_or_else(|| {
                ApiError::bad_request("invalid_value", format!("number {n} is not a float"))
            })?),
        },
        J::String(s) => Value::Text(s.clone()),
        J::Array(a) => Value::List(a.iter().map(value_from_json).collect::<Result<_, _>>()?),
        J::Object(o) => match (o.len(), o.get("$bytes")) {
            (1, Some(J::String(b))) => Value::Bytes(
                data_encoding::BASE64
                    .decode(b.as_bytes())
                    .map_err(|e| ApiError::bad_request("invalid_base64", format!("$bytes: {e}")))?,
            ),
            _ => Value::Map(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), value_from_json(v)?)))
                    .collect::<Result<BTreeMap<_, _>, ApiError>>()?,
            ),
        },
    })
}

/// A record and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordJson {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// The fields (see the module docs for values).
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One page of a collection scan, in key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordPage {
    /// The records.
    pub records: Vec<RecordJson>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Fields to write. For `PUT` the record becomes exactly these fields; for `PATCH`
/// each listed field is set, or unset when its value is `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldsRequest {
    /// The fields.
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Group id (default: the default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A record named by collection and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordRefJson {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
}

/// A relation to write: `from -rel-> to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkRequest {
    /// Source record.
    pub from: RecordRefJson,
    /// Relation name.
    pub rel: String,
    /// Target record.
    pub to: RecordRefJson,
    /// Remove the relation instead (default false).
    #[serde(default)]
    pub remove: bool,
    /// Group id (default: the default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A relation of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkJson {
    /// Relation name.
    pub rel: String,
    /// The record at the other end.
    pub other: RecordRefJson,
}

/// The relations out of (`from`) and into (`to`) a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinksJson {
    /// Relations out of the record.
    pub from: Vec<LinkJson>,
    /// Relations into the record.
    pub to: Vec<LinkJson>,
}

/// A written operation or document update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateWriteResponse {
    /// The event id; absent when a document edit changed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The state root of a group's record views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateRootJson {
    /// The group.
    pub group: String,
    /// The root, hex: equal on every peer holding the same operations.
    pub root: String,
}

/// Group and paging of record reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Group id (default: the default group).
    pub group: Option<String>,
    /// Key prefix (scans).
    pub prefix: Option<String>,
    /// Start after this key (scans).
    pub after: Option<String>,
    /// Most records (scans; default and maximum 1000).
    pub limit: Option<usize>,
    /// Read the state as of this HLC (a u64; record gets and scans).
    pub as_of: Option<u64>,
}

/// A document the view holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocSummary {
    /// The document's name.
    pub name: String,
    /// Updates applied to it.
    pub updates: u64,
    /// Updates stored after its snapshot (what a load imports).
    pub pending: u64,
    /// Size of its snapshot in bytes (0: none yet).
    pub snapshot_bytes: u64,
}

/// The documents of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocList {
    /// In name order.
    pub docs: Vec<DocSummary>,
}

/// A whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DocJson {
    /// What the view holds of it.
    pub info: DocSummary,
    /// Every container, deeply (text as strings, lists as arrays, maps as objects).
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// The text of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocTextJson {
    /// The text.
    pub text: String,
}

/// Group and container of document reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocQuery {
    /// Group id (default: the default group).
    pub group: Option<String>,
    /// Text container (default `body`).
    pub container: Option<String>,
}

/// A text edit: delete `delete` characters at `at`, then insert `insert` there.
/// Positions count Unicode characters; without `at` the edit appends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TextEdit {
    /// Text container (default `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Position (default: the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<usize>,
    /// Characters to delete at the position (default 0).
    #[serde(default)]
    pub delete: usize,
    /// Text to insert at the position.
    #[serde(default)]
    pub insert: String,
    /// Group id (default: the default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_json() {
        let v = Value::Map(
            [
                ("a".to_string(), Value::Int(-3)),
                ("b".to_string(), Value::Float(1.5)),
                ("c".to_string(), Value::Bytes(vec![0, 255])),
                (
                    "d".to_string(),
                    Value::List(vec![Value::Null, Value::Bool(true), Value::from("x")]),
                ),
            ]
            .into(),
        );
        assert_eq!(value_from_json(&value_to_json(&v)).unwrap(), v);
        assert_eq!(value_to_json(&Value::Float(f64::NAN)), "NaN");
        assert!(value_from_json(&serde_json::json!({"$bytes": "!"})).is_err());
        // An object with `$bytes` and more is a map.
        let m = value_from_json(&serde_json::json!({"$bytes": "AA==", "x": 1})).unwrap();
        assert!(matches!(m, Value::Map(_)));
    }
}
