//! Just enough of the Prometheus text format to read samples back.

/// The value of the sample `name{labels}` whose label set is exactly
/// `labels` (in any order), if `text` has one.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    wanted.sort();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_sample)
        .find(|sample| sample.name == name && sample.labels == wanted)
        .map(|sample| sample.value)
}

/// [`value`] for a sample that must be there.
pub fn expect(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the scrape:\n{text}"))
}

struct Sample {
    name: String,
    /// Sorted, so that label order does not matter.
    labels: Vec<(String, String)>,
    value: f64,
}

/// `name{a="x",b="y"} value [timestamp]`, or `name value`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(brace) => (&line[..brace], &line[brace + 1..]),
        None => line.split_once(' ')?,
    };
    let (mut labels, rest) = if line.contains('{') {
        parse_labels(rest)?
    } else {
        (Vec::new(), rest)
    };
    labels.sort();
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` (the part after `{`); returns the labels and the
/// text after the closing brace.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        rest = &after_key[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x_total help\n# TYPE x_total counter\n\
        x_total{b=\"2\",a=\"q\\\"uote\"} 7\nx_total{a=\"1\"} 3\nplain 1.5\n";

    #[test]
    fn labels_match_exactly_in_any_order() {
        assert_eq!(
            value(TEXT, "x_total", &[("a", "q\"uote"), ("b", "2")]),
            Some(7.0)
        );
        assert_eq!(value(TEXT, "x_total", &[("a", "1")]), Some(3.0));
        assert_eq!(value(TEXT, "x_total", &[("b", "2")]), None);
        assert_eq!(value(TEXT, "plain", &[]), Some(1.5));
    }
}
