"""``validate``: every rule of the archive format, on an ISO, an extracted archive or a source tree.

One function, :func:`check_source`, runs the rules over any
:class:`~metalk8s_solutions.api.streams.FileSource`; ``build`` runs it on its plan before writing
anything, ``validate`` on whatever the user points at.  Content is hashed in one pass (two
threads: hashlib releases the GIL on large buffers) and each hash serves both the SHA256SUMS
check and, for blobs, the digest check.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.crd import (
    check_crd,
    check_role,
    cluster_scoped_crds,
    image_references,
)
from metalk8s_solutions.api.findings import Finding, Severity, error_of, for_metalk8s
from metalk8s_solutions.api.manifest import SolutionManifest, load_manifest, parse_image_ref
from metalk8s_solutions.api.monitoring import (
    MAX_DASHBOARD,
    check_monitoring_object,
    is_dashboard,
    is_monitoring_object,
    parse_dashboard,
)
from metalk8s_solutions.api.product import PRODUCT_PATH, ProductSolution
from metalk8s_solutions.api.streams import FileSource, read_limited, sha256_stream
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.checksums import SUMS_PATH, is_covered, parse_sums
from metalk8s_solutions.archive.cosign import check_signature_image, signature_tag, signed_digest
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.layout import (
    Layout,
    check_layout,
    crd_files,
    docker_dir_images,
    never_applied,
)
from metalk8s_solutions.archive.pinning import sums_digest
from metalk8s_solutions.archive.product import is_product_archive, load_product_solution
from metalk8s_solutions.archive.signing import (
    MAX_SIGNATURE_BYTES,
    PublicKey,
    SignatureReport,
    check_signatures,
    default_policy,
    trusted_keys,
)
from metalk8s_solutions.archive.tree import DirectorySource
from metalk8s_solutions.engine.build_plan import plan
from metalk8s_solutions.engine.crds import convert_v1beta1, crd_name, is_v1beta1_crd
from metalk8s_solutions.errors import ArchiveError, ManifestError, SolutionsError
from metalk8s_solutions.images.oci import ImageSet, read_docker_dirs, read_oci_layout

MAX_YAML_FILE = 4 * 1024 * 1024
HASH_THREADS = 2
ARCHIVE_MARKERS = (
    "SHA256SUMS",
    "images/index.json",
    "registry-config.inc.j2",
    "product.txt",
)


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` bytes of a phase (``hash``, ``write``)."""

    phase: str
    done: int
    total: int


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class ValidateOptions:
    path: Path
    keys: tuple[Path, ...] = ()
    trusted_pems: tuple[str, ...] = ()
    policy: Policy | None = None
    progress: ProgressCallback | None = None


@dataclass
class CheckReport:
    layout: Layout
    manifest: SolutionManifest | None
    images: ImageSet
    findings: list[Finding] = field(default_factory=list)
    signatures: SignatureReport | None = None
    sums_digest: str | None = None  # sha256:<hex> of the SHA256SUMS checked (what a pin holds)


@dataclass
class ValidateResult:
    path: Path
    kind: str  # iso | archive-directory | source
    policy: Policy
    report: CheckReport

    @property
    def findings(self) -> list[Finding]:
        return self.report.findings

    @property
    def valid(self) -> bool:
        return error_of(self.findings) is None

    def to_dict(self) -> dict[str, Any]:
        manifest = self.report.manifest
        sig = self.report.signatures
        return {
            "path": str(self.path),
            "kind": self.kind,
            "layout": str(self.report.layout),
            "id": manifest.id if manifest else None,
            "policy": str(self.policy),
            "signature": sig.status if sig else "not-checked",
            "valid": self.valid,
            "errors": sum(1 for f in self.findings if f.level is Severity.ERROR),
            "warnings": sum(1 for f in self.findings if f.level is Severity.WARNING),
            "findings": [f.to_dict() for f in self.findings],
        }


def open_source(path: Path) -> tuple[FileSource, str]:
    """An ISO, an extracted archive directory, or a source tree (planned as ``build`` would)."""
    if path.is_file():
        return IsoReader(path), "iso"
    if path.is_dir():
        if any((path / marker).exists() for marker in ARCHIVE_MARKERS):
            return DirectorySource(path), "archive-directory"
        return plan(path), "source"
    raise ArchiveError(f"{path}: no such file or directory")


def _yaml_docs(source: FileSource, path: str, rule: str, findings: list[Finding]) -> list[Any]:
    try:
        return load_yaml_documents(read_limited(source, path, MAX_YAML_FILE), path, rule=rule)
    except (ManifestError, ArchiveError) as err:
        findings.append(Finding(rule, str(err).removeprefix(f"{rule} {path}: "), path))
        return []


def _check_roles(
    source: FileSource,
    product: ProductSolution | None,
    cluster_crds: set[tuple[str, str]] | None = None,
) -> list[Finding]:
    files = source.files()
    findings: list[Finding] = []
    role = "operator/deploy/role.yaml"
    if product is not None:  # MetalK8s 2.4 generated the operator's Role; role.yaml was unused
        for doc in product.roles:
            findings.extend(check_role(doc, PRODUCT_PATH, cluster_crds or ()))
        if role in files:
            findings.append(
                Finding(
                    "SOL102",
                    "not used: the operator gets the Role MetalK8s 2.4 generated "
                    "(customApiGroups of config.yaml), as MetalK8s 2.4 did",
                    role,
                )
            )
    elif role not in files:
        findings.append(
            Finding(
                "SOL056",
                "operator/deploy/role.yaml is missing: the operator is granted no role, only what "
                "the environment's namespaces grant its service account",
                role,
            )
        )
    else:
        for doc in _yaml_docs(source, role, "SOL050", findings):
            findings.extend(check_role(doc, role, cluster_crds or ()))
    return findings


def _check_deploy(
    source: FileSource, manifest: SolutionManifest | None, product: ProductSolution | None = None
) -> list[Finding]:
    files = source.files()
    findings: list[Finding] = []
    crds = crd_files(files)
    if not crds:
        findings.append(Finding("SOL043", "no CRD in operator/deploy/crds/", "operator/deploy/"))
    referenced: list[tuple[str, str]] = []
    cluster_crds: set[tuple[str, str]] = set()  # (group, plural): no RoleBinding grants them
    for path in crds:
        for doc in _yaml_docs(source, path, "SOL040", findings):
            cluster_crds |= cluster_scoped_crds([doc])
            if is_v1beta1_crd(doc):
                findings.append(
                    Finding(
                        "SOL044",
                        f"CRD {crd_name(doc) or '(no name)'} is apiextensions.k8s.io/v1beta1, "
                        "which no current API server serves: it is converted to "
                        "apiextensions.k8s.io/v1 at activation",
                        path,
                    )
                )
            findings.extend(check_crd(convert_v1beta1(doc) if is_v1beta1_crd(doc) else doc, path))
    findings.extend(_check_roles(source, product, cluster_crds))
    for path in sorted(files):
        if (
            path.endswith((".yaml", ".yml"))
            and path.startswith(("operator/", "monitoring/", "ui/"))
            and not never_applied(path)
        ):
            docs = _yaml_docs(source, path, "SOL060", []) if path not in crds else []
            referenced.extend((path, ref) for doc in docs for ref in image_references(doc))
    if manifest is not None:
        names = {str(i) for i in manifest.images}
        for path, ref in referenced:
            last = ref.rsplit("/", 1)[-1].split("@", 1)[0]
            if last not in names:
                findings.append(
                    Finding(
                        "SOL060", f"references image {ref!r}, which is not in the archive", path
                    )
                )
    return findings


def _check_monitoring(source: FileSource, manifest: SolutionManifest | None) -> list[Finding]:
    """SOL090-SOL095 on ``monitoring/``: Prometheus Operator objects and Grafana dashboards."""
    findings: list[Finding] = []
    solution = manifest.name if manifest is not None else None
    for path in sorted(source.files()):
        if is_monitoring_object(path):
            for doc in _yaml_docs(source, path, "SOL090", findings):
                findings.extend(check_monitoring_object(doc, path, solution))
        elif is_dashboard(path):
            try:
                data = read_limited(source, path, MAX_DASHBOARD)
            except ArchiveError as err:
                findings.append(Finding("SOL093", str(err), path))
                continue
            findings.extend(parse_dashboard(data, path)[1])
    return findings


def _check_images(
    source: FileSource, layout: Layout, manifest: SolutionManifest | None
) -> tuple[ImageSet, list[Finding]]:
    images = read_docker_dirs(source) if layout is Layout.METALK8S else read_oci_layout(source)
    findings = list(images.findings)
    if manifest is None:
        return images, findings
    listed = {str(i) for i in manifest.images}
    for ref in sorted(listed - set(images.images)):
        findings.append(Finding("SOL030", f"image {ref} is not in the archive", "images/"))
    if str(manifest.operator_image) not in images.images:
        findings.append(
            Finding("SOL032", f"operator image {manifest.operator_image} is missing", "images/")
        )
    for ref in sorted(set(images.images) - listed):
        try:
            parse_image_ref(ref)
        except ManifestError:
            findings.append(Finding("SOL033", f"{ref!r} is not a name:tag reference", "images/"))
            continue
        findings.append(Finding("SOL034", f"image {ref} is not listed in spec.images", "images/"))
    return images, findings


def hash_files(
    source: FileSource, paths: list[str], progress: ProgressCallback | None = None
) -> dict[str, str]:
    """``{path: sha256 hex}`` of ``paths``, streamed, on two threads."""
    files = source.files()
    total = sum(files[p].size for p in paths)
    done = 0
    lock = threading.Lock()

    def step(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            if progress is not None:
                progress(ProgressEvent("hash", done, total))

    def one(path: str) -> tuple[str, str]:
        with source.open(path) as stream:
            hexdigest, size = sha256_stream(stream, step)
        if size != files[path].size:
            raise ArchiveError(f"{source.label}: {path} is truncated")
        return path, hexdigest

    ordered = sorted(paths, key=lambda p: -files[p].size)
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return dict(pool.map(one, ordered))


def _check_integrity(
    source: FileSource,
    images: ImageSet,
    policy: Policy,
    progress: ProgressCallback | None,
    *,
    archive: bool,
) -> tuple[list[Finding], bytes | None]:
    files = source.files()
    findings: list[Finding] = []
    sums_bytes: bytes | None = None
    sums: dict[str, str] | None = None
    if SUMS_PATH in files:
        try:
            sums_bytes = read_limited(source, SUMS_PATH, 32 * 1024 * 1024)
            sums = parse_sums(sums_bytes, source.label)
        except ArchiveError as err:
            findings.append(Finding("SOL070", str(err).removeprefix("SOL070 "), SUMS_PATH))
    elif archive and policy is not Policy.DISABLED:
        severity = Severity.ERROR if policy is Policy.REQUIRED else Severity.WARNING
        findings.append(
            Finding(
                "SOL070", "SHA256SUMS is missing: integrity cannot be verified", SUMS_PATH, severity
            )
        )
    covered = [p for p in files if is_covered(p)]
    if sums is not None:
        findings.extend(
            Finding("SOL072", "not listed in SHA256SUMS: added after signing?", p)
            for p in sorted(covered)
            if p not in sums
        )
        findings.extend(
            Finding("SOL073", "listed in SHA256SUMS but missing from the archive", p)
            for p in sorted(sums)
            if p not in files
        )
    to_hash = [p for p in covered if (sums is not None and p in sums) or p in images.expected]
    digests = hash_files(source, to_hash, progress)
    for path in sorted(digests):
        if sums is not None and path in sums and sums[path] != digests[path]:
            findings.append(
                Finding(
                    "SOL071",
                    "does not match its SHA256SUMS checksum: the file is corrupt or was "
                    "modified — obtain a fresh copy",
                    path,
                )
            )
        expected = images.expected.get(path)
        if expected is not None and expected != digests[path]:
            findings.append(
                Finding("SOL031", f"does not match its digest sha256:{expected[:12]}…", path)
            )
    return findings, sums_bytes


def _read_blob(source: FileSource, hexdigest: str, size: int) -> bytes:
    data = read_limited(source, f"images/blobs/sha256/{hexdigest}", size)
    if len(data) != size or hashlib.sha256(data).hexdigest() != hexdigest:
        raise ValueError(f"blob sha256:{hexdigest[:12]}… does not match its digest")
    return data


def check_image_signatures(
    source: FileSource, images: ImageSet, trusted: Mapping[str, PublicKey], *, signed: bool
) -> list[Finding]:
    """SOL083/SOL084: the cosign signature image of every image (``<name>:sha256-<hex>.sig``).

    A malformed signature image, or one whose payload names another manifest, is an error
    under every policy.  An image without a signature by a trusted key is a warning (SOL084):
    the archive's own signature (SOL080) vouches for every image manifest already; image
    signatures are what cosign checks downstream.  Images of an unsigned archive get no SOL084
    (SOL080 says it), nor are signatures checked when no key is trusted (SOL082 says it).
    """
    findings: list[Finding] = []
    unsigned: list[str] = []
    untrusted: list[str] = []
    for ref, image in sorted(images.images.items()):
        name = ref.rpartition(":")[0]
        sig_ref = f"{name}:{signature_tag(image.digest)}"
        info = images.signatures.get(sig_ref)
        if info is None:
            unsigned.append(ref)
            continue
        if not trusted:
            continue
        path = f"images/blobs/sha256/{info.digest.removeprefix('sha256:')}"
        try:
            manifest = read_limited(source, path, 64 * 1024)
        except ArchiveError as err:
            findings.append(Finding("SOL083", f"{sig_ref}: {err}", path))
            continue
        check = check_signature_image(
            manifest, lambda h, n: _read_blob(source, h, n), image.digest, trusted
        )
        findings.extend(Finding("SOL083", f"{sig_ref}: {p}", path) for p in check.problems)
        if not check.valid and not check.problems:
            untrusted.append(ref)
    listed = {f"{r.rpartition(':')[0]}:{signature_tag(i.digest)}" for r, i in images.images.items()}
    for ref in sorted(set(images.signatures) - listed):
        findings.append(
            Finding(
                "SOL083",
                f"{ref} signs {signed_digest(ref.rpartition(':')[2])}, which is no image of "
                "the archive under that name",
                "images/index.json",
            )
        )
    if unsigned and signed:
        findings.append(
            Finding(
                "SOL084",
                f"{len(unsigned)} image(s) carry no cosign signature ({', '.join(unsigned)}): "
                "the archive was built before image signatures; rebuild it to verify images "
                "with cosign",
                "images/index.json",
            )
        )
    if untrusted:
        findings.append(
            Finding(
                "SOL084",
                f"{len(untrusted)} image(s) are signed only by keys not trusted here "
                f"({', '.join(untrusted)})",
                "images/index.json",
            )
        )
    return findings


def check_source(
    source: FileSource,
    *,
    trusted: Mapping[str, PublicKey],
    policy: Policy,
    progress: ProgressCallback | None = None,
    archive: bool = True,
    verify_content: bool = True,
) -> CheckReport:
    """Run every rule; ``archive=False`` for source trees (no checksum/signature rules)."""
    layout, findings = check_layout(source)
    manifest: SolutionManifest | None = None
    product: ProductSolution | None = None
    if is_product_archive(source.files()):  # MetalK8s 2.4: read as the manifest it stands for
        product, product_findings = load_product_solution(source)
        findings.extend(product_findings)
        manifest = product.manifest if product is not None else None
    elif "manifest.yaml" not in source.files():
        findings.append(Finding("SOL010", "manifest.yaml is missing", "manifest.yaml"))
    else:
        try:
            data = read_limited(source, "manifest.yaml", 256 * 1024)
        except ArchiveError as err:
            findings.append(Finding("SOL010", str(err), "manifest.yaml"))
        else:
            tree = docker_dir_images(source.files()) if layout is Layout.METALK8S else None
            manifest, manifest_findings = load_manifest(data, archive_images=tree)
            findings.extend(manifest_findings)
    images, image_findings = _check_images(source, layout, manifest)
    findings.extend(image_findings)
    report = CheckReport(layout, manifest, images, findings)
    if verify_content:
        integrity, sums_bytes = _check_integrity(source, images, policy, progress, archive=archive)
        findings.extend(integrity)
        if sums_bytes is not None:
            report.sums_digest = sums_digest(sums_bytes)
        if archive:
            signatures = {
                p: read_limited(source, p, MAX_SIGNATURE_BYTES)
                for p in sorted(source.files())
                if p.startswith("signatures/")
            }
            report.signatures = check_signatures(sums_bytes, signatures, trusted, policy)
            findings.extend(report.signatures.findings)
            if layout is Layout.OCI and policy is not Policy.DISABLED:
                findings.extend(
                    check_image_signatures(source, images, trusted, signed=bool(signatures))
                )
    # The files that the archive's content rules parse come after the checksums and signatures
    # that vouch for them: a parser meets no file before its integrity has been checked.
    findings.extend(_check_deploy(source, manifest, product))
    findings.extend(_check_monitoring(source, manifest))
    if layout is Layout.METALK8S:
        findings[:] = for_metalk8s(findings)
    findings.sort(key=lambda f: (f.level is not Severity.ERROR, f.rule, f.path))
    return report


def validate(options: ValidateOptions) -> ValidateResult:
    """Validate ``options.path``; an unreadable archive is an invalid one (SOL001)."""
    trusted = trusted_keys(options.keys, options.trusted_pems)
    policy = options.policy or default_policy(trusted)
    try:
        source, kind = open_source(options.path)
    except ManifestError:
        # A source tree is planned from its manifest, which stops at the first problem: report
        # every problem of the manifest instead (the rest cannot be checked without it).
        manifest_path = options.path / "manifest.yaml"
        _, found = load_manifest(manifest_path.read_bytes()[: 256 * 1024 + 1], str(manifest_path))
        found.sort(key=lambda f: (f.level is not Severity.ERROR, f.rule, f.path))
        report = CheckReport(Layout.OCI, None, ImageSet(), found)
        return ValidateResult(options.path, "source", policy, report)
    except ArchiveError as err:
        if "SOL001" not in str(err) and "SOL02" not in str(err):
            raise
        rule = "SOL001" if "SOL001" in str(err) else str(err).split()[0]
        text = err.message.removeprefix(f"{rule} ")  # the finding prints its rule itself
        report = CheckReport(Layout.OCI, None, ImageSet(), [Finding(rule, text)])
        return ValidateResult(options.path, "iso", policy, report)
    try:
        report = check_source(
            source,
            trusted=trusted,
            policy=policy,
            progress=options.progress,
            archive=kind != "source",
        )
    except SolutionsError:
        raise
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return ValidateResult(options.path, kind, policy, report)
