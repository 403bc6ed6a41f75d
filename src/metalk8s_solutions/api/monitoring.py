"""The monitoring a Solution declares under ``monitoring/``, and its checks (SOL090-SOL095).

A Solution may ship Prometheus Operator objects (``ServiceMonitor``, ``PodMonitor``,
``PrometheusRule``, all ``monitoring.coreos.com/v1``) as YAML and Grafana dashboards as JSON.
They are written once and bound to each environment at deploy time (``engine/monitoring.py``),
so they must select only the Solution's own pods and never name a namespace.  PromQL is parsed
with ``promql-parser`` (the Rust parser of GreptimeDB, compiled; the same grammar as
Prometheus 2.x/3.x for expressions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import promql_parser

from metalk8s_solutions.api.findings import Finding
from metalk8s_solutions.api.manifest import DNS_LABEL
from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents

MONITORING_DIR = "monitoring/"
API_VERSION = "monitoring.coreos.com/v1"
KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
#: The CRDs whose presence means the Prometheus Operator is installed.
CRD_NAMES = {
    "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
    "PodMonitor": "podmonitors.monitoring.coreos.com",
    "PrometheusRule": "prometheusrules.monitoring.coreos.com",
}
PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
MAX_DASHBOARD = 4 * 1024 * 1024
MAX_UID = 40  # Grafana's limit on a dashboard uid
MAX_JSON_DEPTH = 64  # Grafana's own dashboards nest about 10 levels
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Dashboard:
    """A Grafana dashboard of the archive: its file name (ConfigMap key), title, uid and JSON."""

    path: str
    title: str
    uid: str
    text: str

    @property
    def key(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def is_monitoring_object(path: str) -> bool:
    return path.startswith(MONITORING_DIR) and path.endswith((".yaml", ".yml"))


def is_dashboard(path: str) -> bool:
    return path.startswith(MONITORING_DIR) and path.endswith(".json")


def check_promql(expr: object) -> str | None:
    """Why ``expr`` is not a PromQL expression, or None when it parses."""
    if not isinstance(expr, str | int | float) or isinstance(expr, bool):
        return f"expr must be a PromQL string, not {type(expr).__name__}"
    text = str(expr).strip()
    if not text:
        return "expr is empty"
    try:
        promql_parser.parse(text)
    except ValueError as err:
        return f"expr {text[:80]!r} does not parse: {err}"
    return None


def _selector_findings(
    selector: object, where: str, solution: str, path: str, findings: list[Finding]
) -> None:
    labels = selector.get("matchLabels") if isinstance(selector, dict) else None
    if not isinstance(labels, dict) or not (
        labels.get(PART_OF) == solution or labels.get(NAME) == solution
    ):
        findings.append(
            Finding(
                "SOL091",
                f"{where}.matchLabels must include {PART_OF}: {solution} (or {NAME}: {solution}) "
                "so that it selects only this Solution's pods",
                path,
            )
        )


#: Relabeling actions that write ``targetLabel`` (the others only keep, drop or compare).
WRITING_ACTIONS = ("replace", "hashmod", "lowercase", "uppercase")
#: Endpoint fields that point Prometheus's scrapes at another address.
REDIRECTING_FIELDS = ("proxyUrl",)


def _file_fields(value: object, where: str) -> list[str]:
    """``where.key`` of every ``*File`` field below ``value`` (a path on Prometheus's disk)."""
    found: list[str] = []
    pending: list[tuple[object, str]] = [(value, where)]
    while pending:
        node, at = pending.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if str(key).endswith("File"):
                    found.append(f"{at}.{key}")
                else:
                    pending.append((child, f"{at}.{key}"))
        elif isinstance(node, list):
            pending.extend((child, f"{at}[{i}]") for i, child in enumerate(node))
    return sorted(found)


def unsafe_relabeling(relabeling: object) -> str | None:
    """Why a relabeling of a scrape endpoint may redirect the scrape, or None when it cannot.

    Writing ``__address__`` points Prometheus at any address; a ``$`` in ``targetLabel`` and a
    ``labelmap`` action name the written label from data, so they can write ``__address__`` too.
    """
    if not isinstance(relabeling, dict):
        return None
    action = str(relabeling.get("action") or "replace").lower()
    target = str(relabeling.get("targetLabel") or "")
    if action == "labelmap":
        return "a labelmap action can write any label, __address__ included"
    if action in WRITING_ACTIONS and target == "__address__":
        return "it rewrites __address__, the address Prometheus scrapes"
    if action in WRITING_ACTIONS and "$" in target:
        return f"its targetLabel {target!r} is computed, so it may write __address__"
    return None


def unsafe_endpoint_fields(endpoint: object) -> list[str]:
    """What in one scrape endpoint reads Prometheus's files or redirects its scrapes."""
    if not isinstance(endpoint, dict):
        return []
    problems = [f"{path} reads a file of Prometheus" for path in _file_fields(endpoint, "")]
    problems += [f".{key} redirects the scrape" for key in REDIRECTING_FIELDS if key in endpoint]
    relabelings = endpoint.get("relabelings")
    for i, relabeling in enumerate(relabelings if isinstance(relabelings, list) else []):
        why = unsafe_relabeling(relabeling)
        if why:
            problems.append(f".relabelings[{i}]: {why}")
    return [p.lstrip(".") for p in problems]


def safe_endpoint(endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a scrape endpoint without what :func:`unsafe_endpoint_fields` reports."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not str(k).endswith("File")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    out: dict[str, Any] = strip({k: v for k, v in endpoint.items() if k not in REDIRECTING_FIELDS})
    if isinstance(out.get("relabelings"), list):
        out["relabelings"] = [r for r in out["relabelings"] if unsafe_relabeling(r) is None]
    return out


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_rules(spec: Mapping[str, Any], where: str, path: str, findings: list[Finding]) -> None:
    groups = spec.get("groups")
    if not isinstance(groups, list) or not groups:
        findings.append(Finding("SOL090", f"{where}: spec.groups must be a non-empty list", path))
        return
    for gi, group in enumerate(groups):
        gwhere = f"{where}: spec.groups[{gi}]"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            findings.append(Finding("SOL090", f"{gwhere} needs a name", path))
            continue
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            findings.append(Finding("SOL090", f"{gwhere}.rules must be a non-empty list", path))
            continue
        for ri, rule in enumerate(rules):
            rwhere = f"{gwhere}.rules[{ri}]"
            if not isinstance(rule, dict) or ("alert" in rule) == ("record" in rule):
                findings.append(
                    Finding("SOL090", f"{rwhere} needs exactly one of alert or record", path)
                )
                continue
            if "expr" not in rule:
                findings.append(Finding("SOL090", f"{rwhere} has no expr", path))
            else:
                problem = check_promql(rule["expr"])
                if problem:
                    findings.append(Finding("SOL092", f"{rwhere}: {problem}", path))
            if "alert" in rule:
                labels = _mapping(rule.get("labels"))
                notes = _mapping(rule.get("annotations"))
                if labels.get("severity") not in SEVERITIES:
                    findings.append(
                        Finding(
                            "SOL094",
                            f"{rwhere} (alert {rule['alert']}): labels.severity should be one "
                            f"of {', '.join(SEVERITIES)}",
                            path,
                        )
                    )
                if not (notes.get("summary") or notes.get("description")):
                    findings.append(
                        Finding(
                            "SOL094",
                            f"{rwhere} (alert {rule['alert']}): add a summary or description "
                            "annotation that says what to do",
                            path,
                        )
                    )


def _check_scrape(
    kind: str,
    spec: Mapping[str, Any],
    where: str,
    solution: str | None,
    path: str,
    findings: list[Finding],
) -> None:
    field = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
    endpoints = spec.get(field)
    if not isinstance(endpoints, list) or not endpoints:
        findings.append(Finding("SOL090", f"{where}: spec.{field} must be a non-empty list", path))
    else:
        for i, endpoint in enumerate(endpoints):
            if not isinstance(endpoint, dict) or not (
                endpoint.get("port") or endpoint.get("targetPort") or endpoint.get("portNumber")
            ):
                findings.append(Finding("SOL090", f"{where}: spec.{field}[{i}] needs a port", path))
            findings.extend(
                Finding("SOL095", f"{where}: spec.{field}[{i}].{problem}", path)
                for problem in unsafe_endpoint_fields(endpoint)
            )
    if "selector" not in spec:
        findings.append(Finding("SOL090", f"{where}: spec.selector is required", path))
    elif solution is not None:
        _selector_findings(spec["selector"], f"{where}: spec.selector", solution, path, findings)
    if "namespaceSelector" in spec:
        findings.append(
            Finding(
                "SOL091",
                f"{where}: spec.namespaceSelector must not be set; the object is bound to its "
                "environment's namespace so that environments never scrape each other",
                path,
            )
        )


def check_monitoring_object(doc: object, path: str, solution: str | None) -> list[Finding]:
    """SOL090-SOL092, SOL094 and SOL095 on one decoded document of ``monitoring/*.yaml``.

    ``solution`` is the manifest's name; None (no valid manifest) skips the selector rule.
    """
    findings: list[Finding] = []
    if not isinstance(doc, dict):
        return [Finding("SOL090", "a monitoring document must be a mapping", path)]
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION or kind not in KINDS:
        return [
            Finding(
                "SOL090",
                f"{doc.get('apiVersion')}/{kind} is not a {API_VERSION} {', '.join(KINDS)}",
                path,
            )
        ]
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    where = f"{kind} {name}"
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        findings.append(
            Finding("SOL090", f"{kind}: metadata.name {name!r} is not a DNS label", path)
        )
    if isinstance(metadata, dict) and "namespace" in metadata:
        findings.append(
            Finding(
                "SOL090",
                f"{where}: metadata.namespace must not be set; each environment's namespace is "
                "given at deploy time",
                path,
            )
        )
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        findings.append(Finding("SOL090", f"{where}: spec must be a mapping", path))
        return findings
    if kind == "PrometheusRule":
        _check_rules(spec, where, path, findings)
        return findings
    _check_scrape(kind, spec, where, solution, path, findings)
    return findings


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str, limit: int) -> int:
    """How deeply arrays and objects nest in ``text`` (JSON), counted without recursion; stops
    counting past ``limit``."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def parse_dashboard(data: bytes, path: str) -> tuple[Dashboard | None, list[Finding]]:
    """SOL093: a Grafana dashboard is one JSON object with a title and a uid."""
    if len(data) > MAX_DASHBOARD:
        return None, [Finding("SOL093", f"larger than {MAX_DASHBOARD // 1024} KiB", path)]
    try:
        text = data.decode()
    except UnicodeDecodeError as err:
        return None, [Finding("SOL093", f"not valid JSON: {err}", path)]
    # Checked before parsing: the parser recurses, and deep nesting would exhaust the stack.
    if json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, [
            Finding(
                "SOL093",
                f"JSON nested more than {MAX_JSON_DEPTH} levels deep (a dashboard needs far fewer)",
                path,
            )
        ]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        return None, [Finding("SOL093", f"not valid JSON: {err}", path)]
    except RecursionError:
        return None, [Finding("SOL093", "JSON nested too deeply", path)]
    if not isinstance(doc, dict):
        return None, [Finding("SOL093", "a dashboard must be a JSON object", path)]
    findings: list[Finding] = []
    title, uid = doc.get("title"), doc.get("uid")
    if not isinstance(title, str) or not title.strip():
        findings.append(Finding("SOL093", "the dashboard has no title", path))
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID:
        findings.append(Finding("SOL093", f"the dashboard needs a uid of 1-{MAX_UID} chars", path))
    if findings:
        return None, findings
    assert isinstance(title, str) and isinstance(uid, str)  # noqa: S101 - narrowed above
    return Dashboard(path, title, uid, text), []


MAX_YAML = 4 * 1024 * 1024


@dataclass(frozen=True)
class MonitoringContent:
    """What ``monitoring/`` of an (imported, hence valid) archive holds."""

    documents: tuple[Mapping[str, Any], ...] = ()
    dashboards: tuple[Dashboard, ...] = ()


def load_monitoring(source: FileSource) -> MonitoringContent:
    """Read ``monitoring/`` of an archive: the Prometheus Operator objects and the dashboards.

    Meant for archives that passed ``validate`` (SOL090-SOL095); anything that is not one of
    :data:`KINDS` or not a dashboard is left out rather than reported.
    """
    documents: list[Mapping[str, Any]] = []
    dashboards: list[Dashboard] = []
    for path in sorted(source.files()):
        if is_monitoring_object(path):
            data = read_limited(source, path, MAX_YAML)
            for doc in load_yaml_documents(data, f"{source.label}:{path}", rule="SOL090"):
                if (
                    isinstance(doc, dict)
                    and doc.get("apiVersion") == API_VERSION
                    and doc.get("kind") in KINDS
                ):
                    documents.append(doc)
        elif is_dashboard(path):
            board, _ = parse_dashboard(read_limited(source, path, MAX_DASHBOARD), path)
            if board is not None:
                dashboards.append(board)
    return MonitoringContent(tuple(documents), tuple(dashboards))
