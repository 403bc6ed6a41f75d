"""SolutionsConfiguration: the desired state of the admin node, and our settings beside it.

The MetalK8s format has two keys, ``archives`` (absolute paths of ISO files) and ``active``
(solution name -> version or ``latest``).  Our settings live in extra top-level keys that
MetalK8s ignores: ``registry`` (how images reach the cluster), ``trust`` (keys and policy),
``ingress`` (how Solution UIs are exposed) and ``pins`` (what each imported archive held when it
was verified, :mod:`.pin`).
Every other key, and every unknown key inside ours, is preserved when the file is rewritten: the
model keeps the parsed document and edits it in place.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.versions import version_problem
from metalk8s_solutions.api.yamldoc import load_yaml_document
from metalk8s_solutions.errors import InvalidInput, Refused, command

API_VERSION = "solutions.metalk8s.scality.com/v1alpha1"
KIND = "SolutionsConfiguration"
LATEST = "latest"
MAX_CONFIG_BYTES = 1024 * 1024


class RegistryMode(enum.StrEnum):
    """How imported images reach the cluster."""

    BUILTIN = "builtin"  # `solutions registry serve` serves them straight from the ISO files
    PUSH = "push"  # they are copied into an existing registry


class Policy(enum.StrEnum):
    """How much authenticity material an archive must carry (docs/decisions/0002)."""

    REQUIRED = "required"  # a valid signature by a trusted key, and checksums, must be there
    IF_SIGNED = "if-signed"  # missing signatures or checksums are warnings
    DISABLED = "disabled"  # signatures are not looked at (checksums still are, when present)


_STRICTNESS = {Policy.DISABLED: 0, Policy.IF_SIGNED: 1, Policy.REQUIRED: 2}


def allowed_policies(site: Policy) -> list[Policy]:
    """The policies a request may ask for under the site's policy: it and the stricter ones."""
    return [p for p in Policy if _STRICTNESS[p] >= _STRICTNESS[site]]


def request_policy(site: Policy, requested: Policy | None) -> Policy:
    """The policy a request runs under: the site's ``trust.policy`` is a floor.

    A request (``--policy``, the web form or API) may keep it or make it stricter; lowering it
    is an administrator's change of the configuration file, never a request parameter.
    """
    if requested is None:
        return site
    if _STRICTNESS[requested] < _STRICTNESS[site]:
        raise Refused(
            f"signature policy '{requested}' is lower than the site's trust.policy '{site}': a "
            "request may only keep or raise it",
            hint=f"import under '{site}' (or stricter); lowering it is a change of trust.policy "
            "in SolutionsConfiguration by its administrator",
        )
    return requested


@dataclass(frozen=True)
class RegistrySettings:
    """The ``registry`` key.

    ``endpoint`` is what nodes pull from (``host[:port][/path]``); images of solution version
    ``<id>`` are at ``<endpoint>/<id>/<image>``.  ``listen`` is where the built-in registry
    binds.  In push mode, images are pushed to ``push_url`` (``https://host[:port]``) under
    ``<push_prefix>/<id>/<image>``.  ``auth_htpasswd`` makes the built-in registry ask readers
    to log in; without it, a non-loopback ``listen`` needs ``insecure_public``.
    """

    mode: RegistryMode = RegistryMode.BUILTIN
    endpoint: str = "127.0.0.1:5000"
    listen: str = "127.0.0.1:5000"
    tls_cert: str | None = None
    tls_key: str | None = None
    push_url: str | None = None
    push_prefix: str = ""
    ca_file: str | None = None
    insecure: bool = False
    username: str | None = None
    password_file: str | None = None
    auth_htpasswd: str | None = None
    insecure_public: bool = False


@dataclass(frozen=True)
class TrustSettings:
    """The ``trust`` key: public keys of trusted signers and the verification policy."""

    keys: tuple[str, ...] = ()
    policy: Policy | None = None  # None: ``required`` when keys are set, else ``if-signed``

    def effective_policy(self) -> Policy:
        if self.policy is not None:
            return self.policy
        return Policy.REQUIRED if self.keys else Policy.IF_SIGNED


@dataclass(frozen=True)
class IngressSettings:
    """The ``ingress`` key: how the UIs of Solutions get an Ingress in each environment.

    ``class_name`` None: the cluster's default IngressClass (or its only one); ``host`` None:
    every host; ``tls_secret``: a Secret (in each environment namespace) for HTTPS.
    """

    enabled: bool = True
    class_name: str | None = None
    host: str | None = None
    tls_secret: str | None = None


@dataclass(frozen=True)
class SolutionsConfiguration:
    """A parsed SolutionsConfiguration; ``document`` is the whole file, extras included."""

    archives: tuple[str, ...] = ()
    active: Mapping[str, str] = field(default_factory=dict)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    ingress: IngressSettings = field(default_factory=IngressSettings)
    #: archive path -> its pin (written by import; archives listed by hand have none)
    pins: Mapping[str, Pin] = field(default_factory=dict)
    document: Mapping[str, Any] = field(default_factory=dict)

    # -- edits (each returns a new configuration; the document keeps unknown keys) ---------

    def _with(self, **changes: Any) -> SolutionsConfiguration:
        doc = copy.deepcopy(dict(self.document)) or {"apiVersion": API_VERSION, "kind": KIND}
        archives = changes.get("archives", self.archives)
        active = changes.get("active", self.active)
        pins = {a: p for a, p in changes.get("pins", self.pins).items() if a in archives}
        doc["archives"] = list(archives)
        doc["active"] = dict(active)
        if pins:
            doc["pins"] = {a: pins[a].to_json() for a in archives if a in pins}
        else:
            doc.pop("pins", None)
        return SolutionsConfiguration(
            archives=tuple(archives),
            active=dict(active),
            registry=self.registry,
            trust=self.trust,
            ingress=self.ingress,
            pins=pins,
            document=doc,
        )

    def with_archive(self, path: str) -> SolutionsConfiguration:
        if path in self.archives:
            return self
        return self._with(archives=(*self.archives, path))

    def without_archive(self, path: str) -> SolutionsConfiguration:
        return self._with(archives=tuple(a for a in self.archives if a != path))

    def with_pins(self, pins: Mapping[str, Pin]) -> SolutionsConfiguration:
        """Pins added for listed archives that have none (a pin is never replaced)."""
        added = {a: p for a, p in pins.items() if a in self.archives and a not in self.pins}
        if not added:
            return self
        return self._with(pins={**self.pins, **added})

    def with_active(self, name: str, version: str) -> SolutionsConfiguration:
        return self._with(active={**self.active, name: version})

    def without_active(self, name: str) -> SolutionsConfiguration:
        return self._with(active={k: v for k, v in self.active.items() if k != name})

    def to_yaml(self, previous: str | None = None) -> str:
        """The file's text.  With ``previous`` (the text this configuration was read from),
        only the keys the verbs own (``archives``, ``active``, ``pins``) are rewritten there:
        comments, order, quoting and every other key stay as the administrator wrote them."""
        doc = dict(self._with().document)
        if previous and "#" in previous:  # comments to keep (else the plain dump is faster)
            kept = _edit_in_place(previous, {k: doc.get(k) for k in EDITED_KEYS})
            if kept is not None:
                return kept
        ordered = {"apiVersion": API_VERSION, "kind": KIND}
        ordered.update({k: v for k, v in doc.items() if k not in ordered})
        import yaml  # noqa: PLC0415

        return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


#: the top-level keys that commands rewrite; everything else in the file is the administrator's
EDITED_KEYS = ("archives", "active", "pins")


def _sync(node: Any, value: Any) -> Any:
    """``value`` written into the round-trip ``node`` in place where it can be: unchanged list
    items and mapping entries keep their comments; the rest is replaced."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # noqa: PLC0415

    if isinstance(node, CommentedMap) and isinstance(value, dict):
        for key in [k for k in node if k not in value]:
            del node[key]
        for key, item in value.items():
            node[key] = _sync(node[key], item) if key in node else item
        return node
    if isinstance(node, CommentedSeq) and isinstance(value, list):
        for index in reversed(range(len(node))):
            if node[index] not in value:
                del node[index]
        for item in value:
            if item not in node:
                node.append(item)
        if list(node) != value:  # the order changed: rebuild it (comments of items are lost)
            return value
        return node
    return value if node != value else node


def _edit_in_place(previous: str, values: Mapping[str, Any]) -> str | None:
    """``previous`` with the top-level ``values`` set (None: the key removed), or None when the
    text cannot be edited in place (the caller then writes the whole file anew)."""
    import io  # noqa: PLC0415

    from ruamel.yaml import YAML  # noqa: PLC0415
    from ruamel.yaml.comments import CommentedMap  # noqa: PLC0415
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    try:
        doc = rt.load(previous)
    except YAMLError:
        return None
    if not isinstance(doc, CommentedMap):
        return None
    for key, value in values.items():
        if value is None or (value == {} and key == "pins"):
            doc.pop(key, None)
        elif key in doc:
            doc[key] = _sync(doc[key], value)
        else:
            doc[key] = value
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def _fail(source: str, message: str) -> InvalidInput:
    return InvalidInput(f"{source}: {message}", hint="fix the file and run the command again")


def _str_list(value: object, source: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, f"'{key}' must be a list of non-empty strings")
    return tuple(value)


#: registry key -> RegistrySettings attribute
_REGISTRY_KEYS = {
    "mode": "mode",
    "endpoint": "endpoint",
    "listen": "listen",
    "tlsCert": "tls_cert",
    "tlsKey": "tls_key",
    "pushUrl": "push_url",
    "pushPrefix": "push_prefix",
    "caFile": "ca_file",
    "insecure": "insecure",
    "username": "username",
    "passwordFile": "password_file",
    "authHtpasswd": "auth_htpasswd",
    "insecurePublic": "insecure_public",
}


def _registry(value: object, source: str) -> RegistrySettings:
    if value is None:
        return RegistrySettings()
    if not isinstance(value, dict):
        raise _fail(source, "'registry' must be a mapping")
    kwargs: dict[str, Any] = {}
    for key, attr in _REGISTRY_KEYS.items():
        if key not in value or value[key] is None:
            continue
        item = value[key]
        if attr in ("insecure", "insecure_public"):
            if not isinstance(item, bool):
                raise _fail(source, f"'registry.{key}' must be true or false")
            kwargs[attr] = item
        elif not isinstance(item, str):
            raise _fail(source, f"'registry.{key}' must be a string")
        else:
            kwargs[attr] = item
    if "mode" in kwargs:
        try:
            kwargs["mode"] = RegistryMode(kwargs["mode"])
        except ValueError:
            modes = ", ".join(m.value for m in RegistryMode)
            raise _fail(source, f"'registry.mode' must be one of {modes}") from None
    settings = RegistrySettings(**kwargs)
    if settings.mode is RegistryMode.PUSH and not settings.push_url:
        raise _fail(source, "'registry.pushUrl' is required when 'registry.mode' is push")
    return settings


def _trust(value: object, source: str) -> TrustSettings:
    if value is None:
        return TrustSettings()
    if not isinstance(value, dict):
        raise _fail(source, "'trust' must be a mapping")
    keys = _str_list(value.get("keys"), source, "trust.keys")
    policy = value.get("policy")
    if policy is None:
        return TrustSettings(keys=keys)
    try:
        return TrustSettings(keys=keys, policy=Policy(policy))
    except ValueError:
        policies = ", ".join(p.value for p in Policy)
        raise _fail(source, f"'trust.policy' must be one of {policies}") from None


_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _ingress(value: object, source: str) -> IngressSettings:
    if value is None:
        return IngressSettings()
    if not isinstance(value, dict):
        raise _fail(source, "'ingress' must be a mapping")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(source, "'ingress.enabled' must be true or false")
    texts: dict[str, str | None] = {}
    for key in ("className", "host", "tlsSecret"):
        item = value.get(key)
        if item is not None and (not isinstance(item, str) or not item):
            raise _fail(source, f"'ingress.{key}' must be a non-empty string")
        texts[key] = item
    host = texts["host"]
    if host is not None and not _HOST.match(host):
        raise _fail(source, f"'ingress.host' {host!r} is not a DNS name (e.g. apps.example.com)")
    return IngressSettings(enabled, texts["className"], host, texts["tlsSecret"])


def _pins(value: object, source: str) -> dict[str, Pin]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, "'pins' must map archive paths to pins")
    pins: dict[str, Pin] = {}
    for path, data in value.items():
        pin = Pin.from_json(data)
        if not isinstance(path, str) or pin is None:
            raise _fail(
                source,
                f"'pins' entry {path!r} is not a pin {{id, sha256sums|file: sha256:<hex>, "
                f"signer}}; '{command('import', '<archive>')}' writes it: restore it, or remove it "
                "(the cluster record keeps its own copy)",
            )
        pins[path] = pin
    return pins


#: the keys this program reads, per section ("" is the top level); any other key is kept as it
#: is (MetalK8s tools share the file) and reported only when it looks like a typo of one of these
KNOWN_KEYS: Mapping[str, tuple[str, ...]] = {
    "": ("apiVersion", "kind", "archives", "active", "registry", "trust", "ingress", "pins"),
    "registry": tuple(_REGISTRY_KEYS),
    "trust": ("keys", "policy"),
    "ingress": ("enabled", "className", "host", "tlsSecret"),
}


def parse_config(data: bytes, source: str) -> SolutionsConfiguration:
    """Parse and check a SolutionsConfiguration; errors name the file and the key."""
    if not data.strip():
        return SolutionsConfiguration()
    try:
        doc = load_yaml_document(data, source, max_bytes=MAX_CONFIG_BYTES)
    except Exception as err:  # the loader reports size, depth and syntax problems
        raise _fail(source, f"not valid YAML ({err})") from err
    if doc is None:
        return SolutionsConfiguration()
    if not isinstance(doc, dict):
        raise _fail(source, "must be a YAML mapping")
    if doc.get("kind", KIND) != KIND:
        raise _fail(source, f"kind must be {KIND}, not {doc.get('kind')!r}")
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise _fail(source, f"apiVersion must be {API_VERSION}, not {doc.get('apiVersion')!r}")
    archives = _str_list(doc.get("archives"), source, "archives")
    for archive in archives:
        if not archive.startswith("/"):
            raise _fail(source, f"archive path {archive!r} must be absolute")
    active_raw = doc.get("active") or {}
    if not isinstance(active_raw, dict):
        raise _fail(source, "'active' must map solution names to versions")
    active: dict[str, str] = {}
    for name, version in active_raw.items():
        # A number is refused, not converted: YAML reads 2.10 as 2.1 (version_problem says to
        # quote it), as in the manifest.
        text = version
        if not isinstance(name, str) or not isinstance(text, str | int | float):
            raise _fail(source, "'active' must map solution names to versions")
        problem = None if text == LATEST else version_problem(text)
        if problem or not isinstance(text, str):
            raise _fail(source, f"active version of {name}: {problem} (or use '{LATEST}')")
        active[name] = text
    return SolutionsConfiguration(
        archives=archives,
        active=active,
        registry=_registry(doc.get("registry"), source),
        trust=_trust(doc.get("trust"), source),
        ingress=_ingress(doc.get("ingress"), source),
        pins=_pins(doc.get("pins"), source),
        document=doc,
    )
