//! Generators shared by the property tests of every parser of untrusted input (here and in
//! `store`/`http`): text as people and attackers write it, and arbitrary JSON documents.
//! Test-only. The number of cases is proptest's (`PROPTEST_CASES` raises it).

use proptest::prelude::*;
use serde_json::{Map, Value};

/// One character from the ranges that break parsers: ASCII (control characters too), Greek with
/// accents, combining marks, look-alikes, emoji (two UTF-16 units), BOM, zero-width and
/// non-breaking spaces, the replacement character, and anything else.
pub fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\0', '\u{1f}'),
        2 => proptest::char::range('\u{0370}', '\u{03ff}'),
        1 => proptest::char::range('\u{0300}', '\u{036f}'),
        1 => proptest::char::range('\u{1f300}', '\u{1f6ff}'),
        1 => prop::sample::select(vec!['\u{feff}', '\u{200b}', '\u{a0}', '\u{fffd}', '\u{2028}', '\u{0130}', '\u{01f0}', 'ß', '\u{fb03}']),
        1 => any::<char>(),
    ]
}

/// Text of up to `max` characters of [`nasty_char`]s, sometimes with pieces of the syntax the
/// parsers look for (`{{`, `}}`, `|`, `,`, `"`, URLs, `+30`, digits).
pub fn nasty_text(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => nasty_char().prop_map(String::from),
        1 => prop::sample::select(vec![
            "{{", "}}", "|", ",", ";", "\"", "\r\n", "https://", "www.", "+30", "0030", "69", "{{first_name", "T", ":", "-", "Z",
        ])
        .prop_map(String::from),
        1 => "[0-9]{1,12}",
    ];
    prop::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}

/// Any JSON document: scalars at the leaves (huge and negative numbers, floats, nasty strings),
/// arrays and objects nested a few levels deep. Object keys are often the names a parser looks
/// for, so the generated values reach past the first check.
pub fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1, 1, 99_999_999_999, 100_000_000_000]).prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        nasty_text(40).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![3 => prop::sample::select(keys).prop_map(String::from), 1 => nasty_text(8)];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
