"""What the Lambda imports: nothing heavy, and nothing its zip leaves out.

A subprocess builds the handler's services from the environment and answers one request,
so lazy imports count too; then its third-party modules must all be in the package's
requirements (or the runtime's boto3).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from serving import package
from serving.package import REQUIREMENTS, ROOT, SOURCES

PROBE = """
import json, sys
from serving.handler import handler
from serving.idempotency import LocalRequestContext
event = json.load(open(sys.argv[1]))
response = handler(event, LocalRequestContext())
print(json.dumps({"status": response["statusCode"],
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""
#: The Lambda runtime's own packages: boto3 and what it pulls in (botocore uses
#: certifi when it is there, and its own CA bundle otherwise).
RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "certifi"}
FORBIDDEN = {"scipy", "pandas", "pyarrow", "awswrangler", "duckdb", "implicit", "matplotlib"}


def test_the_lambda_imports_only_what_its_package_carries(tmp_path: Path) -> None:
    event = Path(__file__).parents[1] / "events" / "apigw_health.json"
    env = {
        "RECS_LAKE": str(tmp_path / "lake"),
        "RECS_STORE": str(tmp_path / "store.sqlite3"),
        "RECS_EVENT_LOG": str(tmp_path / "events.sqlite3"),
        "RECS_IDEMPOTENCY_STORE": str(tmp_path / "idempotency.sqlite3"),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(event)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 503  # nothing published in an empty lake: an answer, not a crash
    modules = set(report["modules"])
    assert not modules & FORBIDDEN
    stdlib = set(sys.stdlib_module_names) | {
        "__main__",
        "_distutils_hack",
        "__editable___recs_0_1_0_finder",
    }
    carried = {name.replace("-", "_") for name in REQUIREMENTS} | set(SOURCES) | RUNTIME
    carried |= {"aws_xray_sdk", "typing_extensions", "dotenv"}  # import names of the above
    third_party = {m for m in modules if m not in stdlib and not m.startswith("_")}
    assert third_party <= carried, f"not in the Lambda zip: {sorted(third_party - carried)}"


def test_the_lambda_gets_the_numpy_the_tests_run() -> None:
    # No Lambda-only pin: the zip takes constraints.txt's numpy, which is the one installed.
    pins = package._pins(ROOT / "constraints.txt")
    assert pins["numpy"] == importlib.metadata.version("numpy")
    assert f"python{package.PYTHON_VERSION}" == package.RUNTIME
