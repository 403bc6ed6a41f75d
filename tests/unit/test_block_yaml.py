"""The lean kubeconfig reader reads what PyYAML reads, or says it cannot: never something else."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from metalk8s_solutions.api import block_yaml
from metalk8s_solutions.api.block_yaml import Unsupported

# What `kubectl config view --raw` writes (lists at the key's level, `{}` preferences).
KUBECTL = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://127.0.0.1:6443
  name: kind-kind
- cluster:
    insecure-skip-tls-verify: true
    server: https://10.0.0.1
  name: other
contexts:
- context:
    cluster: kind-kind
    namespace: default
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: LS0tLS1CRUdJTg==
    client-key-data: LS0tLS1CRUdJTiBSU0E=
- name: tok
  user:
    token: eyJhbGciOiJSUzI1NiJ9.e30.sig
"""

SAME = [
    KUBECTL,
    "---\n" + KUBECTL,
    "# a comment\n" + KUBECTL + "\n# trailing\n",
    "a: 'it''s'\nb: \"x\\\"y\\\\z\"\nc: ''\nd:\ne: ~\nf: null\ng: []\n",
    "a:\n  - x\n  - y\nb:\n- c: d\n  e: f\n-\n  g: h\n",
    "a: yes\nb: Off\nc: TRUE\nd: no\n",
    "'quoted key': v\n\"dq\": w\n",
    "key with spaces : value with  spaces\n",
    "",
    "# only a comment\n",
    "list:\n-\n  - nested\n",
    "a: http://x:1/y?z=1\n",
    "a: y\nb: n\n",
]

UNSUPPORTED = [
    "a: 1\n",  # a number
    "a: 2001-12-14\n",  # a date
    "a: &x b\nc: *x\n",  # anchors
    "a: !!str b\n",  # tags
    "a: {b: c}\n",  # flow mapping
    "a: [b, c]\n",  # flow sequence
    "a: |\n  text\n",  # block scalar
    "a: b\n  continued\n",  # multi-line plain scalar
    "a: b # comment\n",
    "a: b\na: c\n",  # duplicate key
    "a: b\n---\nc: d\n",  # two documents
    "\ta: b\n",
    "just a scalar\n",
    "a: b: c\n",
    "a: .inf\n",
    'a: "\\u00e9"\n',
    "a: 'open\n",
    'a: "open\n',
    "- a\nb: c\n",
    "a: b\n- c\n",
    "? a\n: b\n",
    "a: \x07\n",
    "<<: x\n",
]


@pytest.mark.parametrize("text", SAME)
def test_reads_what_pyyaml_reads(text: str) -> None:
    assert block_yaml.load(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", UNSUPPORTED)
def test_leaves_everything_else_to_pyyaml(text: str) -> None:
    with pytest.raises(Unsupported):
        block_yaml.load(text)


def test_reads_the_kubeconfigs_the_project_writes() -> None:
    from metalk8s_solutions.testing.pki import kubeconfig_document  # noqa: PLC0415

    doc = kubeconfig_document("https://127.0.0.1:1234", b"ca", b"cert", b"key", "admin")
    for text in (
        yaml.safe_dump(doc, sort_keys=False),
        yaml.safe_dump(doc, default_flow_style=False),
    ):
        assert block_yaml.load(text) == doc


_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_scalars = st.one_of(st.none(), st.booleans(), st.text(st.characters(codec="utf-8"), max_size=12))
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    value=st.dictionaries(_keys, _values, max_size=4), flow=st.booleans(), width=st.integers(20, 80)
)
def test_never_disagrees_with_pyyaml_on_dumped_documents(
    value: dict[str, Any], flow: bool, width: int
) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow or None, width=width, allow_unicode=True)
    try:
        ours = block_yaml.load(text)
    except Unsupported:
        return
    assert ours == yaml.safe_load(text)


@settings(max_examples=600, deadline=None)
@given(text=st.text(st.sampled_from(list("ab: -'\"#\n\t{}[]&*!|>~0.\\")), max_size=40))
def test_never_disagrees_with_pyyaml_on_any_text(text: str) -> None:
    try:
        ours = block_yaml.load(text)
    except Unsupported:
        return
    assert ours == yaml.safe_load(text)  # PyYAML must not fail where we answered
