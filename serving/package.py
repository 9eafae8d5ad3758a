"""`make package`: the API's Lambda zip for ARM64 (Graviton), the python3.12 runtime.

pip fetches the manylinux aarch64 wheels of exactly what the serving path imports, at the
versions constraints.txt pins; our own packages are copied beside them. boto3 and botocore
come with the Lambda runtime and are left out. Test folders are pruned, and the build fails
if the zip is not under Lambda's 50 MB limit for a direct upload.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
#: What `serving.handler` imports beyond the standard library and the runtime's boto3.
REQUIREMENTS: Final = (
    "numpy",
    "orjson",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "pydantic-settings",
    "python-dotenv",
    "aws-lambda-powertools",
    "jmespath",
    "aws-xray-sdk",
    "wrapt",
    "threadpoolctl",  # one BLAS thread per instance (serving.threads)
)
#: The Lambda runtime: python3.12 runs on Amazon Linux 2023 (glibc 2.34), which takes the
#: manylinux_2_28 wheels of the very numpy the tests run (constraints.txt). python3.11 runs
#: on Amazon Linux 2 (glibc 2.26), where the newest numpy with a fitting wheel is 2.2.6: the
#: Lambda would have run another numpy than the one tested.
RUNTIME: Final = "python3.12"
PYTHON_VERSION: Final = "3.12"
PLATFORMS: Final = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
SOURCES: Final = ("common", "ingestion", "training", "serving")
LIMIT_BYTES: Final = 50 * 1024 * 1024
HANDLER: Final = "serving.handler.handler"
_PRUNE_DIRS: Final = {"tests", "__pycache__", "testing"}


def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def build(out: Path, constraints: Path = ROOT / "constraints.txt") -> int:
    """Build the zip at `out`; returns its size in bytes."""
    pins = _pins(constraints)
    missing = [name for name in REQUIREMENTS if name not in pins]
    if missing:
        raise SystemExit(f"constraints.txt pins no version of {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="recs-package-") as folder:
        target = Path(folder) / "package"
        subprocess.run(  # noqa: S603 - our own interpreter and pinned names
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:",
                *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
                "--implementation", "cp", "--python-version", PYTHON_VERSION,
                "--target", str(target),
                *(f"{name}=={pins[name]}" for name in REQUIREMENTS),
            ],
            check=True,
        )  # fmt: skip
        for source in SOURCES:
            shutil.copytree(
                ROOT / source,
                target / source,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "cli.py", "__main__.py"),
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in sorted(target.rglob("*")):
                relative = path.relative_to(target)
                if path.is_dir() or _PRUNE_DIRS & set(relative.parts):
                    continue
                info = zipfile.ZipInfo(str(relative), date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=9)
    size = out.stat().st_size
    if size >= LIMIT_BYTES:
        raise SystemExit(f"{out} is {size / 2**20:.1f} MiB; Lambda's limit is 50 MiB")
    return size


def main(argv: list[str] | None = None) -> None:
    """`python -m serving.package --out dist/recs-api-arm64.zip`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "recs-api-arm64.zip")
    args = parser.parse_args(argv)
    size = build(args.out)
    print(
        f"{args.out}: {size / 2**20:.1f} MiB (limit 50 MiB), handler {HANDLER}, "
        f"runtime {RUNTIME}, arm64"
    )


if __name__ == "__main__":
    main()
