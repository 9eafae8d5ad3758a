# The pipeline's image: the pipeline Lambda (orchestration.handler.handler) and the Batch
# training job (python -m orchestration.remote) run it. Build it with `make image`.
#
# The build context is dist/pipeline-image/, which `make image-context` fills on the host:
# site/ holds our packages and the manylinux aarch64 wheels of every dependency, at the
# versions constraints.txt pins, for CPython 3.12. There is no RUN step, so an x86 machine
# builds this arm64 image without emulation.
FROM public.ecr.aws/lambda/python:3.12-arm64

COPY site/ ${LAMBDA_TASK_ROOT}/
ENV PYTHONPATH=${LAMBDA_TASK_ROOT}

# The base image's entry point starts the Lambda runtime and nothing else. It is reset here
# so that Batch can run `python -m orchestration.remote ...`; the Lambda's image_config
# (infra/terraform/compute.tf) names /lambda-entrypoint.sh and the handler again.
ENTRYPOINT []
CMD ["python", "-m", "orchestration.remote", "--help"]
