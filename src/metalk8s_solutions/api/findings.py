"""The catalogue of validation rules and the finding they produce.

Rules have stable ids (``SOL0xx``) so that users, CI scripts and the documentation
(``docs/developer/validation-rules.md``) can refer to them across releases.  Checks anywhere in the
code produce :class:`Finding` values that name a rule; whether a finding makes an archive invalid
is decided by its severity alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str


E, W = Severity.ERROR, Severity.WARNING

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("SOL001", E, "the archive is a readable ISO 9660 image"),
        Rule("SOL010", E, "manifest.yaml is present, small and valid YAML"),
        Rule("SOL011", E, "manifest apiVersion and kind"),
        Rule("SOL012", E, "metadata.name is a DNS label"),
        Rule("SOL013", E, "spec.version is a semantic version"),
        Rule("SOL014", W, "display-name annotation is set"),
        Rule("SOL015", E, "spec.images entries are name:tag, without duplicates"),
        Rule("SOL016", E, "spec.operator.image is declared and listed in spec.images"),
        Rule("SOL017", W, "no unknown manifest fields"),
        Rule("SOL018", E, "spec.operator.metrics is well-formed"),
        Rule("SOL019", E, "spec.ui is well-formed and its image is listed in spec.images"),
        Rule("SOL020", E, "every file is inside the archive layout"),
        Rule("SOL021", E, "no symlink, special file or path escaping the archive"),
        Rule("SOL022", E, "no duplicate or case-colliding names"),
        Rule("SOL023", E, "file names are portable and short enough"),
        Rule("SOL030", E, "every image of the manifest is in the archive"),
        Rule("SOL031", E, "every blob is present and matches its digest"),
        Rule("SOL032", E, "the operator image is in the archive"),
        Rule("SOL033", E, "image layout and manifests are well-formed"),
        Rule("SOL034", W, "every image of the archive is listed in the manifest"),
        Rule("SOL035", W, "no unreferenced blob"),
        Rule("SOL040", E, "CRDs are apiextensions.k8s.io/v1 CustomResourceDefinitions"),
        Rule("SOL041", E, "every served CRD version has a structural schema"),
        Rule("SOL042", E, "every CRD has exactly one storage version"),
        Rule("SOL043", W, "the archive ships at least one CRD"),
        Rule("SOL050", E, "operator/deploy/role.yaml is present and valid YAML"),
        Rule("SOL051", E, "role.yaml holds only Role and ClusterRole documents"),
        Rule("SOL052", W, "no wildcard in RBAC rules"),
        Rule(
            "SOL053",
            W,
            "no rule a namespaced RoleBinding cannot grant (cluster-scoped resources, "
            "nonResourceURLs)",
        ),
        Rule(
            "SOL054",
            W,
            "no escalate, bind or impersonate verb, nor pods/exec, pods/attach or "
            "serviceaccounts/token, in RBAC rules",
        ),
        Rule("SOL055", W, "no access to every secret (secrets rules name their resourceNames)"),
        Rule("SOL060", E, "every image referenced in the archive is inside it"),
        Rule("SOL070", E, "SHA256SUMS is present and well-formed"),
        Rule("SOL071", E, "every file matches its SHA256SUMS checksum"),
        Rule("SOL072", E, "every file is listed in SHA256SUMS"),
        Rule("SOL073", E, "every file listed in SHA256SUMS is present"),
        Rule("SOL080", E, "the archive is signed by a trusted key"),
        Rule("SOL081", E, "every signature is valid"),
        Rule("SOL082", W, "trusted keys are configured for verification"),
        Rule("SOL090", E, "monitoring objects are well-formed Prometheus Operator objects"),
        Rule("SOL091", E, "monitoring selectors select only the Solution's own pods"),
        Rule("SOL092", E, "every PromQL expression parses"),
        Rule("SOL093", E, "dashboards are JSON objects with a title and a uid"),
        Rule("SOL094", W, "alerts have a severity and say what to do"),
        Rule("SOL095", E, "scrape endpoints neither read Prometheus's files nor redirect scrapes"),
    )
}


@dataclass(frozen=True)
class Finding:
    """One breach of a rule, located as precisely as possible (``path`` inside the archive)."""

    rule: str
    message: str
    path: str = ""
    severity: Severity | None = None

    @property
    def level(self) -> Severity:
        """The severity: the rule's own unless this finding overrides it (policy-driven rules)."""
        return self.severity or RULES[self.rule].severity

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": str(self.level),
            "path": self.path,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.rule} {where}{self.message}"


def error_of(findings: list[Finding]) -> Finding | None:
    """The first error among ``findings``, if any."""
    return next((f for f in findings if f.level is Severity.ERROR), None)
