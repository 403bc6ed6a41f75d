"""The catalogue of validation rules and the finding they produce.

Rules have stable ids (``SOL0xx``) so that users, CI scripts and the documentation
(``docs/developer/validation-rules.md``) can refer to them across releases.  Checks anywhere in the
code produce :class:`Finding` values that name a rule; whether a finding makes an archive invalid
is decided by its severity alone.

The table has two columns: the severity of a rule for a signed archive of ours (OCI layout) and
for a MetalK8s-format archive (skopeo ``dir:`` images, ``registry-config.inc.j2``).  What
MetalK8s itself accepts without a word (a derived manifest field, files it never applies, long
Rock Ridge names, an image entry with an empty name) is a warning for its format and stays an
error for ours, whose builder never produces it.  Whatever would break a cluster or hide
tampering is an error for both.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    """A rule: its severity for an archive of ours, and for a MetalK8s-format archive."""

    id: str
    severity: Severity
    title: str
    metalk8s_severity: Severity | None = None  # None: the same as ``severity``

    @property
    def metalk8s(self) -> Severity:
        """The severity of this rule for a MetalK8s-format archive."""
        return self.metalk8s_severity or self.severity


E, W = Severity.ERROR, Severity.WARNING

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("SOL001", E, "the archive is a readable ISO 9660 image"),
        Rule(
            "SOL005",
            E,
            "spec.images and spec.operator.image are declared (MetalK8s derives them)",
            W,
        ),
        Rule("SOL010", E, "manifest.yaml is present, small and valid YAML"),
        Rule("SOL011", E, "manifest apiVersion and kind"),
        Rule("SOL012", E, "metadata.name is a DNS label"),
        Rule(
            "SOL013",
            E,
            "spec.version is safe in names and labels (warning: not a semantic version)",
        ),
        Rule("SOL014", W, "display-name annotation is set"),
        Rule("SOL015", E, "spec.images entries are name:tag, without duplicates"),
        Rule("SOL016", E, "spec.operator.image is declared and listed in spec.images"),
        Rule("SOL017", W, "no unknown manifest fields"),
        Rule("SOL018", E, "spec.operator.metrics is well-formed"),
        Rule("SOL019", E, "spec.ui is well-formed and its image is listed in spec.images"),
        Rule("SOL020", E, "every file is inside the archive layout"),
        Rule("SOL021", E, "no symlink, special file or path escaping the archive"),
        Rule("SOL022", E, "no duplicate or case-colliding names"),
        Rule("SOL023", E, "file names are portable and at most 255 characters"),
        Rule(
            "SOL024",
            E,
            "operator/deploy/ holds only files that are applied (not the 1.0.x operator.yaml, "
            "role_binding.yaml, service_account.yaml nor *_cr.yaml samples)",
            W,
        ),
        Rule("SOL025", E, "file names are at most 64 characters (Joliet)", W),
        Rule("SOL030", E, "every image of the manifest is in the archive"),
        Rule("SOL031", E, "every blob is present and matches its digest"),
        Rule("SOL032", E, "the operator image is in the archive"),
        Rule("SOL033", E, "image layout and manifests are well-formed"),
        Rule("SOL034", W, "every image of the archive is listed in the manifest"),
        Rule("SOL035", W, "no unreferenced blob"),
        Rule("SOL036", E, "no spec.images entry with an empty name (':tag')", W),
        Rule("SOL040", E, "CRDs are apiextensions.k8s.io/v1 CustomResourceDefinitions"),
        Rule("SOL041", E, "every served CRD version has a structural schema"),
        Rule("SOL042", E, "every CRD has exactly one storage version"),
        Rule("SOL043", W, "the archive ships at least one CRD"),
        Rule("SOL044", W, "apiextensions.k8s.io/v1beta1 CRDs are converted to v1 at activation"),
        Rule("SOL050", E, "operator/deploy/role.yaml, when present, is valid YAML"),
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
        Rule("SOL056", W, "operator/deploy/role.yaml is present (without it, no role is granted)"),
        Rule("SOL060", E, "every image referenced in the archive is inside it"),
        Rule("SOL070", E, "SHA256SUMS is present and well-formed"),
        Rule("SOL071", E, "every file matches its SHA256SUMS checksum"),
        Rule("SOL072", E, "every file is listed in SHA256SUMS"),
        Rule("SOL073", E, "every file listed in SHA256SUMS is present"),
        Rule("SOL080", E, "the archive is signed by a trusted key"),
        Rule("SOL081", E, "every signature is valid"),
        Rule("SOL082", W, "trusted keys are configured for verification"),
        Rule(
            "SOL083",
            E,
            "image signatures (cosign) are well-formed and each names its image's manifest",
        ),
        Rule(
            "SOL084",
            W,
            "every image of a signed archive carries a cosign signature by a trusted key",
        ),
        Rule("SOL090", E, "monitoring objects are well-formed Prometheus Operator objects"),
        Rule("SOL091", E, "monitoring selectors select only the Solution's own pods"),
        Rule("SOL092", E, "every PromQL expression parses"),
        Rule("SOL093", E, "dashboards are JSON objects with a title and a uid"),
        Rule("SOL094", W, "alerts have a severity and say what to do"),
        Rule("SOL095", E, "scrape endpoints neither read Prometheus's files nor redirect scrapes"),
        Rule("SOL100", E, "product.txt (MetalK8s 2.4 format) sets NAME and VERSION"),
        Rule("SOL101", E, "config.yaml (MetalK8s 2.4 format) is a well-formed SolutionConfig"),
        Rule("SOL102", W, "MetalK8s 2.4 format: what was derived from product.txt and config.yaml"),
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


def for_metalk8s(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` at the severities of a MetalK8s-format archive (a finding whose severity is
    set explicitly, by a policy, keeps it)."""
    return [
        f if f.severity is not None else replace(f, severity=RULES[f.rule].metalk8s)
        for f in findings
    ]


def error_of(findings: list[Finding]) -> Finding | None:
    """The first error among ``findings``, if any."""
    return next((f for f in findings if f.level is Severity.ERROR), None)
