"""Every validation rule, each on an archive that breaks it; tampering with any file is caught."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROLE, metalk8s_archive
from crd_v1beta1 import OPERATOR_SDK_0
from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import RULES, Severity
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.signing import generate_key
from metalk8s_solutions.engine.validate import ValidateOptions, ValidateResult, validate

Mutation = Callable[[Path], None]
V1BETA1_CRD = OPERATOR_SDK_0.encode()


def extract(iso: Path, dest: Path) -> Path:
    with IsoReader(iso) as reader:
        for name in reader.files():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(reader.read_bytes(name))
    return dest


def check(path: Path, policy: Policy | None = None, keys: tuple[Path, ...] = ()) -> ValidateResult:
    return validate(ValidateOptions(path, keys=keys, policy=policy))


def errors(result: ValidateResult) -> set[str]:
    return {f.rule for f in result.findings if f.level is Severity.ERROR}


def warnings(result: ValidateResult) -> set[str]:
    return {f.rule for f in result.findings if f.level is Severity.WARNING}


def edit(path: str, old: str, new: str) -> Mutation:
    def mutate(root: Path) -> None:
        text = (root / path).read_text()
        assert old in text
        (root / path).write_text(text.replace(old, new))

    return mutate


def write(path: str, data: bytes) -> Mutation:
    def mutate(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    return mutate


def remove(path: str) -> Mutation:
    return lambda root: (root / path).unlink()


def index_edit(change: Callable[[dict[str, object]], None]) -> Mutation:
    def mutate(root: Path) -> None:
        index = json.loads((root / "images/index.json").read_text())
        change(index)
        (root / "images/index.json").write_text(json.dumps(index))

    return mutate


def drop_image(ref: str) -> Mutation:
    def change(index: dict[str, object]) -> None:
        manifests = index["manifests"]
        assert isinstance(manifests, list)
        index["manifests"] = [
            m for m in manifests if m["annotations"]["org.opencontainers.image.ref.name"] != ref
        ]

    return index_edit(change)


def extra_image(index: dict[str, object]) -> None:
    manifests = index["manifests"]
    assert isinstance(manifests, list)
    clone = json.loads(json.dumps(manifests[0]))
    clone["annotations"]["org.opencontainers.image.ref.name"] = "extra:1.0.0"
    manifests.append(clone)


def flip_layer(root: Path) -> None:
    layer = hashlib.sha256(b"base").hexdigest()
    (root / f"images/blobs/sha256/{layer}").write_bytes(b"bask")


def symlink(root: Path) -> None:
    (root / "ui").mkdir()
    (root / "ui" / "link").symlink_to("/etc/passwd")


def monitoring(kind: str, spec: str, name: str = "m") -> bytes:
    header = f"apiVersion: monitoring.coreos.com/v1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
    return (header + "spec:\n" + spec).encode()


OWN = "  selector: {matchLabels: {app.kubernetes.io/part-of: example-solution}}\n"
RULE = "  groups: [{name: g, rules: [{alert: A, expr: '%s', labels: %s, annotations: %s}]}]\n"
BLOB = b"orphan"
CASES: list[tuple[str, Mutation, Severity]] = [
    ("SOL010", remove("manifest.yaml"), Severity.ERROR),
    ("SOL011", edit("manifest.yaml", "kind: Solution", "kind: Other"), Severity.ERROR),
    ("SOL012", edit("manifest.yaml", "name: example-solution", "name: Ex"), Severity.ERROR),
    ("SOL013", edit("manifest.yaml", "version: 1.0.0", "version: One"), Severity.ERROR),
    ("SOL013", edit("manifest.yaml", "version: 1.0.0", "version: 1.0.0.1"), Severity.WARNING),
    ("SOL014", edit("manifest.yaml", "display-name", "other"), Severity.WARNING),
    ("SOL015", edit("manifest.yaml", "[base-server:1.0.0", "[base-server"), Severity.ERROR),
    ("SOL016", edit("manifest.yaml", "name: example-solution-operator", "name: x"), Severity.ERROR),
    ("SOL017", edit("manifest.yaml", "spec:", "extra: 1\nspec:"), Severity.WARNING),
    (
        "SOL018",
        edit("manifest.yaml", "tag: 1.0.0}", "tag: 1.0.0}\n    metrics: {port: 0}"),
        Severity.ERROR,
    ),
    (
        "SOL019",
        edit("manifest.yaml", "tag: 1.0.0}", "tag: 1.0.0}\n  ui: {image: {name: gone, tag: '1'}}"),
        Severity.ERROR,
    ),
    ("SOL020", write("README.md", b"hi"), Severity.ERROR),
    ("SOL021", symlink, Severity.ERROR),
    ("SOL022", write("Manifest.yaml", b"x"), Severity.ERROR),
    ("SOL023", write("ui/bad name.txt", b"x"), Severity.ERROR),
    ("SOL030", drop_image("base-server:1.0.0"), Severity.ERROR),
    ("SOL031", flip_layer, Severity.ERROR),
    ("SOL032", drop_image("example-solution-operator:1.0.0"), Severity.ERROR),
    ("SOL033", write("images/index.json", b"{not json"), Severity.ERROR),
    ("SOL034", index_edit(extra_image), Severity.WARNING),
    (
        "SOL035",
        write(f"images/blobs/sha256/{hashlib.sha256(BLOB).hexdigest()}", BLOB),
        Severity.WARNING,
    ),
    (
        "SOL040",
        edit("operator/deploy/crds/example.yaml", "kind: CustomResourceDefinition", "kind: Pod"),
        Severity.ERROR,
    ),
    (
        "SOL041",
        edit("operator/deploy/crds/example.yaml", "replicas: {type: integer}", "replicas: {}"),
        Severity.ERROR,
    ),
    (
        "SOL042",
        edit("operator/deploy/crds/example.yaml", "storage: true", "storage: false"),
        Severity.ERROR,
    ),
    ("SOL043", remove("operator/deploy/crds/example.yaml"), Severity.WARNING),
    ("SOL050", write("operator/deploy/role.yaml", b"rules: [\n"), Severity.ERROR),
    ("SOL056", remove("operator/deploy/role.yaml"), Severity.WARNING),
    ("SOL024", write("operator/deploy/operator.yaml", b"kind: Deployment\n"), Severity.ERROR),
    ("SOL025", write("ui/" + "a" * 70 + ".txt", b"x"), Severity.ERROR),
    ("SOL036", edit("manifest.yaml", "[base-server", "[':1.0.0', base-server"), Severity.ERROR),
    ("SOL044", write("operator/deploy/crds/gadget_crd.yaml", V1BETA1_CRD), Severity.WARNING),
    (
        "SOL051",
        edit("operator/deploy/role.yaml", "kind: Role", "kind: ServiceAccount"),
        Severity.ERROR,
    ),
    (
        "SOL052",
        edit("operator/deploy/role.yaml", "verbs: [get,", "verbs: ['*', get,"),
        Severity.WARNING,
    ),
    (
        "SOL053",
        edit(
            "operator/deploy/role.yaml",
            "rules:\n",
            "rules:\n  - nonResourceURLs: [/metrics]\n    verbs: [get]\n",
        ),
        Severity.WARNING,
    ),
    (
        "SOL054",
        edit("operator/deploy/role.yaml", "verbs: [get,", "verbs: [escalate, get,"),
        Severity.WARNING,
    ),
    (
        "SOL055",
        edit(
            "operator/deploy/role.yaml",
            "apiGroups: [example.com]\n    resources: [examples]",
            "apiGroups: ['']\n    resources: [secrets]",
        ),
        Severity.WARNING,
    ),
    ("SOL060", write("ui/deploy.yaml", b"spec: {image: quay.io/evil/miner:1.0}\n"), Severity.ERROR),
    ("SOL070", write("SHA256SUMS", b"garbage\n"), Severity.ERROR),
    ("SOL090", write("monitoring/sm.yaml", monitoring("ServiceMonitor", OWN)), Severity.ERROR),
    (
        "SOL091",
        write(
            "monitoring/sm.yaml",
            monitoring(
                "PodMonitor",
                "  selector: {matchLabels: {app: x}}\n  podMetricsEndpoints: [{port: metrics}]\n",
            ),
        ),
        Severity.ERROR,
    ),
    (
        "SOL092",
        write(
            "monitoring/rules.yaml",
            monitoring(
                "PrometheusRule", RULE % ("sum(rate(x[5m])", "{severity: warning}", "{summary: s}")
            ),
        ),
        Severity.ERROR,
    ),
    ("SOL093", write("monitoring/board.json", b'{"title": "no uid"}'), Severity.ERROR),
    (
        "SOL094",
        write(
            "monitoring/rules.yaml", monitoring("PrometheusRule", RULE % ("up == 0", "{}", "{}"))
        ),
        Severity.WARNING,
    ),
    (
        "SOL095",
        write(
            "monitoring/sm.yaml",
            monitoring(
                "ServiceMonitor",
                OWN + "  endpoints: [{port: metrics, bearerTokenFile: /var/run/token}]\n",
            ),
        ),
        Severity.ERROR,
    ),
    (
        "SOL071",
        write("operator/deploy/role.yaml", ROLE.replace("get,", "gt,").encode()),
        Severity.ERROR,
    ),
    ("SOL072", write("ui/new.txt", b"added later"), Severity.ERROR),
    ("SOL073", remove("operator/deploy/crds/example.yaml"), Severity.ERROR),
]


@pytest.mark.parametrize(("rule", "mutate", "severity"), CASES, ids=[c[0] for c in CASES])
def test_rule(
    built_archive: Callable[[], Path], rule: str, mutate: Mutation, severity: Severity
) -> None:
    iso = built_archive()
    root = extract(iso, iso.parent / "x")
    assert check(root, Policy.IF_SIGNED, (iso.parent / "vendor.pub",)).valid
    mutate(root)
    result = check(root, Policy.DISABLED)
    found = errors(result) if severity is Severity.ERROR else warnings(result)
    assert rule in found, result.findings
    if severity is Severity.WARNING:
        assert rule not in errors(result)


def test_every_rule_is_tested_or_covered() -> None:
    # SOL005 applies to MetalK8s-format archives only: tests/unit/test_metalk8s_accept.py;
    # SOL100-SOL102 (MetalK8s 2.4 format) are covered by tests/unit/test_product.py;
    # SOL083-SOL084 (image signatures) by tests/unit/test_image_signatures.py
    covered = {"SOL001", "SOL005", "SOL080", "SOL081", "SOL082", "SOL083", "SOL084"}
    covered |= {"SOL100", "SOL101", "SOL102"}
    tested = {c[0] for c in CASES} | covered
    assert tested == set(RULES)


def test_valid_archive_and_signature_policies(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    pub = iso.parent / "vendor.pub"
    result = check(iso, keys=(pub,))
    assert result.valid and result.policy is Policy.REQUIRED and not result.findings
    assert result.report.signatures is not None
    assert result.report.signatures.status == "verified"
    # No key configured: if-signed by default, with visible warnings.
    result = check(iso)
    assert result.valid and result.policy is Policy.IF_SIGNED
    assert warnings(result) == {"SOL080", "SOL082"}
    # A trusted key that did not sign: required fails.
    other = iso.parent / "other.pub"
    other.write_bytes(generate_key()[1])
    assert "SOL080" in errors(check(iso, keys=(other,)))
    assert check(iso, Policy.DISABLED).findings == []


def test_missing_material_is_tolerated_only_by_policy(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    root = extract(iso, iso.parent / "x")
    for sig in (root / "signatures").iterdir():
        sig.unlink()
    pub = iso.parent / "vendor.pub"
    assert "SOL080" in errors(check(root, keys=(pub,)))
    assert "SOL080" in warnings(check(root, Policy.IF_SIGNED, (pub,)))
    (root / "SHA256SUMS").unlink()
    assert "SOL070" in errors(check(root, Policy.REQUIRED, (pub,)))
    assert "SOL070" in warnings(check(root, Policy.IF_SIGNED))


def test_bad_signature_is_fatal_whatever_the_policy(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    root = extract(iso, iso.parent / "x")
    sig = next((root / "signatures").iterdir())
    sig.write_bytes(sig.read_bytes()[:-1] + bytes([sig.read_bytes()[-1] ^ 1]))
    pub = iso.parent / "vendor.pub"
    for policy in (Policy.REQUIRED, Policy.IF_SIGNED):
        assert "SOL081" in errors(check(root, policy, (pub,)))


def test_tampering_with_any_file_in_the_iso_is_caught(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    pub = iso.parent / "vendor.pub"
    original = iso.read_bytes()
    with IsoReader(iso) as reader:
        extents = {name: reader.extent(name) for name in reader.files()}
    for name, (offset, size) in sorted(extents.items()):
        for pos in {offset, offset + size // 2, offset + size - 1}:
            data = bytearray(original)
            data[pos] ^= 0x01
            iso.write_bytes(bytes(data))
            result = check(iso, keys=(pub,))
            assert not result.valid, name
            assert any(f.path == name for f in result.findings if f.level is Severity.ERROR) or (
                "SOL081" in errors(result)
            ), (name, result.findings)


def test_truncated_iso_is_invalid_not_a_crash(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    iso.write_bytes(iso.read_bytes()[: 20 * 2048])
    result = check(iso)
    assert errors(result) == {"SOL001"}


def test_metalk8s_layout_archive(tmp_path: Path) -> None:
    iso = metalk8s_archive(tmp_path)
    result = check(iso)
    assert result.valid, result.findings
    assert result.report.layout == "metalk8s"
    assert set(result.report.images.images) == {
        "base-server:1.0.0",
        "example-solution-operator:1.0.0",
    }
    assert warnings(result) == {"SOL070", "SOL080", "SOL082"}
    assert "SOL070" in errors(check(iso, Policy.REQUIRED))
    (tmp_path / "bad").mkdir()
    bad = metalk8s_archive(tmp_path / "bad", corrupt=True)
    assert "SOL031" in errors(check(bad))
