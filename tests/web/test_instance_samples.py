"""Issue #17 item 1 in the web UI: the ``*_cr.yaml`` samples of a MetalK8s 1.0.x-era archive
(with its v1beta1 CRD, converted at activation) prefill the form of a new instance."""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

import pytest

from web.support import RunningUi, unique

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crd_v1beta1 import metalk8s_v1beta1_archive

pytestmark = pytest.mark.cluster

SOL = "websample"
GROUP = "websample.test.solutions"


def test_new_instance_form_prefilled_from_a_sample(
    ui_server: RunningUi, admin_token: str, tmp_path: Path
) -> None:
    archive = str(metalk8s_v1beta1_archive(tmp_path, SOL, GROUP, "web"))
    env = unique("smp")
    with ui_server.client(admin_token) as http:

        def ok(method: str, url: str, **kwargs: Any) -> Any:
            response = http.request(method, url, **kwargs)
            assert response.status_code in (200, 202), f"{method} {url}: {response.text}"
            return response

        ok("POST", "/api/solutions/import", json={"archives": [archive]})
        try:
            ok("POST", f"/api/solutions/{SOL}/activate", json={"version": "1.0.1"})
            ok("POST", "/api/environments", json={"name": env})
            ok(
                "POST",
                f"/api/environments/{env}/solutions",
                json={"solution": SOL, "version": "1.0.1"},
            )
            page = html.unescape(ok("GET", f"/environments/{env}/solutions/{SOL}/instances").text)
            link = f"/environments/{env}/solutions/{SOL}/new/Clock?sample=example-clock"
            assert link in page and "New Clock from example-clock" in page

            form = html.unescape(ok("GET", link).text)
            assert 'name="name" value="example-clock"' in form
            assert 'name="spec.colour" value="blue"' in form
            assert 'name="spec.count" value="3"' in form
            assert "colour: blue" in form  # the YAML view too
            assert f"namespace: {env}" in form

            missing = http.get(f"/environments/{env}/solutions/{SOL}/new/Clock?sample=nope")
            assert missing.status_code == 400
            assert "has no sample 'nope' (its samples: Clock/example-clock)" in (
                html.unescape(missing.text)
            )
        finally:
            http.post(f"/api/environments/{env}/delete", json={"confirm": env})
            http.post(f"/api/solutions/{SOL}/deactivate", json={"force": True})
            http.post("/api/solutions/unimport", json={"refs": [f"{SOL}-1.0.1"]})
