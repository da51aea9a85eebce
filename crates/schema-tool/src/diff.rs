//! What changed between two versions of a schema, in words.

use serde_json::Value;

/// The changes from `old` to `new`, one sentence each, with the path of the field.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_type("", old, new, &mut out);
    out
}

fn kind(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(branches) => format!("union [{}]", branches.iter().map(kind).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some(t @ ("record" | "enum" | "fixed")) => {
                format!("{t} {}", o.get("name").and_then(Value::as_str).unwrap_or("?"))
            }
            Some("array") => format!("array of {}", o.get("items").map(kind).unwrap_or_default()),
            Some("map") => format!("map of {}", o.get("values").map(kind).unwrap_or_default()),
            Some(t) => match o.get("logicalType").and_then(Value::as_str) {
                Some(l) => format!("{t} ({l})"),
                None => t.to_owned(),
            },
            None => "?".into(),
        },
        other => other.to_string(),
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "the top level".into()
    } else {
        format!("`{path}`")
    }
}

fn diff_type(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    let (ot, nt) = (old.get("type").and_then(Value::as_str), new.get("type").and_then(Value::as_str));
    match (ot, nt) {
        (Some("record"), Some("record")) => diff_record(path, old, new, out),
        (Some("enum"), Some("enum")) => {
            let symbols = |v: &Value| -> Vec<String> {
                v["symbols"]
                    .as_array()
                    .map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let (a, b) = (symbols(old), symbols(new));
            for s in b.iter().filter(|s| !a.contains(s)) {
                out.push(format!(
                    "{}: enum symbol {s} added (old readers cannot read it unless the enum has a default)",
                    at(path)
                ));
            }
            for s in a.iter().filter(|s| !b.contains(s)) {
                out.push(format!(
                    "{}: enum symbol {s} removed (new readers cannot read old data that has it)",
                    at(path)
                ));
            }
        }
        (Some("array"), Some("array")) => diff_type(&format!("{path}[]"), &old["items"], &new["items"], out),
        (Some("map"), Some("map")) => diff_type(&format!("{path}{{}}"), &old["values"], &new["values"], out),
        _ => {
            if let (Value::Array(a), Value::Array(b)) = (old, new) {
                let (ka, kb): (Vec<String>, Vec<String>) = (a.iter().map(kind).collect(), b.iter().map(kind).collect());
                for k in kb.iter().filter(|k| !ka.contains(k)) {
                    out.push(format!("{}: union branch {k} added", at(path)));
                }
                for k in ka.iter().filter(|k| !kb.contains(k)) {
                    out.push(format!("{}: union branch {k} removed", at(path)));
                }
                // Same branches: look inside the record branches.
                for (x, y) in a.iter().zip(b.iter()) {
                    if kind(x) == kind(y) {
                        diff_type(path, x, y, out);
                    }
                }
            } else if kind(old) != kind(new) {
                let note = match (kind(old).as_str(), kind(new).as_str()) {
                    ("int", "long" | "float" | "double") | ("long", "float" | "double") | ("float", "double") => {
                        " (a promotion: new readers read old data; old readers cannot read new data)"
                    }
                    _ => " (readers of one cannot read the other)",
                };
                out.push(format!("{}: type changed from {} to {}{note}", at(path), kind(old), kind(new)));
            }
        }
    }
}

fn diff_record(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    let fields = |v: &Value| v["fields"].as_array().cloned().unwrap_or_default();
    let (a, b) = (fields(old), fields(new));
    let name = |f: &Value| f["name"].as_str().unwrap_or("?").to_owned();
    let join = |field: &str| if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
    for f in &b {
        let n = name(f);
        if let Some(o) = a.iter().find(|o| name(o) == n) {
            diff_type(&join(&n), &o["type"], &f["type"], out);
            continue;
        }
        let aliases: Vec<String> = f["aliases"]
            .as_array()
            .map(|x| x.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if let Some(o) = a.iter().find(|o| aliases.contains(&name(o))) {
            out.push(format!("`{}` renamed to `{}` (alias {})", join(&name(o)), join(&n), name(o)));
            continue;
        }
        match f.get("default") {
            Some(d) => out.push(format!("`{}` added, type {}, default {d}", join(&n), kind(&f["type"]))),
            None => out.push(format!(
                "`{}` added, type {}, WITHOUT a default (new readers cannot read old data)",
                join(&n),
                kind(&f["type"])
            )),
        }
    }
    for o in &a {
        let n = name(o);
        let renamed =
            b.iter().any(|f| f["aliases"].as_array().is_some_and(|x| x.iter().any(|a| a.as_str() == Some(n.as_str()))));
        if !renamed && !b.iter().any(|f| name(f) == n) {
            match o.get("default") {
                Some(_) => {
                    out.push(format!("`{}` removed (it had a default, so old readers still read new data)", join(&n)))
                }
                None => {
                    out.push(format!("`{}` removed; it had no default (old readers cannot read new data)", join(&n)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describes_added_removed_renamed_and_changed_fields() {
        let old = json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "int"}, {"name": "b", "type": "string"}, {"name": "c", "type": "int"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"]}}]});
        let new = json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"}, {"name": "d", "type": "int", "aliases": ["c"]},
            {"name": "n", "type": ["null", "int"], "default": null}, {"name": "m", "type": "int"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}}]});
        let d = diff(&old, &new);
        assert!(d.iter().any(|l| l.starts_with("`a`: type changed from int to long (a promotion")), "{d:?}");
        assert!(d.contains(&"`c` renamed to `d` (alias c)".to_owned()), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("`n` added, type union [null, int], default null")), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("`m` added, type int, WITHOUT a default")), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("`b` removed; it had no default")), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("`e`: enum symbol Y added")), "{d:?}");
    }
}
