"""Solution archives built the way upstream MetalK8s builds them, for each release layout.

The upstream example Solution (scality/metalk8s-solution-example) builds its ISO with make:
``skopeo copy --format v2s2 --dest-compress`` of each image into ``images/<name>/<version>/``
(skopeo's ``dir:`` transport), ``hardlink -c`` over ``images/``, an NGINX include
``registry-config.inc.j2`` generated from that tree by static-container-registry, the operator's
``deploy/`` files copied as they are, a ``manifest.yaml`` written by its ``manifest.py`` (image
entries ``name:tag`` de-duplicated through a Python ``set``, so in no fixed order, and one entry
``:VERSION`` for the UI image its Makefile never defines), and ``mkisofs`` with the Makefile's
flags.  :func:`build_upstream_archive` runs those same steps with the same tools (skopeo,
hardlink, xorriso's mkisofs emulation) on tiny images, so the tests read what MetalK8s users
really have — never this project's own builder.

Layouts (:data:`RELEASES`):

- ``1.0.1`` — operator-sdk 0.x: ``apiextensions.k8s.io/v1beta1`` CRDs with one top-level
  ``validation`` schema, named ``examplesolution_v1alpha1_<kind>_crd.yaml``, sample
  ``*_cr.yaml`` beside them, and ``operator.yaml``, ``role_binding.yaml``,
  ``service_account.yaml`` next to a ``Role`` in ``role.yaml``;
- ``1.0.3`` — the same deploy files, ``apiextensions.k8s.io/v1`` CRDs named
  ``<group>_<plural>_crd.yaml``;
- ``1.1.2-dev`` — kubebuilder: ``kustomize build -o`` CRD files renamed ``*_crd.yaml`` (names of
  108 to 110 characters), another API group, a ``role.yaml`` of ClusterRoles (manager, metrics-auth,
  metrics-reader, admin/editor/viewer per kind) and one Role, ``spec.operator.metrics``;
- ``defaults`` — a manifest with only ``metadata.name`` and ``spec.version`` (MetalK8s derives
  the rest), no ``role.yaml``;
- any other version string (e.g. ``1.1.2.1``) — the ``1.1.2-dev`` layout at that version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

from conftest import write_oci_layout

NAME = "example-solution"
DISPLAY_NAME = "Example Solution"
OPERATOR = f"{NAME}-operator"
OLD_GROUP = "example-solution.metalk8s.scality.com"
NEW_GROUP = "metalk8s-solution-example.scality.com"
SKOPEO_OPTS = ["--override-os", "linux", "--insecure-policy"]
MKISOFS_FLAGS = [
    "-quiet",
    "-rock",
    "-joliet",
    "-joliet-long",
    "-full-iso9660-filenames",
    "--iso-level",
    "3",
    "-gid",
    "0",
    "-uid",
    "0",
    "-input-charset",
    "iso8859-1",
    "-output-charset",
    "iso8859-1",
]
RELEASES = ("1.0.1", "1.0.3", "1.1.2-dev", "defaults")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    fields: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    sample: dict[str, Any]


KINDS = (
    Kind(
        "ClockServer",
        "clockservers",
        {"timezone": {"type": "string", "description": "Timezone shown by the clock"}},
        ("timezone",),
        {"timezone": "UTC+01:00"},
    ),
    Kind(
        "VersionServer",
        "versionservers",
        {
            "replicas": {"type": "integer", "format": "int32", "minimum": 1},
            "version": {"type": "string", "description": "Version of the image to run"},
        },
        ("replicas", "version"),
        {"version": "1.0.0", "replicas": 2},
    ),
)


@dataclass(frozen=True)
class UpstreamArchive:
    path: Path
    version: str
    layout: str
    #: the API group of its CRDs
    group: str
    #: the ISO's file tree (kept for the tests to read)
    root: Path


def layout_of(version: str) -> str:
    return version if version in RELEASES else "1.1.2-dev"


class _PlainDumper(yaml.SafeDumper):
    """kustomize, yq and operator-sdk never write YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(*docs: Any) -> str:
    return yaml.dump_all(list(docs), Dumper=_PlainDumper, default_flow_style=False)


def _tiny_layer(label: str) -> bytes:
    out = BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = f"{label}\n".encode()
        info = tarfile.TarInfo(f"opt/{label.replace(':', '-')}.txt")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, BytesIO(data))
    return out.getvalue()


def _save_image(work: Path, images_root: Path, name: str, tag: str) -> None:
    """``skopeo copy --format v2s2 --dest-compress … dir:images/<name>/<tag>``, as upstream."""
    oci = work / f"oci-{name}-{tag}"
    write_oci_layout(oci, [_tiny_layer("shared base"), _tiny_layer(f"{name}:{tag}")], tag)
    dest = images_root / name / tag
    dest.mkdir(parents=True)
    subprocess.run(
        [
            "skopeo",
            *SKOPEO_OPTS,
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--dest-compress",
            f"oci:{oci}:{tag}",
            f"dir:{dest}",
        ],
        check=True,
        capture_output=True,
    )


def _registry_config(images_root: Path) -> str:
    """The NGINX include static-container-registry generates (``--name-prefix '{{ repository }}'
    --server-root '{{ registry_root }}' --omit-constants``): tag lists, manifests by tag and by
    digest, blobs."""
    blocks: list[str] = []
    for image in sorted(p for p in images_root.iterdir() if p.is_dir()):
        tags = sorted(p.name for p in image.iterdir() if (p / "manifest.json").is_file())
        repo = f"/v2/{{{{ repository }}}}/{image.name}"
        blocks.append(
            f"location = {repo}/tags/list {{\n"
            '    types { } default_type "application/json";\n'
            f"    return 200 '{json.dumps({'name': image.name, 'tags': tags})}';\n}}\n"
        )
        for tag in tags:
            raw = (image / tag / "manifest.json").read_bytes()
            media = json.loads(raw)["mediaType"]
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            for ref in (tag, digest):
                blocks.append(
                    f'location = "{repo}/manifests/{ref}" {{\n'
                    f"    alias {{{{ registry_root }}}}/{image.name}/{tag}/;\n"
                    f'    types {{ }} default_type "{media}";\n'
                    f"    add_header 'Docker-Content-Digest' '{digest}';\n"
                    "    try_files manifest.json =404;\n"
                    "    error_page 404 @404_tag;\n}\n"
                )
        tries = " ".join(f"{tag}/$1" for tag in tags)
        blocks.append(
            f'location ~ "{repo}/blobs/sha256:([a-f0-9]{{64}})" {{\n'
            f"    alias {{{{ registry_root }}}}/{image.name}/;\n"
            f"    try_files {tries} =404;\n}}\n"
        )
    return "\n".join(blocks)


def _manifest(version: str, layout: str) -> dict[str, Any]:
    """What upstream's ``manifest.py`` writes (images through a ``set``: no fixed order)."""
    if layout == "defaults":
        return {
            "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
            "kind": "Solution",
            "metadata": {"name": NAME},
            "spec": {"version": version},
        }
    extra = [("base-server", version), ("", version)]  # "$(UI_IMG_NAME)" is never defined
    operator: dict[str, Any] = {"image": {"name": OPERATOR, "tag": version}}
    if layout not in ("1.0.1", "1.0.3"):
        operator["metrics"] = {"enabled": True}
    return {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "Solution",
        "metadata": {
            "name": NAME,
            "annotations": {
                "solutions.metalk8s.scality.com/build-host": "builder",
                "solutions.metalk8s.scality.com/build-timestamp": "2026-01-01T00:00:00Z",
                "solutions.metalk8s.scality.com/development-release": "0",
                "solutions.metalk8s.scality.com/display-name": DISPLAY_NAME,
                "solutions.metalk8s.scality.com/git-revision": f"{version}-0-g0000000",
            },
            "labels": {},
        },
        "spec": {
            "images": list({":".join(i) for i in [*extra, (OPERATOR, version)]}),
            "operator": operator,
            "version": version,
        },
    }


def _schema(kind: Kind) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": kind.fields,
                "required": list(kind.required),
            },
            "status": {"type": "object"},
        },
    }


def _crd_v1beta1(kind: Kind, group: str) -> dict[str, Any]:
    """operator-sdk 0.x output: one top-level ``validation``, ``version`` and ``versions``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1beta1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
            },
            "scope": "Namespaced",
            "subresources": {"status": {}},
            "validation": {"openAPIV3Schema": _schema(kind)},
            "version": "v1alpha1",
            "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
        },
    }


def _crd_v1(kind: Kind, group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _schema(kind)},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def _sample(kind: Kind, group: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1alpha1",
        "kind": kind.kind,
        "metadata": {"name": f"example-{kind.kind.lower()}"},
        "spec": kind.sample,
    }


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _old_deploy(deploy: Path, version: str, layout: str) -> None:
    """operator-sdk 0.x ``deploy/``: the Role, its binding, the account, the Deployment."""
    crds = deploy / "crds"
    crds.mkdir(parents=True)
    for kind in KINDS:
        if layout == "1.0.1":
            stem = f"examplesolution_v1alpha1_{kind.kind.lower()}"
            (crds / f"{stem}_crd.yaml").write_text(_dump(_crd_v1beta1(kind, OLD_GROUP)))
            (crds / f"{stem}_cr.yaml").write_text(_dump(_sample(kind, OLD_GROUP)))
        else:
            (crds / f"{OLD_GROUP}_{kind.plural}_crd.yaml").write_text(
                _dump(_crd_v1(kind, OLD_GROUP))
            )
            (crds / f"{OLD_GROUP}_{kind.kind.lower()}_cr.yaml").write_text(
                _dump(_sample(kind, OLD_GROUP))
            )
    all_verbs = ["*"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": OPERATOR},
        "rules": [
            _rule(
                [""],
                ["pods", "services", "endpoints", "persistentvolumeclaims", "events", "configmaps"],
                all_verbs,
            ),
            _rule(["apps"], ["deployments", "replicasets"], all_verbs),
            _rule(["monitoring.coreos.com"], ["servicemonitors"], ["get", "create"]),
            {
                "apiGroups": ["apps"],
                "resourceNames": [OPERATOR],
                "resources": ["deployments/finalizers"],
                "verbs": ["update"],
            },
            _rule([OLD_GROUP], ["*"], all_verbs),
        ],
    }
    (deploy / "role.yaml").write_text(_dump(role))
    (deploy / "role_binding.yaml").write_text(
        _dump(
            {
                "kind": "RoleBinding",
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": OPERATOR},
                "subjects": [{"kind": "ServiceAccount", "name": OPERATOR}],
                "roleRef": {
                    "kind": "Role",
                    "name": OPERATOR,
                    "apiGroup": "rbac.authorization.k8s.io",
                },
            }
        )
    )
    (deploy / "service_account.yaml").write_text(
        _dump({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": OPERATOR}})
    )
    labels = {"name": OPERATOR}
    (deploy / "operator.yaml").write_text(
        _dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": OPERATOR},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": OPERATOR,
                            "containers": [
                                {"name": OPERATOR, "image": "REPLACE_IMAGE", "command": [OPERATOR]}
                            ],
                        },
                    },
                },
            }
        )
    )


def _kubebuilder_deploy(deploy: Path) -> None:
    """kubebuilder ``deploy/``: kustomize-named CRDs and the ClusterRoles of config/rbac."""
    crds = deploy / "crds"
    crds.mkdir(parents=True)
    for kind in KINDS:
        name = (
            f"apiextensions.k8s.io_v1_customresourcedefinition_{kind.plural}.{NEW_GROUP}_crd.yaml"
        )
        (crds / name).write_text(_dump(_crd_v1(kind, NEW_GROUP)))
    crud = ["create", "delete", "get", "list", "patch", "update", "watch"]
    plurals = [k.plural for k in KINDS]

    def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        }

    docs: list[dict[str, Any]] = [
        cluster_role(
            "manager-role",
            [
                _rule([""], ["services"], crud),
                _rule(["apps"], ["deployments"], crud),
                _rule([NEW_GROUP], plurals, crud),
                _rule([NEW_GROUP], [f"{p}/finalizers" for p in plurals], ["update"]),
                _rule([NEW_GROUP], [f"{p}/status" for p in plurals], ["get", "patch", "update"]),
            ],
        ),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {
                "name": "leader-election-role",
                "labels": {"app.kubernetes.io/managed-by": "kustomize"},
            },
            "rules": [
                _rule([""], ["configmaps"], crud),
                _rule(["coordination.k8s.io"], ["leases"], crud),
                _rule([""], ["events"], ["create", "patch"]),
            ],
        },
        cluster_role(
            "metrics-auth-role",
            [
                _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
            ],
        ),
        cluster_role("metrics-reader", [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
    ]
    for kind in KINDS:
        k = kind.kind.lower()
        docs += [
            cluster_role(
                f"{k}-admin-role",
                [
                    _rule([NEW_GROUP], [kind.plural], ["*"]),
                    _rule([NEW_GROUP], [f"{kind.plural}/status"], ["get"]),
                ],
            ),
            cluster_role(
                f"{k}-editor-role",
                [
                    _rule([NEW_GROUP], [kind.plural], crud),
                    _rule([NEW_GROUP], [f"{kind.plural}/status"], ["get"]),
                ],
            ),
            cluster_role(
                f"{k}-viewer-role",
                [
                    _rule([NEW_GROUP], [kind.plural], ["get", "list", "watch"]),
                    _rule([NEW_GROUP], [f"{kind.plural}/status"], ["get"]),
                ],
            ),
        ]
    (deploy / "role.yaml").write_text(_dump(*docs))


def build_upstream_archive(work: Path, version: str, layout: str | None = None) -> UpstreamArchive:
    """Run upstream's build steps for ``version`` in ``work``; returns the ISO."""
    layout = layout or layout_of(version)
    root = work / f"root-{version}-{layout}"
    if root.exists():
        shutil.rmtree(root)
    images = root / "images"
    for name in ("base-server", OPERATOR):
        _save_image(work, images, name, version)
    subprocess.run(["hardlink", "-c", "-q", str(images)], check=True, capture_output=True)
    (root / "registry-config.inc.j2").write_text(_registry_config(images))
    deploy = root / "operator" / "deploy"
    if layout in ("1.0.1", "1.0.3"):
        _old_deploy(deploy, version, layout)
        group = OLD_GROUP
    else:
        _kubebuilder_deploy(deploy)
        group = NEW_GROUP
        if layout == "defaults":
            (deploy / "role.yaml").unlink()
    (root / "manifest.yaml").write_text(
        yaml.safe_dump(_manifest(version, layout), default_flow_style=False)
    )
    iso = work / f"{NAME}-{version}{'' if layout == layout_of(version) else '-' + layout}.iso"
    iso.unlink(missing_ok=True)
    subprocess.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-output",
            str(iso),
            *MKISOFS_FLAGS,
            "-volid",
            f"{DISPLAY_NAME} {version}",
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    return UpstreamArchive(iso, version, layout, group, root)
