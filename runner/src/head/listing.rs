//! List calls: `$filter`, `maxresults` and continuation links.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::filter::{parse_filter, FieldValue, FilterTarget};
use gangway_api::ListResponse;

/// Properties a task list may filter on.
pub const TASK_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "state",
    "requiredSlots",
    "executionInfo/exitCode",
    "executionInfo/result",
    "executionInfo/retryCount",
    "executionInfo/requeueCount",
    "nodeInfo/nodeId",
];
/// Properties a job list may filter on.
pub const JOB_FIELDS: &[&str] = &["id", "displayName", "state", "priority", "poolInfo/poolId"];
/// Properties a job schedule list may filter on.
pub const SCHEDULE_FIELDS: &[&str] = &["id", "displayName", "state", "executionInfo/recentJob/id"];
/// Properties a pool list may filter on.
pub const POOL_FIELDS: &[&str] = &["id", "state"];
/// Properties a node-count list may filter on.
pub const NODE_COUNT_FIELDS: &[&str] = &["poolId"];
/// Properties a node list may filter on.
pub const NODE_FIELDS: &[&str] = &["id", "state", "schedulingState", "poolId"];

const MAX_RESULTS: usize = 1000;

struct Json<'a>(&'a Value);

impl FilterTarget for Json<'_> {
    fn field(&self, path: &str) -> FieldValue {
        let mut v = self.0;
        for part in path.split('/') {
            match v.get(part) {
                Some(next) => v = next,
                None => return FieldValue::Null,
            }
        }
        match v {
            Value::String(s) => FieldValue::Str(s.clone()),
            Value::Number(n) => n.as_i64().map_or(FieldValue::Null, FieldValue::Int),
            Value::Bool(b) => FieldValue::Bool(*b),
            _ => FieldValue::Null,
        }
    }
}

/// One page of `items` (already in id order) after `$skiptoken`, filtered, with a next link.
pub fn page<'a, T: Serialize + Clone + 'a>(
    items: impl Iterator<Item = (&'a str, &'a T)>,
    query: &HashMap<String, String>,
    fields: &[&str],
    base_url: &str,
    path: &str,
) -> Result<ListResponse<T>, ApiError> {
    for key in query.keys() {
        if !matches!(
            key.as_str(),
            "$filter" | "maxresults" | "$skiptoken" | "$select" | "recursive" | "api-version" | "timeout"
        ) {
            return Err(ApiError::invalid(format!(
                "unknown query parameter '{key}'; list calls take $filter, maxresults and $skiptoken"
            )));
        }
    }
    let filter = match query.get("$filter").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(parse_filter(f, fields).map_err(|e| ApiError::invalid(e.to_string()))?),
        None => None,
    };
    let max = match query.get("maxresults") {
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "maxresults is '{m}'; it must be a number from 1 to {MAX_RESULTS}"
                )))
            }
        },
        None => MAX_RESULTS,
    };
    let after = query.get("$skiptoken");
    let mut value = Vec::new();
    let mut last = None;
    let mut more = false;
    for (id, item) in items {
        if after.is_some_and(|a| id <= a.as_str()) {
            continue;
        }
        if let Some(f) = &filter {
            let v = serde_json::to_value(item).expect("resources serialize");
            if !f.matches(&Json(&v)) {
                continue;
            }
        }
        if value.len() == max {
            more = true;
            break;
        }
        value.push(item.clone());
        last = Some(id);
    }
    let next_link = match (more, last) {
        (true, Some(last)) => {
            let mut q =
                vec![format!("maxresults={max}"), format!("$skiptoken={}", gangway_api::http::encode_component(last))];
            if let Some(f) = query.get("$filter") {
                q.push(format!("$filter={}", gangway_api::http::encode_component(f)));
            }
            Some(format!("{base_url}{path}?{}", q.join("&")))
        }
        _ => None,
    };
    Ok(ListResponse { value, next_link })
}

/// The top-level properties `schema` has, as `openapi.json` documents them.
fn properties(schema: &str) -> Vec<String> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is JSON"));
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .map_or_else(Vec::new, |m| m.keys().cloned().collect())
}

/// `$select=id,state`: the properties kept of each `schema` object (None: all of them).
fn selection(query: &HashMap<String, String>, schema: &str) -> Result<Option<Vec<String>>, ApiError> {
    let Some(sel) = query.get("$select").filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    let known = properties(schema);
    let names: Vec<String> = sel.split(',').map(|s| s.trim().to_owned()).collect();
    if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
        return Err(ApiError::invalid(format!(
            "$select names '{bad}', which is not a property of {schema} (it has {})",
            known.join(", ")
        )));
    }
    Ok(Some(names))
}

fn keep(v: &mut Value, names: &[String]) {
    if let Value::Object(m) = v {
        m.retain(|k, _| names.contains(k));
    }
}

/// An item as JSON, with only the properties `$select` names.
pub fn select_one<T: Serialize>(item: T, query: &HashMap<String, String>, schema: &str) -> Result<Value, ApiError> {
    let names = selection(query, schema)?;
    let mut v = serde_json::to_value(item).expect("resources serialize");
    if let Some(names) = names {
        keep(&mut v, &names);
    }
    Ok(v)
}

/// A list as JSON, each item with only the properties `$select` names.
pub fn select_list<T: Serialize>(
    list: ListResponse<T>,
    query: &HashMap<String, String>,
    schema: &str,
) -> Result<Value, ApiError> {
    let names = selection(query, schema)?;
    let mut v = serde_json::to_value(list).expect("resources serialize");
    if let (Some(names), Some(Value::Array(items))) = (names, v.get_mut("value")) {
        items.iter_mut().for_each(|i| keep(i, &names));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_the_named_properties_and_names_an_unknown_one() {
        let q = |s: &str| HashMap::from([("$select".to_owned(), s.to_owned())]);
        let item = serde_json::json!({"id": "t", "state": "active", "commandLine": "x"});
        assert_eq!(
            select_one(&item, &q("id, state"), "Task").unwrap(),
            serde_json::json!({"id": "t", "state": "active"})
        );
        assert_eq!(select_one(&item, &HashMap::new(), "Task").unwrap(), item);
        let e = select_one(&item, &q("id,colour"), "Task").unwrap_err();
        let m = &e.body.message.value;
        assert!(m.starts_with("$select names 'colour', which is not a property of Task (it has "), "{m}");
        assert!(m.contains(" id,") && m.contains("executionInfo"), "{m}");
        let list = ListResponse { value: vec![item.clone()], next_link: None };
        assert_eq!(select_list(list, &q("id"), "Task").unwrap()["value"], serde_json::json!([{"id": "t"}]));
    }
}
