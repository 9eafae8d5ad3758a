"""One step of a recorded run, outside Lambda: `python -m orchestration.remote --run-id ID
--step etl`.

The state machine starts this where a step outgrows a Lambda's 15 minutes and 10 GB:
- the etl step as the Glue job (`RECS_ETL_ON=glue`), whose script this file is;
- the train step as an AWS Batch job on Fargate (`RECS_TRAIN_ON=batch`), from the pipeline's
  container image (`infra/docker/Dockerfile`).

It runs the step exactly as the Lambda does (`orchestration.runner.run_one`, on the run
record in the lake), but with the local runner's attempts and backoff on the step's
retryable errors, because the state machine sees only the job's exit, not our error class.

Settings come from the environment, as everywhere. A Glue job has no environment of its
own: Terraform gives it `--RECS_LAKE s3://...` style job arguments, which are put into the
environment first. Glue's own arguments (`--JOB_NAME`, `--job-bookmark-option`, ...) are
ignored.

Exit status: 0 when the step succeeded or had nothing to do; 1 when it failed, with the
reason on stderr and in the run record; 2 when the arguments are wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final

from common.errors import RecsError

#: The steps that can run here; the others are short and stay in the Lambda.
REMOTE_STEPS: Final = ("etl", "export", "train")


def _settings_from(args: Sequence[str]) -> list[str]:
    """Move `--RECS_NAME value` pairs into the environment; return the other arguments."""
    rest: list[str] = []
    words = list(args)
    while words:
        word = words.pop(0)
        name, eq, value = word.partition("=")
        if name.startswith("--RECS_"):
            if not eq:
                if not words:
                    raise SystemExit(f"{name} needs a value")
                value = words.pop(0)
            os.environ[name[2:]] = value
        else:
            rest.append(word)
    return rest


def main(argv: Sequence[str] | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run the named step of the named run; the exit status says how it went."""
    from common.lake import open_lake
    from orchestration.runner import ATTEMPTS, run_one
    from orchestration.settings import PipelineSettings

    parser = argparse.ArgumentParser(
        prog="python -m orchestration.remote",
        description="Run one step of a pipeline run, as a Glue or AWS Batch job.",
    )
    parser.add_argument(
        "--run-id", required=True, help="the run, as the state machine's start made it"
    )
    parser.add_argument("--step", required=True, choices=REMOTE_STEPS)
    parser.add_argument(
        "--attempts", type=int, default=ATTEMPTS, help="tries on the step's retryable errors"
    )
    given = _settings_from(sys.argv[1:] if argv is None else argv)
    # Glue adds arguments of its own (--JOB_NAME, --job-bookmark-option, ...): not ours.
    args, _glue_own = parser.parse_known_args(given)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        settings = PipelineSettings.from_env()
        settings.refuse_local_files_beside_aws(f"The {args.step} job")
        lake = open_lake(settings.lake)
        say(f"run {args.run_id}: {args.step} (lake {settings.lake})")
        record = run_one(
            lake,
            settings,
            args.run_id,
            args.step,
            progress=say,
            attempts=args.attempts,
            sleep=sleep,
        )
    except RecsError as exc:
        sys.stderr.write(f"{args.step} failed: {type(exc).__name__}: {exc}\n")
        return 1
    mine = record.step(args.step)
    say(f"{args.step}: {mine.status} in {mine.seconds} s, after {mine.attempts} attempt(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
