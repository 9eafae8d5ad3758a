"""What the pipeline's steps run from on AWS: `python -m orchestration.package image|glue`.

- `image` (`make image-context`) fills `dist/pipeline-image/`, the build context of
  `infra/docker/pipeline.Dockerfile`: `site/` holds our wheel installed with its whole
  dependency tree as manylinux aarch64 wheels for CPython 3.12 (Amazon Linux 2023, as the
  API's zip), every version held to constraints.txt. The pipeline Lambda and the Batch job
  run that image.
- `glue` (`make glue-artifacts`) fills `dist/glue/`: our wheel, and `modules.txt`, the pinned
  runtime dependencies the Glue job installs beside it (`--additional-python-modules`), so a
  Glue run uses the versions the tests use, not Glue's own.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serving.package import PLATFORMS, PYTHON_VERSION, ROOT, _pins

DOCKERFILE: Final = ROOT / "infra" / "docker" / "pipeline.Dockerfile"
DISTRIBUTION: Final = "recs"


def _pip(*args: str) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
        check=True,
    )


def build_wheel(out: Path) -> Path:
    """Our own wheel (pure Python, no dependencies bundled) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{DISTRIBUTION}-*.whl"):
        old.unlink()
    # setuptools keeps build/ between runs and never removes a deleted module from it.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT))
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    [wheel] = out.glob(f"{DISTRIBUTION}-*.whl")
    return wheel


def runtime_pins(constraints: Path = ROOT / "constraints.txt") -> list[str]:
    """`name==version` of every package our runtime dependencies pull in, on this platform
    (Linux x86-64, CPython 3.11, as Glue 5.0), each at its constraints.txt version."""
    pins = _pins(constraints)
    seen: set[str] = set()
    waiting = list(metadata.requires(DISTRIBUTION) or [])
    while waiting:
        requirement = Requirement(waiting.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (dev), or another platform's
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        waiting.extend(metadata.requires(name) or [])
    missing = sorted(seen - set(pins))
    if missing:
        raise SystemExit(f"constraints.txt pins no version of {', '.join(missing)}")
    return sorted(f"{name}=={pins[name]}" for name in seen)


def build_glue(out: Path) -> tuple[Path, list[str]]:
    """The Glue job's wheel and modules.txt in `out`."""
    wheel = build_wheel(out)
    modules = runtime_pins()
    (out / "modules.txt").write_text("\n".join(modules) + "\n")
    return wheel, modules


def build_image_context(out: Path, constraints: Path = ROOT / "constraints.txt") -> int:
    """The image's build context in `out`; returns the size of `site/` in bytes."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="recs-image-") as folder:
        wheel = build_wheel(Path(folder))
        _pip(
            "install", "--only-binary=:all:",
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--implementation", "cp", "--python-version", PYTHON_VERSION,
            "--constraint", str(constraints), "--target", str(out / "site"), str(wheel),
        )  # fmt: skip
    shutil.rmtree(out / "site" / "bin", ignore_errors=True)  # console scripts for the host
    shutil.copy(DOCKERFILE, out / "Dockerfile")
    return sum(p.stat().st_size for p in (out / "site").rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    """Build one of the two, and say what was built."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("what", choices=("image", "glue"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.what == "image":
        out = args.out or ROOT / "dist" / "pipeline-image"
        size = build_image_context(out)
        print(
            f"{out}: build context of infra/docker/pipeline.Dockerfile, site/ "
            f"{size / 2**20:.0f} MiB (linux/arm64, CPython {PYTHON_VERSION})"
        )
    else:
        out = args.out or ROOT / "dist" / "glue"
        wheel, modules = build_glue(out)
        print(f"{out}: {wheel.name} and modules.txt ({len(modules)} pinned packages)")


if __name__ == "__main__":
    main()
