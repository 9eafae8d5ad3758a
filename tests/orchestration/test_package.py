"""What the pipeline's steps run from on AWS: the Glue job's pinned modules and the image."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.package import DOCKERFILE, build_glue, build_image_context, runtime_pins
from serving.package import ROOT, _pins

#: What the steps and the remote entry point import on AWS. (awswrangler's own needs come
#: from its metadata; importing it here would also load the optional packages it finds in
#: this test venv, such as requests.)
STEP_MODULES = (
    "orchestration.remote", "orchestration.runner", "orchestration.steps", "etl.job",
    "etl.glue", "common.lake", "training.trainer", "serving.publish",
)  # fmt: skip
AARCH64 = 183  # ELF e_machine


def test_the_glue_modules_cover_every_package_the_steps_import(tmp_path: Path) -> None:
    wheel, modules = build_glue(tmp_path)
    assert wheel.name.startswith("recs-")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert (tmp_path / "modules.txt").read_text().split() == modules
    pins = _pins(ROOT / "constraints.txt")
    for line in modules:  # every version is the one the tests run
        name, version = line.split("==")
        assert pins[name] == version, line
    # Import what the steps import, in a fresh interpreter, and name each distribution.
    script = (
        "import importlib, json, sys\n"
        "from importlib import metadata\n"
        f"for m in {STEP_MODULES!r}: importlib.import_module(m)\n"
        "owners = metadata.packages_distributions()\n"
        # _distutils_hack: setuptools' .pth shim, loaded at start-up in any venv.
        "top = {n.split('.')[0] for n in sys.modules} - set(sys.stdlib_module_names)\n"
        "top.discard('_distutils_hack')\n"
        "print(json.dumps(sorted({d for t in top for d in owners.get(t, [])})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    imported = {re.sub(r"[-_.]+", "-", d).lower() for d in json.loads(done.stdout)}
    listed = {line.split("==")[0] for line in modules}
    assert imported - {"recs"} <= listed, f"Glue would lack {sorted(imported - listed - {'recs'})}"


def test_runtime_pins_leave_out_dev_tools() -> None:
    names = {line.split("==")[0] for line in runtime_pins()}
    assert {"awswrangler", "pandas", "pyarrow", "numpy", "scipy", "implicit"} <= names
    assert not names & {"pytest", "moto", "mypy", "ruff", "boto3-stubs"}


def test_the_image_builds_without_emulation_and_both_runners_find_their_entry() -> None:
    dockerfile = DOCKERFILE.read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line[:1].isupper()]
    assert "RUN" not in instructions, "a RUN step would need arm64 emulation on an x86 builder"
    assert "ENTRYPOINT []" in dockerfile  # Batch runs `python -m orchestration.remote`
    compute = (ROOT / "infra" / "terraform" / "compute.tf").read_text()
    assert 'entry_point = ["/lambda-entrypoint.sh"]' in compute
    assert 'command     = ["orchestration.handler.handler"]' in compute
    assert '"python", "-m", "orchestration.remote"' in compute


@pytest.mark.slow
def test_the_image_context_holds_aarch64_wheels_at_our_pins(tmp_path: Path) -> None:
    size = build_image_context(tmp_path / "context")
    site = tmp_path / "context" / "site"
    assert (tmp_path / "context" / "Dockerfile").read_text() == DOCKERFILE.read_text()
    assert (site / "orchestration" / "remote.py").exists()
    assert (site / "orchestration" / "handler.py").exists()
    pins = _pins(ROOT / "constraints.txt")
    assert (site / f"numpy-{pins['numpy']}.dist-info").exists()
    assert list(site.glob("numpy/_core/_multiarray_umath.cpython-312-aarch64-linux-gnu.so"))
    compiled = list(site.glob("implicit/**/*.so"))
    assert compiled
    for library in compiled:  # built for arm64, not for this machine
        assert int.from_bytes(library.read_bytes()[18:20], "little") == AARCH64, library
    assert size < 10 * 2**30  # Lambda's limit for an image
