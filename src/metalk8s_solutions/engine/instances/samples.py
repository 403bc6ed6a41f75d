"""The sample instances of an archive: operator-sdk's ``*_cr.yaml`` beside the CRDs.

Read from the ISO (checked against its pin), never applied: templates for new instances, in the
CLI (``instance create --from-sample``) and the web (a prefilled form).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import crd_samples
from metalk8s_solutions.archive.pinning import open_archive
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.errors import InvalidInput

MAX_SAMPLE_FILE = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One sample custom resource of an archive (operator-sdk's ``*_cr.yaml``)."""

    name: str
    kind: str
    api_version: str
    file: str
    document: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "apiVersion": self.api_version,
            "file": self.file,
            "spec": copy.deepcopy(self.document.get("spec")),
        }


def read_samples(archive: Path, pin: Pin | None = None) -> list[Sample]:
    """The sample custom resources of an archive, read from the ISO (checked against ``pin``).

    MetalK8s 1.0.x-era archives ship them beside the CRDs; they are never applied, only offered
    as templates for new instances. Documents without a kind are skipped; one without a name is
    named after its file.
    """
    samples: list[Sample] = []
    with open_archive(archive, pin) as iso:
        for path in crd_samples(iso.files()):
            docs = load_yaml_documents(
                read_limited(iso, path, MAX_SAMPLE_FILE), f"{archive.name}:{path}"
            )
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            for doc in docs:
                if not isinstance(doc, dict) or not doc.get("kind"):
                    continue
                meta = doc.get("metadata")
                meta = meta if isinstance(meta, dict) else {}
                name = str(meta.get("name") or stem)
                body = {k: copy.deepcopy(v) for k, v in doc.items() if k != "status"}
                # a sample's namespace is never kept: the instance goes where the solution runs
                body["metadata"] = {
                    "name": name,
                    **{k: copy.deepcopy(meta[k]) for k in ("labels", "annotations") if k in meta},
                }
                samples.append(
                    Sample(name, str(doc["kind"]), str(doc.get("apiVersion", "")), path, body)
                )
    return samples


def pick_sample(
    samples: Sequence[Sample], name: str, solution: str, version: str, hint: str = ""
) -> Sample:
    """The sample called ``name`` (its metadata.name, or KIND/NAME), else a clear refusal."""
    for sample in samples:
        if name in (sample.name, f"{sample.kind}/{sample.name}"):
            return sample
    names = [s.name for s in samples]
    listed = ", ".join(f"{s.kind}/{s.name}" for s in samples) or "none"
    raise InvalidInput(
        f"{solution} {version} has no sample {name!r} (its samples: {listed})"
        + did_you_mean(name, names),
        hint=hint,
    )
