from __future__ import annotations

from gpulab.hub.names import (
    escape_username,
    is_dns_label,
    is_label_value,
    join_label,
    username_label,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_safe_name_is_unchanged():
    assert escape_username("alice") == "alice"


def test_unsafe_characters_are_hex_escaped():
    assert escape_username("bob.smith") == "bob-2esmith"
    assert escape_username("a-b") == "a-2db"


def test_name_starting_with_an_escape_gets_a_hashed_form():
    out = escape_username("Alice")
    assert out.startswith("alice--") and len(out) == len("alice--") + 12


def test_long_name_is_hashed_within_63():
    out = escape_username("x" * 100)
    assert len(out) == 63 and "--" in out


def test_escaping_is_stable():
    assert escape_username("Émile@lab") == escape_username("Émile@lab")


def test_label_value_equals_escaped_name():
    assert username_label("Bob@Example.org") == escape_username("Bob@Example.org")


def test_is_dns_label():
    assert is_dns_label("a-1") and not is_dns_label("-a") and not is_dns_label("A")
    assert not is_dns_label("a" * 64)


def test_join_label_hashes_when_too_long():
    out = join_label("job", "a" * 40, "b" * 40)
    assert is_dns_label(out) and len(out) == 63


@settings(max_examples=500)
@given(st.text(max_size=120))
def test_escaped_name_is_always_a_dns_label(name):
    out = escape_username(name)
    assert is_dns_label(out) and len(out) <= 63
    assert is_label_value(out)


@settings(max_examples=200)
@given(st.lists(st.text(max_size=80), min_size=2, max_size=60, unique=True))
def test_escaping_is_injective_on_a_sample(names):
    assert len({escape_username(n) for n in names}) == len(names)


@given(st.lists(st.text(alphabet="aAb-._@1", max_size=12), min_size=2, max_size=80, unique=True))
def test_escaping_is_injective_on_lookalike_names(names):
    assert len({escape_username(n) for n in names}) == len(names)
