"""YAML text to data with positions: what pydantic and the checks rely on."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mission_control.plan.yaml_nodes import MAX_NODES, parse_document


def test_values_and_keys_keep_their_positions() -> None:
    doc, issues = parse_document("a: 1\nb:\n  - x\n  - {c: true}\n")
    assert issues == []
    assert doc is not None
    assert doc.data == {"a": 1, "b": ["x", {"c": True}]}
    assert doc.values[("a",)] == (1, 4)
    assert doc.keys[("b",)] == (2, 1)
    assert doc.values[("b", 1, "c")] == (4, 9)
    assert doc.texts[("b", 1, "c")] == "true"
    assert doc.pos(("b", 1, "missing", 3)) == (4, 5)  # nearest written ancestor


def test_keys_are_kept_as_written() -> None:
    doc, _ = parse_document("07: a\ntrue: b\nnull: c\n1.50: d\n")
    assert doc is not None
    assert doc.data == {"07": "a", "true": "b", "null": "c", "1.50": "d"}


def test_scalars_follow_yaml_rules() -> None:
    doc, _ = parse_document(
        "i: 42\nneg: -3\noct: 010\nf: 0.5\nb: yes\nn: ~\ns: '42'\nbad_date: 2024-13-45\n"
    )
    assert doc is not None
    assert doc.data == {
        "i": 42,
        "neg": -3,
        "oct": 8,
        "f": 0.5,
        "b": True,
        "n": None,
        "s": "42",
        "bad_date": "2024-13-45",
    }


def test_merge_keys_explicit_keys_win() -> None:
    doc, issues = parse_document(
        "base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nuse:\n  <<: [*b, *o]\n  x: 9\n"
    )
    assert issues == []
    assert doc is not None
    assert doc.data["use"] == {"x": 9, "y": 2, "z": 4}  # type: ignore[index]


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    _, issues = parse_document("a: 1\nb: 2\na: 3\n")
    assert [(i.pos, i.message) for i in issues] == [((3, 1), "duplicate key 'a' (first at line 1)")]


def test_unknown_tag_and_complex_key() -> None:
    _, issues = parse_document("a: !secret x\n? [k]\n: v\n")
    messages = [i.message for i in issues]
    assert "unknown YAML tag '!secret'" in messages
    assert "a key must be plain text, not a list or a mapping" in messages


def test_alias_bomb_is_stopped() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    doc, issues = parse_document("\n".join(lines) + "\n")
    assert doc is None
    assert f"more than {MAX_NODES:,} values" in issues[0].message


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    doc, issues = parse_document("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert doc is None
    assert "nested too deeply" in issues[0].message


def test_control_character_is_located() -> None:
    doc, issues = parse_document("a: 1\nb: x\x07y\n")
    assert doc is None
    assert issues[0].pos == (2, 5)
    assert "U+0007" in issues[0].message


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(data=_json)
def test_round_trip_of_any_json_like_data(data: object) -> None:
    """Whatever safe_dump writes, the walker reads back the same data."""
    text = yaml.safe_dump({"root": data}, allow_unicode=True)
    doc, issues = parse_document(text)
    assert issues == []
    assert doc is not None
    # PyYAML itself folds a few odd characters (U+0085 becomes a space): compare with it.
    assert doc.data == yaml.safe_load(text)
