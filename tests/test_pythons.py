"""Every Python the project supports, where the machine has it: the package installs and imports,
and the service starts on the bundled model, answers /ready and encodes a real photo.

The running interpreter is tried as it is. Another one (python3.12 on PATH or in pyenv, say) gets a virtual
environment of its own under FACEEDIT_PYTHONS_CACHE (default ~/.cache/faceedit/pythons), made with
constraints.txt once per list of dependencies and constraints (PyPI's torch for 3.12+ is the CUDA
build: a few GB, once) and given this checkout with `pip install --no-deps .` on every run. A
Python the machine lacks is skipped, by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.request
import uuid
from pathlib import Path

import pytest

from app.serve import ROOT, start_server

SUPPORTED = ("3.11", "3.12", "3.13")
CHECKPOINT = ROOT / "checkpoints" / "celeba64"
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def _interpreter(version: str) -> str | None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}"), *map(str, sorted(pyenv.glob(f"{version}.*/bin/python{version}")))]
    for found in filter(None, candidates):
        # a pyenv shim for a version that is not the selected one fails here
        if subprocess.run([found, "-c", "import venv"], capture_output=True).returncode == 0:
            return found
    return None


def _environment(version: str, python: str) -> str:
    """The interpreter of a virtual environment for `python` with the project installed from ROOT."""
    if python == sys.executable:
        return python
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = (ROOT / "constraints.txt").read_text()
    key = hashlib.sha256(json.dumps([project["dependencies"], pins]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("FACEEDIT_PYTHONS_CACHE", Path.home() / ".cache" / "faceedit" / "pythons"))
    venv = cache / f"py{version}-{key}"
    bin_python = str(venv / "bin" / "python")
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [bin_python, "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(ROOT)]
        subprocess.run(pip, check=True, timeout=3600)
        (venv / ".installed").touch()
    subprocess.run([bin_python, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)], check=True, timeout=600)
    return bin_python


def _post_photo(url: str, path: Path) -> dict[str, object]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", SUPPORTED)
def test_installs_imports_and_serves(version: str, tmp_path: Path) -> None:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"python{version} is not installed on this machine")
    if not SHARED_PHOTOS.is_dir():
        pytest.skip("../shared/data/photos is not beside the project")
    env_python = _environment(version, python)
    imported = subprocess.run(  # from elsewhere than the checkout: the installed package
        [env_python, "-c", "import sys, app.main, worker.pipeline.faces, training; print(sys.version_info[:2])"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == str(tuple(int(p) for p in version.split(".")))

    proc, url = start_server({"FACEEDIT_CHECKPOINT": str(CHECKPOINT)}, python=env_python)
    try:
        with urllib.request.urlopen(url + "/ready", timeout=30) as answer:
            assert json.loads(answer.read())["ready"] is True
        encoded = _post_photo(url + "/encode?refine=false", SHARED_PHOTOS / "astronaut.png")
        assert encoded["faces_found"] == 1 and encoded["latent_id"]
    finally:
        proc.terminate()
        proc.wait(30)
